"""The service's dashboard (``GET /ui``): one page, five views chosen by the address's fragment.

* ``#/overview``: counts, events and active users per day as a chart, the feedback types with
  their meanings and weights, and the settings that shape answers;
* ``#/models``: every version with its status (a live progress bar while it trains), metrics and
  parameters; train a new one, activate one, roll back;
* ``#/users/<id>``: a user's history beside their recommendations (titles, scores, images where the
  items have an ``image`` attribute), their nearest users, and a form to send feedback;
* ``#/items/<id>``: an item's record, its events per week as a chart, and its nearest items;
* ``#/keys``: API keys (admins): create one (shown once), revoke one.

Plain HTML, SVG charts drawn by a few lines of JavaScript, and the same JSON API with the key the
visitor types (kept in the tab's ``sessionStorage`` only). Nothing is loaded from elsewhere, so it
works offline and over plain HTTP on any host (no ``crypto.randomUUID``, which needs a secure
context).
"""

import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>penchant dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
 header{background:#1f2937;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
 header h1{font-size:1.2rem;margin:0} header a{color:#cbd5e1;text-decoration:none} header a.on{color:#fff;font-weight:600}
 header input{width:22rem} main{padding:1rem 1.5rem;max-width:80rem}
 section{display:none} section.on{display:block}
 .card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:1rem;margin:0 0 1rem}
 .cards{display:flex;gap:1rem;flex-wrap:wrap} .stat{font-size:1.6rem;font-weight:600} .stat small{font-size:.8rem;color:#666;display:block}
 h2{font-size:1.05rem;margin:.2rem 0 .6rem} table{border-collapse:collapse;width:100%}
 td,th{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top;font-size:.92rem}
 .cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1rem} .muted{color:#777} .err{color:#b00}
 .bar{background:#e5e7eb;border-radius:3px;height:.7rem;width:8rem;display:inline-block;vertical-align:middle}
 .bar span{display:block;height:100%;background:#2563eb;border-radius:3px}
 img.thumb{height:2.5rem} code{font-size:.82rem;word-break:break-all} svg text{font-size:11px;fill:#555}
 svg{width:100%;height:auto} td{overflow-wrap:anywhere}
 input,select,button{font:inherit;padding:.2rem .4rem}
</style></head>
<body>
<header><h1>penchant</h1>
<nav><a href="#/overview">Overview</a> · <a href="#/models">Models</a> · <a href="#/users">Users</a> ·
<a href="#/items">Items</a> · <a href="#/keys">Keys</a></nav>
<span><input id="key" type="password" placeholder="API key" autocomplete="off"> <button id="connect">Connect</button>
<span id="status"></span></span></header>
<main>
<section id="overview">
 <div class="cards">
  <div class="card"><div class="stat" id="n-users">—<small>users</small></div></div>
  <div class="card"><div class="stat" id="n-items">—<small>items</small></div></div>
  <div class="card"><div class="stat" id="n-events">—<small>events</small></div></div>
  <div class="card"><div class="stat" id="serving">—<small>serving</small></div></div>
 </div>
 <div class="card"><h2>Events per day</h2><svg id="events-chart" width="900" height="180"></svg></div>
 <div class="card"><h2>Active users per day</h2><svg id="users-chart" width="900" height="140"></svg></div>
 <div class="cols">
  <div class="card"><h2>Feedback types</h2><table id="types"><thead><tr><th>type</th><th>meaning</th><th>weight</th></tr></thead><tbody></tbody></table></div>
  <div class="card"><h2>Settings</h2><table id="settings"><tbody></tbody></table></div>
 </div>
</section>
<section id="models">
 <div class="card"><h2>Model versions</h2>
 <table id="versions"><thead><tr><th>version</th><th>model</th><th>status</th><th>active</th><th>metrics</th><th>parameters</th><th></th></tr></thead><tbody></tbody></table></div>
 <div class="card"><h2>Train a version from the stored feedback</h2>
 <form id="train"><label>model <input id="train-model" size="12" value="als"></label>
 <label>parameters (JSON) <input id="train-params" size="30" value="{}"></label>
 <label><input id="train-activate" type="checkbox" checked> activate</label> <button type="submit">Train</button>
 <button type="button" id="rollback">Roll back</button> <span id="train-out" class="muted"></span></form></div>
</section>
<section id="users">
 <div class="card"><form id="user-form"><label>user id <input id="user" size="20"></label> <button type="submit">Show</button>
 <span id="user-info" class="muted"></span></form></div>
 <div class="cols">
  <div class="card"><h2>History</h2><table id="history"><thead><tr><th>item</th><th>type</th><th>when</th></tr></thead><tbody></tbody></table></div>
  <div class="card"><h2>Recommendations <span id="answered" class="muted"></span></h2>
  <table id="recs"><thead><tr><th>#</th><th></th><th>item</th><th>score</th></tr></thead><tbody></tbody></table></div>
 </div>
 <div class="cols">
  <div class="card"><h2>Nearest users</h2><ol id="neighbours"></ol></div>
  <div class="card"><h2>Send feedback</h2><form id="send"><label>item id <input id="item" size="12" required></label>
  <label>type <select id="type"></select></label> <button type="submit">Send</button> <span id="sent" class="muted"></span></form></div>
 </div>
</section>
<section id="items">
 <div class="card"><form id="item-form"><label>item id <input id="item-id" size="20"></label> <button type="submit">Show</button></form></div>
 <div class="cols">
  <div class="card"><h2 id="item-title">—</h2><div id="item-image"></div><table id="item-record"><tbody></tbody></table></div>
  <div class="card"><h2>Nearest items</h2><ol id="similar"></ol></div>
 </div>
 <div class="card"><h2>Events per week <span id="item-total" class="muted"></span></h2><svg id="item-chart" width="900" height="160"></svg></div>
</section>
<section id="keys">
 <div class="card"><h2>API keys</h2><table id="key-list"><thead><tr><th>id</th><th>name</th><th>scope</th><th>created</th><th>revoked</th><th></th></tr></thead><tbody></tbody></table></div>
 <div class="card"><h2>New key</h2><form id="new-key"><label>name <input id="key-name" size="16" required></label>
 <label>scope <select id="key-scope"><option>read</option><option>write</option><option>admin</option></select></label>
 <button type="submit">Create</button></form><p>Shown once: <code id="new-key-value"></code></p></div>
</section>
</main>
<script>
const $ = id => document.getElementById(id);
const key = () => sessionStorage.getItem("penchant-key") || "";
const FEEDBACK_TYPES = FEEDBACK_TYPES_JSON;
async function api(path, opts = {}) {
  const r = await fetch(path, {...opts, headers: {"Authorization": "Bearer " + key(), "Content-Type": "application/json"}});
  if (!r.ok) throw new Error(r.status + " " + (await r.text()));
  return r.json();
}
// crypto.randomUUID exists only on https or localhost; getRandomValues works over plain HTTP on any host
function eventId() {
  const b = crypto.getRandomValues(new Uint8Array(16)); b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map(x => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  e.append(...kids); return e;
}
function row(...cells) { return el("tr", {}, ...cells.map(c => c instanceof Node ? el("td", {}, c) : el("td", {text: String(c ?? "")}))); }
const day = t => new Date(t * 1000).toISOString().slice(0, 10);
const when = t => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
const link = (kind, id, label) => el("a", {href: `#/${kind}/${encodeURIComponent(id)}`, text: label ?? id});
function fail(e) { $("status").textContent = e.message; $("status").className = "err"; }

// a bar chart of [{start, value}] in an <svg>: one bar per bucket, the first and last dates, the maximum
function chart(svg, points, color) {
  const NS = "http://www.w3.org/2000/svg", W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
  const left = 46, bottom = 18, top = 8, inner = H - top - bottom, max = Math.max(1, ...points.map(p => p.value));
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; svg.append(e); return e; };
  add("line", {x1: left, y1: top + inner, x2: W, y2: top + inner, stroke: "#999"});
  add("text", {x: 2, y: top + 10}, max.toLocaleString());
  add("text", {x: 2, y: top + inner}, "0");
  if (!points.length) { add("text", {x: left + 8, y: top + inner / 2}, "no events"); return; }
  const w = (W - left) / points.length;
  points.forEach((p, i) => add("rect", {x: left + w * i, y: top + inner * (1 - p.value / max),
    width: Math.max(1, w - 1), height: inner * p.value / max, fill: color, "data-value": p.value}));
  add("text", {x: left, y: H - 4}, day(points[0].start));
  add("text", {x: W - 70, y: H - 4}, day(points[points.length - 1].start));
}

async function overview() {
  const ready = await (await fetch("/readyz")).json();
  $("n-users").firstChild.textContent = ready.users.toLocaleString();
  $("n-items").firstChild.textContent = ready.items.toLocaleString();
  $("n-events").firstChild.textContent = ready.events.toLocaleString();
  $("serving").firstChild.textContent = ready.model || "popular items";
  const stats = await api("/v1/stats/events?bucket=day");
  chart($("events-chart"), stats.buckets.map(b => ({start: b.start, value: b.events})), "#2563eb");
  chart($("users-chart"), stats.buckets.map(b => ({start: b.start, value: b.users})), "#059669");
  const config = await api("/v1/config");
  $("types").tBodies[0].replaceChildren(...config.feedback_types.map(t => row(t.type, t.meaning, t.weight)));
  const shown = ["default_model", "unknown_users", "unknown_items", "exploration_epsilon", "answer_cache_entries",
                 "ann_min_items", "rate_limit_per_minute", "retrain_every_s"];
  $("settings").tBodies[0].replaceChildren(...shown.map(k => row(k, JSON.stringify(config[k]))));
}

let polling = null;
async function models() {
  const versions = await api("/v1/models");
  $("versions").tBodies[0].replaceChildren(...versions.slice().reverse().map(v => {
    const status = v.status === "training"
      ? el("span", {}, el("span", {class: "bar"}, el("span", {style: `width:${Math.round(100 * (v.progress || 0))}%`})),
           ` training ${Math.round(100 * (v.progress || 0))}%`)
      : el("span", {text: v.status + (v.error ? ": " + v.error : "")});
    const m = v.metrics || {};
    const metrics = Object.entries(m).filter(([k, x]) => typeof x === "number").map(([k, x]) => `${k} ${+x.toFixed(4)}`).join(", ");
    const act = el("button", {text: "activate", "data-version": v.id});
    act.onclick = async () => { await api(`/v1/models/${v.id}/activate`, {method: "POST"}); await models(); };
    return row(v.id, v.model, status, v.active ? "active" : "", metrics, el("code", {text: JSON.stringify(v.params || {})}),
               v.status === "ready" && !v.active ? act : "");
  }));
  clearTimeout(polling);
  if (versions.some(v => v.status === "training") && location.hash.startsWith("#/models")) polling = setTimeout(() => models().catch(fail), 1000);
}

async function titles(ids) {
  if (!ids.length) return {};
  const rows = await api("/v1/items?" + ids.map(i => "ids=" + encodeURIComponent(i)).join("&"));
  return Object.fromEntries(rows.map(r => [r.id, r]));
}
async function user(id) {
  $("user").value = id;
  const info = await api(`/v1/users/${encodeURIComponent(id)}`).catch(() => null);
  $("user-info").textContent = info ? [`${info.events} events`, ...Object.entries(info.attributes || {}).map(([k, v]) => `${k} ${v}`)].join(" · ")
                                     : "not stored yet";
  const fb = await api(`/v1/users/${encodeURIComponent(id)}/feedback?limit=20`);
  const recs = await api(`/v1/users/${encodeURIComponent(id)}/recommendations?k=10`);
  const near = await api(`/v1/users/${encodeURIComponent(id)}/neighbours?k=5`).catch(() => ({users: []}));
  const items = await titles([...new Set([...fb.map(e => e.item_id), ...recs.items.map(i => i.id)])]);
  const name = i => items[i] ? (items[i].title || i) : i;
  $("history").tBodies[0].replaceChildren(...fb.map(e => row(link("items", e.item_id, name(e.item_id)), e.type, when(e.timestamp))));
  $("recs").tBodies[0].replaceChildren(...recs.items.map((r, k) => {
    const img = items[r.id] && items[r.id].attributes && items[r.id].attributes.image;
    return row(k + 1, img ? el("img", {class: "thumb", src: img, alt: ""}) : "", link("items", r.id, name(r.id)), r.score.toFixed(4));
  }));
  $("answered").textContent = "by " + recs.model;
  $("neighbours").replaceChildren(...(near.users || []).map(n => el("li", {}, link("users", n.id), ` (${n.score.toFixed(3)})`)));
}

async function item(id) {
  $("item-id").value = id;
  const rec = await api(`/v1/items/${encodeURIComponent(id)}`);
  $("item-title").textContent = rec.title || rec.id;
  const img = rec.attributes && rec.attributes.image;
  $("item-image").replaceChildren(...(img ? [el("img", {src: img, alt: rec.title || "", style: "height:6rem;image-rendering:pixelated"})] : []));
  $("item-record").tBodies[0].replaceChildren(row("id", rec.id), row("categories", (rec.categories || []).join(", ")),
    ...Object.entries(rec.attributes || {}).filter(([k]) => k !== "image").map(([k, v]) => row(k, Array.isArray(v) ? v.join(", ") : v)));
  const stats = await api(`/v1/stats/events?bucket=week&item_id=${encodeURIComponent(id)}`);
  $("item-total").textContent = `(${stats.total.toLocaleString()} in all)`;
  chart($("item-chart"), stats.buckets.map(b => ({start: b.start, value: b.events})), "#d97706");
  const similar = await api(`/v1/items/${encodeURIComponent(id)}/similar?k=10`).catch(e => ({items: [], error: e.message}));
  const near = await titles(similar.items.map(i => i.id));
  $("similar").replaceChildren(...similar.items.map(i => el("li", {}, link("items", i.id, near[i.id] ? near[i.id].title || i.id : i.id),
    ` (${i.score.toFixed(3)})`)));
  if (similar.error) $("similar").append(el("li", {class: "muted", text: "the deployed model has no item vectors"}));
}

async function keys() {
  const list = await api("/v1/admin/keys");
  $("key-list").tBodies[0].replaceChildren(...list.map(k => {
    const revoke = el("button", {text: "revoke", "data-key": k.id});
    revoke.onclick = async () => { await api(`/v1/admin/keys/${encodeURIComponent(k.id)}/revoke`, {method: "POST"}); await keys(); };
    return row(k.id, k.name, k.scopes, when(k.created_at), k.revoked_at ? when(k.revoked_at) : "", k.revoked_at ? "" : revoke);
  }));
}

async function route() {
  const [view, id] = location.hash.replace(/^#\\/?/, "").split("/").map(decodeURIComponent);
  const name = ["overview", "models", "users", "items", "keys"].includes(view) ? view : "overview";
  for (const s of document.querySelectorAll("section")) s.classList.toggle("on", s.id === name);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.getAttribute("href") === "#/" + name);
  if (!key()) return;
  try {
    if (name === "overview") await overview();
    if (name === "models") await models();
    if (name === "users" && id) await user(id);
    if (name === "items" && id) await item(id);
    if (name === "keys") await keys();
    $("status").textContent = "connected"; $("status").className = "muted";
  } catch (e) { fail(e); }
}
$("connect").onclick = () => { sessionStorage.setItem("penchant-key", $("key").value.trim()); route(); };
$("user-form").onsubmit = ev => { ev.preventDefault(); location.hash = "#/users/" + encodeURIComponent($("user").value.trim()); };
$("item-form").onsubmit = ev => { ev.preventDefault(); location.hash = "#/items/" + encodeURIComponent($("item-id").value.trim()); };
$("send").onsubmit = async ev => {
  ev.preventDefault();
  try {
    const r = await api("/v1/feedback", {method: "POST", body: JSON.stringify([{event_id: eventId(), user_id: $("user").value.trim(),
      item_id: $("item").value.trim(), type: $("type").value}])});
    $("sent").textContent = `stored (${r.inserted} new)`; await user($("user").value.trim());
  } catch (e) { $("sent").textContent = e.message; }
};
$("train").onsubmit = async ev => {
  ev.preventDefault();
  try {
    const v = await api("/v1/models/train", {method: "POST", body: JSON.stringify({model: $("train-model").value.trim(),
      params: JSON.parse($("train-params").value || "{}"), activate: $("train-activate").checked})});
    $("train-out").textContent = `version ${v.id} training`; await models();
  } catch (e) { $("train-out").textContent = e.message; }
};
$("rollback").onclick = async () => { try { await api("/v1/models/rollback", {method: "POST"}); await models(); }
  catch (e) { $("train-out").textContent = e.message; } };
$("new-key").onsubmit = async ev => {
  ev.preventDefault();
  try {
    const k = await api("/v1/admin/keys", {method: "POST", body: JSON.stringify({name: $("key-name").value.trim(), scope: $("key-scope").value})});
    $("new-key-value").textContent = k.key; await keys();
  } catch (e) { $("new-key-value").textContent = e.message; }
};
for (const t of FEEDBACK_TYPES) $("type").append(new Option(t, t));
window.onhashchange = route;
route();
</script></body></html>
"""


def page(feedback_types: list[str]) -> str:
    """The dashboard with the service's feedback types in the feedback form."""
    return PAGE.replace("FEEDBACK_TYPES_JSON", json.dumps(feedback_types))
