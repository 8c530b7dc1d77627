"""The service's web page (``GET /ui``): data counts, model versions with their metrics, one user's
recent feedback beside their recommendations (titles, not ids), and a form to send feedback.
Plain HTML and a little JavaScript calling the same API with the key the visitor types (kept in
the tab's sessionStorage only)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>penchant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
 h1{margin:0 0 1rem} h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
 table{border-collapse:collapse} td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
 .cols{display:flex;gap:3rem;flex-wrap:wrap} .muted{color:#777} .err{color:#b00}
 input,select,button{font:inherit;padding:.2rem .4rem}
</style></head>
<body>
<h1>penchant</h1>
<p><label>API key <input id="key" type="password" size="50" autocomplete="off"></label>
<button id="connect">Connect</button> <span id="status" class="muted"></span></p>
<h2>Data</h2><p id="counts" class="muted">—</p>
<h2>Model versions</h2>
<table id="versions"><thead><tr><th>version</th><th>model</th><th>status</th><th>active</th><th>NDCG@10</th>
<th>Recall@10</th><th>interactions</th></tr></thead><tbody></tbody></table>
<h2>A user</h2>
<p><label>user id <input id="user" size="20"></label> <button id="show">Show</button></p>
<div class="cols">
 <div><h3>Recent feedback</h3><ol id="feedback"></ol></div>
 <div><h3>Recommendations <span id="answered" class="muted"></span></h3><ol id="recs"></ol></div>
</div>
<h2>Send feedback</h2>
<form id="send"><label>item id <input id="item" size="12" required></label>
<label>type <select id="type"></select></label> <button type="submit">Send</button>
<span id="sent" class="muted"></span></form>
<script>
const $ = id => document.getElementById(id);
const key = () => sessionStorage.getItem("penchant-key") || "";
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
function text(tag, s, cls) { const e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; }
async function titles(ids) {
  if (!ids.length) return {};
  const q = ids.map(i => "ids=" + encodeURIComponent(i)).join("&");
  const rows = await api("/v1/items?" + q);
  return Object.fromEntries(rows.map(r => [r.id, r.title || r.id]));
}
async function refresh() {
  try {
    const ready = await (await fetch("/readyz")).json();
    $("counts").textContent = `${ready.users} users, ${ready.items} items, ${ready.events} events; serving ${ready.model || "no model yet"}`;
    const body = $("versions").tBodies[0]; body.replaceChildren();
    for (const v of await api("/v1/models")) {
      const tr = document.createElement("tr"); const m = v.metrics || {};
      for (const c of [v.id, v.model, v.status, v.active ? "yes" : "", m["ndcg@10"] ?? "", m["recall@10"] ?? "", m.interactions ?? ""])
        tr.append(text("td", String(c)));
      body.append(tr);
    }
    $("status").textContent = "connected"; $("status").className = "muted";
  } catch (e) { $("status").textContent = e.message; $("status").className = "err"; }
}
async function showUser() {
  const user = $("user").value.trim(); if (!user) return;
  const fb = await api(`/v1/users/${encodeURIComponent(user)}/feedback?limit=20`);
  const recs = await api(`/v1/users/${encodeURIComponent(user)}/recommendations?k=10`);
  const names = await titles([...new Set([...fb.map(e => e.item_id), ...recs.items.map(i => i.id)])]);
  $("feedback").replaceChildren(...fb.map(e => text("li", `${names[e.item_id]} (${e.type})`)));
  $("recs").replaceChildren(...recs.items.map(i => text("li", names[i.id])));
  $("answered").textContent = "by " + recs.model;
}
$("connect").onclick = async () => { sessionStorage.setItem("penchant-key", $("key").value.trim()); await refresh(); };
$("show").onclick = showUser;
$("send").onsubmit = async ev => {
  ev.preventDefault();
  const user = $("user").value.trim(), item = $("item").value.trim();
  try {
    const r = await api("/v1/feedback", {method: "POST", body: JSON.stringify([{event_id: eventId(), user_id: user,
      item_id: item, type: $("type").value}])});
    $("sent").textContent = `stored (${r.inserted} new)`; await showUser(); await refresh();
  } catch (e) { $("sent").textContent = e.message; }
};
for (const t of FEEDBACK_TYPES) $("type").append(new Option(t, t));
if (key()) refresh();
</script></body></html>
"""


def page(feedback_types: list[str]) -> str:
    import json

    return PAGE.replace("FEEDBACK_TYPES", json.dumps(feedback_types))
