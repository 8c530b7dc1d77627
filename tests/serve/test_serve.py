"""The HTTP service against a real SQLite file and a real PostgreSQL server (the same tests on
both): feedback in, recommendations out, versions, keys and scopes, errors, and durability
through a SIGKILL of the server process."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.conftest import cli, write
from tests.serve.server import ADMIN, clustered_events, free_port, post, start_server


def test_feedback_recommendations_and_versions(client):
    h = client.app.state.service.host
    items = [{"id": f"i{i}", "title": f"Film {i}", "categories": ["even" if i % 2 == 0 else "odd"]} for i in range(40)]
    assert client.put("/v1/items", json=items).json() == {"upserted": 40}
    events = clustered_events()
    assert client.post("/v1/feedback", json=events).json() == {"inserted": len(events), "duplicates": 0,
                                                               "new_users": 60, "new_items": 0}  # items were put first
    retry = client.post("/v1/feedback", json=events[:10] + [dict(events[0], event_id="fresh")]).json()
    assert retry == {"inserted": 1, "duplicates": 10, "new_users": 0, "new_items": 0}  # a retried batch is not double-counted
    assert client.get("/v1/users/u0/recommendations").json()["model"] == "popular (no model yet)"

    r = client.post("/v1/models/train", json={"model": "als", "params": {"factors": 8, "regularization": 0.1}})
    assert r.status_code == 202 and r.json()["status"] == "training"
    v1 = h.wait(r.json()["id"])
    assert v1["status"] == "ready" and v1["active"] is False or h.deployed.version == v1["id"]
    listed = client.get("/v1/models").json()
    assert listed[0]["metrics"]["ndcg@10"] > 0 and listed[0]["metrics"]["interactions"] == len(events)  # "fresh" repeats a pair

    rec = client.get("/v1/users/u0/recommendations", params={"k": 5}).json()
    seen = {e["item_id"] for e in events if e["user_id"] == "u0"}
    got = [x["id"] for x in rec["items"]]
    assert rec["model"] == f"als:v{v1['id']}" and len(got) == 5 and not seen & set(got)
    assert sum(int(i[1:]) % 2 == 0 for i in got) >= 4  # the user's cluster
    # a new event changes the next answer at once: the clicked item drops out
    client.post("/v1/feedback", json=[{"event_id": "now-1", "user_id": "u0", "item_id": got[0], "type": "click"}])
    assert got[0] not in [x["id"] for x in client.get("/v1/users/u0/recommendations", params={"k": 5}).json()["items"]]
    odd = client.get("/v1/users/u0/recommendations", params={"k": 3, "category": "odd"}).json()["items"]
    assert odd and all(int(x["id"][1:]) % 2 == 1 for x in odd)
    # a user the model never saw: fold-in from their events, in their cluster
    client.post("/v1/feedback", json=[{"event_id": f"n{k}", "user_id": "newbie", "item_id": f"i{i}", "type": "like"}
                                      for k, i in enumerate((1, 3, 5))])
    cold = client.get("/v1/users/newbie/recommendations", params={"k": 5}).json()
    assert cold["model"].endswith("+fold-in") and all(int(x["id"][1:]) % 2 == 1 for x in cold["items"])
    assert client.get("/v1/users/stranger/recommendations").json()["model"] == "popular"
    similar = client.get("/v1/items/i2/similar", params={"k": 5}).json()["items"]
    assert sum(int(x["id"][1:]) % 2 == 0 for x in similar) >= 4

    v2 = h.wait(client.post("/v1/models/train", json={"model": "als", "params": {"factors": 4, "regularization": 0.1}}).json()["id"])
    assert client.post(f"/v1/models/{v2['id']}/activate").json()["active"] is True
    assert client.get("/v1/users/u0/recommendations").json()["model"] == f"als:v{v2['id']}"
    assert client.post("/v1/models/rollback").json()["id"] == v1["id"]
    assert client.post("/v1/models/999/activate").status_code == 404

    gone = client.delete("/v1/users/u0").json()
    assert gone["user"] and gone["events"] == 10  # 8 + "fresh" + "now-1"
    assert client.get("/v1/users/u0/feedback").json() == []
    assert client.delete("/v1/users/u0").status_code == 404
    assert client.post("/v1/users/delete", json={"ids": ["u2", "u4", "ghost"]}).json() == {"users": 2, "events": 16}
    assert client.post("/v1/items/delete", json={"ids": ["i39"]}).json()["items"] == 1


def test_keys_scopes_and_errors(client, tmp_path):
    from penchant.serve.keys import create_key

    store = client.app.state.service.store
    reader = create_key(store, "dashboard", "read")
    bare = {"Authorization": ""}
    assert client.get("/v1/models", headers=bare).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {reader}x"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    r = client.post("/v1/feedback", json=[], headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and "write" in r.json()["detail"]
    assert all(reader not in json.dumps(k) for k in store.keys())  # only the hash is stored
    # invalid fields: 422 naming them, never a 500
    r = client.post("/v1/feedback", json=[{"event_id": "e", "item_id": "i", "type": "click"}])
    assert r.status_code == 422 and ["body", 0, "user_id"] in [d["loc"] for d in r.json()["detail"]]
    r = client.post("/v1/feedback", json=[{"event_id": "e", "user_id": "u", "item_id": "i", "type": "zap"}])
    assert r.status_code == 422 and "body[0].type" in r.json()["detail"]
    r = client.get("/v1/users/u/recommendations", params={"k": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
    assert client.post("/v1/models/train", json={"model": "nope"}).status_code == 422
    # a lone surrogate (valid JSON escape, not encodable text) is a 422 that echoes it escaped
    r = client.post("/v1/users/delete", content=b'{"ids": ["\\ud800"]}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "ids", 0]
    assert r.json()["detail"][0]["input"] == "\ud800"
    assert client.post("/v1/feedback", content=b"[" + b" " * 3_000_000 + b"]",
                       headers={"content-type": "application/json"}).status_code == 413
    revoked_id = reader.split("_")[1]
    assert store.revoke_key(revoked_id)
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {reader}"}).status_code == 401
    metrics = client.get("/metrics").text
    assert 'penchant_http_requests_total{method="GET",path="/v1/models",status="401"}' in metrics


def test_rate_limit_answers_429(tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    config = write(tmp_path / "c.toml", "[service]\nrate_limit_per_minute = 3\n")
    app = create_app(load_settings(tmp_path / "d", config_file=config, env={}), admin_key=ADMIN)
    with TestClient(app) as c:
        codes = [c.get("/v1/models", headers={"Authorization": f"Bearer {ADMIN}"}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


def test_settings_reject_unknown_keys_and_bad_types(tmp_path):
    from penchant.errors import ConfigError
    from penchant.serve.config import load_settings

    with pytest.raises(ConfigError, match="unknown key service.rate_limit"):
        load_settings(tmp_path, config_file=write(tmp_path / "a.toml", "[service]\nrate_limit = 3\n"), env={})
    with pytest.raises(ConfigError, match="max_batch must be an integer"):
        load_settings(tmp_path, config_file=write(tmp_path / "b.toml", "[service]\nmax_batch = 'many'\n"), env={})
    with pytest.raises(ConfigError, match="feedback_types.star must be one of"):
        load_settings(tmp_path, config_file=write(tmp_path / "c.toml", "[feedback_types]\nstar = 'good'\n"), env={})
    s = load_settings(tmp_path, env={"PENCHANT_RATE_LIMIT_PER_MINUTE": "7"})
    assert s.rate_limit_per_minute == 7 and s.meaning("dislike") == "negative"


def test_acknowledged_events_survive_sigkill_and_retries_do_not_double(tmp_path, database_url):
    """Batches stream in while the server is killed with SIGKILL; after a restart every
    acknowledged event is stored, and re-sending every batch (the unacknowledged one included)
    stores nothing twice."""
    port = free_port()
    proc = start_server(tmp_path / "data", database_url, port)
    batches = [[{"event_id": f"b{b}-{k}", "user_id": f"u{k % 7}", "item_id": f"i{(b * 13 + k) % 50}", "type": "click"}
                for k in range(40)] for b in range(400)]
    acknowledged: list[str] = []
    killed = threading.Event()

    def stream() -> None:
        for batch in batches:
            try:
                post(port, batch)
            except (OSError, urllib.error.URLError):
                return  # the server died mid-request: this batch is unacknowledged
            acknowledged.extend(e["event_id"] for e in batch)
            if killed.is_set():
                return

    sender = threading.Thread(target=stream)
    sender.start()
    while len(acknowledged) < 40 * 20:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    killed.set()
    sender.join(timeout=60)
    proc.wait(timeout=30)
    assert 0 < len(acknowledged) < 40 * len(batches)

    port = free_port()
    proc = start_server(tmp_path / "data", database_url, port)
    try:
        from penchant.serve.store import Store, make_engine
        from penchant.serve.store import database_url as url_of

        store = Store(make_engine(url_of(tmp_path / "data", database_url)))
        stored = store.event_ids()
        assert set(acknowledged) <= set(stored) and len(stored) == len(set(stored))
        sent = [b for b in batches if b[0]["event_id"].split("-")[0] in {e.split("-")[0] for e in stored}]
        totals = [post(port, b) for b in batches[: len(sent) + 1]]  # every batch that reached the store, and one more
        assert sum(t["inserted"] for t in totals) == 40 * (len(sent) + 1) - len(stored)
        after = store.event_ids()
        assert len(after) == len(set(after)) == 40 * (len(sent) + 1)
    finally:
        proc.kill()


def test_keys_cli_creates_lists_and_revokes(tmp_path):
    r = cli("keys", "create", "--name", "ci", "--scope", "write", "--data-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("pk_")
    listed = cli("keys", "list", "--data-dir", tmp_path)
    key_id = key.split("_")[1]
    assert key_id in listed.stdout and "write" in listed.stdout and key not in listed.stdout
    assert cli("keys", "revoke", key_id, "--data-dir", tmp_path).returncode == 0
    again = cli("keys", "revoke", key_id, "--data-dir", tmp_path)
    assert again.returncode == 2 and f"no active key {key_id!r}" in again.stderr
    bad = cli("keys", "create", "--name", "x", "--scope", "root", "--data-dir", tmp_path)
    assert bad.returncode == 2 and "--scope must be one of" in bad.stderr


def test_dump_and_restore_round_trip(client, tmp_path):
    """A dump restored into an empty store gives the same rows; restoring it again doubles
    nothing; a bad line is refused naming its line and field."""
    from penchant.serve.dump import parse_dump
    from penchant.serve.store import Store, make_engine, migrate

    client.put("/v1/items", json=[{"id": "i1", "title": "Alien", "categories": ["sf"]}])
    client.post("/v1/feedback", json=clustered_events(n_users=4, n_items=6, per_user=2))
    dumped = client.get("/v1/admin/dump").text.splitlines()
    assert json.loads(dumped[0])["kind"] == "user" and sum('"kind": "event"' in line for line in dumped) == 8
    engine = make_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    migrate(engine)
    copy = Store(engine)
    assert copy.restore(parse_dump(dumped))["events"] == 8
    assert list(copy.dump()) == list(client.app.state.service.store.dump())
    assert copy.restore(parse_dump(dumped))["duplicate_events"] == 8
    again = client.post("/v1/admin/restore", content="\n".join(dumped).encode())
    assert again.status_code == 200 and again.json()["duplicate_events"] == 8
    bad = dumped[:2] + ['{"kind": "event", "event_id": "x", "user_id": "u", "item_id": "i", "type": "click"}']
    r = client.post("/v1/admin/restore", content="\n".join(bad).encode())
    assert r.status_code == 422 and "line 3" in r.json()["detail"] and "timestamp" in r.json()["detail"]


def test_scheduled_retraining_deploys_a_new_version(tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    config = write(tmp_path / "c.toml", "[service]\nretrain_every_s = 0.5\n[model]\nname = \"pop\"\n")
    app = create_app(load_settings(tmp_path / "d", config_file=config, env={}), admin_key=ADMIN)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        c.post("/v1/feedback", json=clustered_events(n_users=6, n_items=8, per_user=3))
        end = time.time() + 60
        while time.time() < end and app.state.service.host.deployed is None:
            time.sleep(0.1)
        assert app.state.service.host.deployed is not None and app.state.service.host.deployed.model_name == "pop"
        assert c.get("/v1/users/u0/recommendations").json()["model"] == f"pop:v{app.state.service.host.deployed.version}"


def _films() -> list[dict]:
    """40 items with a genre (drama, comedy, horror, scifi in turn) and a decade (1960s–2000s in turn)."""
    genres = ["drama", "comedy", "horror", "scifi"]
    return [{"id": f"i{i}", "title": f"Film {i}", "categories": [genres[i % 4]],
             "attributes": {"decade": f"{1960 + 10 * (i % 5)}s"}} for i in range(40)]


def test_conversation_over_http_finds_the_wanted_item(client):
    """Start a conversation, answer as someone who wants one item, and reach it; the state lives in
    the store between requests."""
    items = _films()
    client.put("/v1/items", json=items)
    client.post("/v1/feedback", json=clustered_events())
    version = client.app.state.service.host.wait(client.post("/v1/models/train", json={"model": "pop", "activate": True}).json()["id"])
    assert version["status"] == "ready"
    wanted = items[39]  # scifi, 2000s
    r = client.post("/v1/conversations", json={"user_id": "visitor", "policy": "maxent", "opening": "category=scifi"})
    assert r.status_code == 201, r.text
    talk = r.json()
    assert talk["accepted"] == ["category: scifi"] and talk["next"] is not None
    for _ in range(15):
        move = talk["next"]
        if move is None:
            break
        if move["kind"] == "question":
            label = move["values"][0]["label"]
            kind, value = label.split(": ", 1)
            has = value in wanted["categories"] if kind == "category" else wanted["attributes"].get(kind) == value
            body = {"yes": has}
        else:
            ids = [x["id"] for x in move["items"]]
            body = {"item": wanted["id"] if wanted["id"] in ids else None}
        talk = client.post(f"/v1/conversations/{talk['id']}/answer", json=body).json()
    assert talk["found"] == wanted["id"] and talk["done"]
    assert client.get(f"/v1/conversations/{talk['id']}").json()["found"] == wanted["id"]
    assert client.post("/v1/conversations/nope/answer", json={"yes": True}).status_code == 404
    assert client.post("/v1/conversations", json={"policy": "oracle"}).status_code == 422
    assert client.post("/v1/conversations", json={"opening": "category=western"}).status_code == 422


def test_anonymous_session_with_a_sequential_model(client):
    """Users click chains i0 → i2 → i4 … in order; a Markov chain trained from the store through
    the API recommends what follows the session's last item."""
    events = [{"event_id": f"s{u}-{k}", "user_id": f"u{u}", "item_id": f"i{(2 * (u + k)) % 30}", "type": "click",
               "timestamp": float(100 * u + k)} for u in range(30) for k in range(6)]
    client.post("/v1/feedback", json=events)
    v = client.app.state.service.host.wait(client.post("/v1/models/train", json={"model": "markov", "activate": True}).json()["id"])
    assert v["status"] == "ready", v["error"]
    r = client.post("/v1/recommendations", json={"items": ["i10", "i12", "nope"], "k": 3}).json()
    assert r["model"] == f"markov:v{v['id']}" and r["unknown_items"] == 1
    assert r["items"][0]["id"] == "i14" and "i12" not in [x["id"] for x in r["items"]]
    assert client.post("/v1/recommendations", json={"items": []}).status_code == 422


def test_comparisons_train_a_preference_model_that_compare_uses(client):
    """Two kinds of users with opposite tastes over 10 options; personal Bradley–Terry trained
    through the API from stored comparisons ranks options for each kind its own way."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(3000):
        user = f"p{k % 20}"
        a, b = rng.choice(10, 2, replace=False)
        better = max(a, b) if (k % 20) % 2 == 0 else min(a, b)  # even users like high numbers, odd users low
        rows.append({"event_id": f"c{k}", "user_id": user, "winner": f"o{better}", "loser": f"o{a + b - better}"})
    assert client.post("/v1/comparisons", json=rows).json() == {"inserted": 3000, "duplicates": 0}
    assert client.post("/v1/comparisons", json=rows[:5]).json() == {"inserted": 0, "duplicates": 5}
    assert client.post("/v1/compare", json={"options": ["o1", "o2"]}).status_code == 409  # nothing deployed
    r = client.post("/v1/models/train", json={"model": "pbt", "params": {"factors": 4, "epochs": 30}})
    assert r.status_code == 202 and r.json()["kind"] == "preference"
    v = client.app.state.service.host.wait(r.json()["id"])
    assert v["status"] == "ready" and v["metrics"]["accuracy"] > 0.9, v
    high = client.post("/v1/compare", json={"user_id": "p0", "options": ["o2", "o9", "o5"]}).json()
    low = client.post("/v1/compare", json={"user_id": "p1", "options": ["o2", "o9", "o5"]}).json()
    assert [o["id"] for o in high["options"]] == ["o9", "o5", "o2"] and high["user_known"]
    assert [o["id"] for o in low["options"]] == ["o2", "o5", "o9"]
    assert high["options"][0]["score"] is not None and 0.5 < high["options"][0]["win_probability"] <= 1
    bad = client.post("/v1/compare", json={"options": ["o1", "zzz"]})
    assert bad.status_code == 422 and "options[1]" in bad.json()["detail"]
    assert client.post("/v1/comparisons", json=[{"event_id": "s", "winner": "o1", "loser": "o1"}]).status_code == 422
    assert client.get("/v1/users/p0/recommendations").status_code == 200  # the recommender side is untouched


def test_feedback_weights_and_meanings_shape_the_training_data(tmp_path):
    """Positive events add their type's weight to the pair's value; a later negative event removes
    the pair; exposure only makes an item seen; ALS with values=true folds a user in from weighted
    events exactly as it would refit them (the user step)."""
    from penchant.data import Dataset
    from penchant.models.registry import create
    from penchant.serve.config import load_settings
    from penchant.serve.host import events_dataset

    config = write(tmp_path / "c.toml", '[feedback_types]\nclick = "positive"\nlike = { meaning = "positive", weight = 3.0 }\n'
                                        'dislike = "negative"\nread = "exposure"\n')
    s = load_settings(tmp_path, config_file=config, env={})
    ds = events_dataset([("a", "x", "click", 1, 1.0), ("a", "x", "like", 1, 2.0), ("a", "y", "like", 1, 3.0),
                         ("a", "y", "dislike", 1, 4.0), ("b", "y", "read", 1, 5.0), ("b", "z", "click", 1, 6.0)], s)
    got = {(str(ds.user_ids[u]), str(ds.item_ids[i])): float(r) for u, i, r in zip(ds.users, ds.items, ds.ratings)}
    assert got == {("a", "x"): 4.0, ("b", "z"): 1.0}
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 2000), rng.integers(0, 30, 2000)
    keep = np.unique(users * 30 + items, return_index=True)[1]
    data = Dataset(np.arange(50).astype(str).astype(object), np.arange(30).astype(str).astype(object),
                   users[keep].astype(np.int32), items[keep].astype(np.int32),
                   ratings=rng.choice([1.0, 3.0], len(keep)).astype(np.float32))
    model = create("als", factors=8, values=True, iterations=30, regularization=1.0).fit(data)
    row = data.matrix("rating")[7]
    x = model.fold_in(row.indices, row.data)
    cos = x @ model.user_factors_[7] / np.linalg.norm(x) / np.linalg.norm(model.user_factors_[7])
    assert cos > 0.99, cos
    with pytest.raises(Exception, match="feedback_types.like.weight must be positive"):
        load_settings(tmp_path, config_file=write(tmp_path / "d.toml", '[feedback_types]\nlike = { meaning = "positive", weight = 0 }\n'), env={})


def test_store_restore_from_a_dataset_is_idempotent(tmp_path, shared_data):
    """`penchant store restore --dataset` turns interactions into events (ids <dataset>:<row>) and
    items into records with titles, genres as categories and the release decade; a second load
    stores nothing twice; a dump names every row."""
    args = ("store", "restore", "--dataset", shared_data / "ml-100k", "--data-dir", tmp_path)
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "events 100,000" in first.stdout and "duplicate_events 0" in first.stdout
    again = cli(*args)
    assert "events 0" in again.stdout and "duplicate_events 100,000" in again.stdout
    assert cli("store", "dump", "--out", tmp_path / "d.jsonl", "--data-dir", tmp_path).returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    star_wars = next(r for r in rows if r["kind"] == "item" and r["id"] == "50")
    assert star_wars["title"] == "Star Wars" and "Sci-Fi" in star_wars["categories"]
    assert star_wars["attributes"] == {"decade": "1970s"}
    assert sum(r["kind"] == "event" for r in rows) == 100_000


@pytest.fixture(scope="module")
def offline_als(ml100k_dir, tmp_path_factory):
    """An ALS artefact fitted offline with `penchant fit`, and `penchant recommend`'s answers from it:
    two known users, a walk-in known only by the clicks in a history file (fold-in) and a stranger
    (popular)."""
    folder = tmp_path_factory.mktemp("offline")
    code, _, err = cli("fit", "--train", ml100k_dir / "ml-100k.inter", "--model", "als", "--param", "factors=16",
                       "--out", folder / "als.npz")
    assert code == 0, err
    (folder / "history.csv").write_text("user,item\n" + "".join(f"walk-in,{i}\n" for i in WALK_IN))
    code, _, err = cli("recommend", "--model-path", folder / "als.npz", "--user", "1", "--user", "500",
                       "--user", "walk-in", "--user", "stranger", "--history", folder / "history.csv", "--k", "10",
                       "--json", folder / "recs.json")
    assert code == 0, err
    code, _, err = cli("similar", "--model-path", folder / "als.npz", "--item", "50", "--k", "5", "--json", folder / "similar.json")
    assert code == 0, err
    code, _, err = cli("neighbours", "--model-path", folder / "als.npz", "--user", "1", "--k", "5", "--json", folder / "near.json")
    assert code == 0, err
    recs = json.loads((folder / "recs.json").read_text())
    recs["similar"] = json.loads((folder / "similar.json").read_text())["items"]["50"]
    recs["neighbours"] = json.loads((folder / "near.json").read_text())["users"]["1"]
    return folder / "als.npz", recs


#: the walk-in user's clicks: Star Wars, Return of the Jedi, Raiders, Empire Strikes Back
WALK_IN = ("50", "181", "174", "172")


def test_an_artefact_fitted_offline_is_served_as_penchant_recommend_answers(client, offline_als):
    """The service and `penchant recommend` answer through the one answer core: the same lists and
    scores for known users, for a user known only by their clicks (fold-in) and for a stranger."""
    path, expected = offline_als
    r = client.post("/v1/models/import", params={"activate": True}, content=path.read_bytes(),
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["model"] == "als" and v["status"] == "ready" and v["active"] and v["kind"] == "recommender"
    events = [{"event_id": f"w{i}", "user_id": "walk-in", "item_id": i, "type": "click"} for i in WALK_IN]
    assert client.post("/v1/feedback", json=events).status_code == 200
    assert expected["fallback"] == {"walk-in": "fold-in", "stranger": "popular"}
    models = {"1": f"als:v{v['id']}", "500": f"als:v{v['id']}", "walk-in": f"als:v{v['id']}+fold-in", "stranger": "popular"}
    for user, model in models.items():
        got = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
        assert got["model"] == model
        assert [x["id"] for x in got["items"]] == [x["item"] for x in expected["users"][user]]
        assert np.allclose([x["score"] for x in got["items"]], [x["score"] for x in expected["users"][user]], atol=1e-6)
    assert not {x["item"] for x in expected["users"]["walk-in"]} & set(WALK_IN)
    similar = client.get("/v1/items/50/similar", params={"k": 5}).json()["items"]
    assert [x["id"] for x in similar] == [x["item"] for x in expected["similar"]] and len(similar) == 5
    assert np.allclose([x["score"] for x in similar], [x["score"] for x in expected["similar"]], atol=1e-6)
    near = client.get("/v1/users/1/neighbours", params={"k": 5}).json()["users"]
    assert [x["id"] for x in near] == [x["user"] for x in expected["neighbours"]] and len(near) == 5
    bad = client.post("/v1/models/import", content=b"not a model", headers={"Content-Type": "application/octet-stream"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("body: not a model artefact")
    assert [m["id"] for m in client.get("/v1/models").json()] == [v["id"]]  # nothing recorded for the bad upload


def test_versions_import_cli_serves_the_artefact_at_start(offline_als, tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    path, expected = offline_als
    code, out, err = cli("versions", "import", path, "--data-dir", tmp_path / "data", "--activate")
    assert code == 0 and "imported als as version 1 (active)" in out, err
    with TestClient(create_app(load_settings(tmp_path / "data", env={}), admin_key=ADMIN)) as c:
        got = c.get("/v1/users/1/recommendations", params={"k": 10}, headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert [x["id"] for x in got["items"]] == [x["item"] for x in expected["users"]["1"]]


def test_the_service_runs_the_registry_s_untrained_policies():
    """The service's policies come from the one registry: those that need no training of their
    own; the request schema lists exactly those, and the CLI's help names every policy."""
    from penchant.cli.converse_cmds import POLICY_HELP
    from penchant.converse.policies import ready_policies
    from penchant.models.registry import entry, model_names
    from penchant.serve.schemas import ConversationIn

    names = model_names("conversation")
    oracles = {n for n in names if getattr(entry(n).cls, "oracle", False)}
    assert oracles and set(ready_policies()) == {n for n in names if entry(n).cls.ready_untrained} - oracles
    assert {"maxent", "greedy"} <= set(ready_policies())
    # learned ones once trained; an oracle needs the target, which no person gives
    assert ConversationIn.model_json_schema()["properties"]["policy"]["enum"] == [n for n in names if n not in oracles]
    assert "{models:conversation}" in POLICY_HELP  # the CLI's help names the registry's policies when shown
