"""What the service stores is what it says it stored: an event id is stored once and counted once,
however many batches carry it at the same time; a request the database cannot take (a NUL
character, a number that is not finite) is a 422 naming the field, never a 500; on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

import json
import threading

import pytest

from tests.serve.server import ADMIN


def _app_client(data_dir, database_url):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    app = create_app(load_settings(data_dir, database_url=database_url, env={}), admin_key=ADMIN)
    c = TestClient(app)
    c.headers["Authorization"] = f"Bearer {ADMIN}"
    return c


def _event(event_id: str, user: str = "u", item: str = "i") -> dict:
    return {"event_id": event_id, "user_id": user, "item_id": item, "type": "click"}


# --- one event id, one stored event, one count --------------------------------------------------------------------


def test_an_event_id_repeated_in_a_batch_is_stored_and_counted_once(client):
    batch = [_event("e1"), _event("e1", item="j"), _event("e2"), _event("e1")]
    assert client.post("/v1/feedback", json=batch).json() == {"inserted": 2, "duplicates": 2, "new_users": 1,
                                                              "new_items": 1}  # "j" came only with a repeated id
    stored = client.get("/v1/users/u/feedback").json()
    assert sorted((e["event_id"], e["item_id"]) for e in stored) == [("e1", "i"), ("e2", "i")]  # the first one wins
    assert client.app.state.service.store.counts() == {"users": 1, "items": 1, "events": 2}
    again = [{"event_id": "c1", "winner": "a", "loser": "b"}, {"event_id": "c1", "winner": "b", "loser": "a"}]
    assert client.post("/v1/comparisons", json=again).json() == {"inserted": 1, "duplicates": 1}


def test_concurrent_identical_batches_insert_each_event_once(tmp_path, database_url):
    """Threads post the same batches at once through two app instances over one store (as two
    workers would): over every answer, the sum of ``inserted`` is the number of events stored, and
    users and items are counted new once."""
    clients = [_app_client(tmp_path / "data", database_url) for _ in range(2)]
    store = clients[0].app.state.service.store
    threads_per_round, rounds = 8, 3
    answers: list[dict] = []
    failures: list[BaseException] = []
    for r in range(rounds):
        batch = [_event(f"r{r}-{k}", user=f"u{r}-{k % 7}", item=f"i{k % 11}") for k in range(300)]
        batch += batch[:20]  # and repeats inside the batch
        start = threading.Barrier(threads_per_round)

        def post(c, batch=batch, start=start) -> None:
            try:
                start.wait()
                resp = c.post("/v1/feedback", json=batch)
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
            except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(e)

        threads = [threading.Thread(target=post, args=(clients[t % 2],)) for t in range(threads_per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in clients:
        c.close()
    assert not failures, failures[0]
    assert len(answers) == threads_per_round * rounds
    stored = store.counts()
    assert stored["events"] == 300 * rounds
    assert sum(a["inserted"] for a in answers) == stored["events"]
    assert sum(a["inserted"] + a["duplicates"] for a in answers) == 320 * threads_per_round * rounds
    assert sum(a["new_users"] for a in answers) == stored["users"] == 7 * rounds
    assert sum(a["new_items"] for a in answers) == stored["items"] == 11


# --- no 5xx for what a database cannot store ----------------------------------------------------------------------

NUL = "a\x00b"

#: (method, path, JSON body or None, query parameters or None, the field the 422 must name)
REFUSED = [
    ("post", "/v1/feedback", [dict(_event("e"), event_id=NUL)], None, "event_id"),
    ("post", "/v1/feedback", [dict(_event("e"), user_id=NUL)], None, "user_id"),
    ("post", "/v1/feedback", [dict(_event("e"), item_id=NUL)], None, "item_id"),
    ("post", "/v1/feedback", [dict(_event("e"), type="cl\x00ick")], None, "type"),
    ("post", "/v1/comparisons", [{"event_id": "c", "winner": NUL, "loser": "b"}], None, "winner"),
    ("put", "/v1/items", [{"id": NUL}], None, "id"),
    ("put", "/v1/items", [{"id": "a", "title": NUL}], None, "title"),
    ("put", "/v1/items", [{"id": "a", "text": NUL}], None, "text"),
    ("put", "/v1/items", [{"id": "a", "categories": ["x", NUL]}], None, "categories"),
    ("put", "/v1/items", [{"id": "a", "attributes": {"k": NUL}}], None, "attributes"),
    ("put", "/v1/items", [{"id": "a", "attributes": {NUL: "v"}}], None, "attributes"),
    ("put", "/v1/items", [{"id": "a", "attributes": {"k": ["x", NUL]}}], None, "attributes"),
    ("put", "/v1/users", [{"id": NUL}], None, "id"),
    ("put", "/v1/users", [{"id": "u", "attributes": {"k": NUL}}], None, "attributes"),
    ("post", "/v1/users/delete", {"ids": [NUL]}, None, "ids"),
    ("post", "/v1/compare", {"options": ["a", NUL]}, None, "options"),
    ("post", "/v1/conversations", {"user_id": NUL}, None, "user_id"),
    ("post", "/v1/conversations", {"opening": NUL}, None, "opening"),
    ("post", "/v1/admin/keys", {"name": NUL, "scope": "read"}, None, "name"),
    ("post", "/v1/recommendations", {"items": [NUL]}, None, "items"),
    ("get", "/v1/users/a%00b/neighbours", None, None, "user_id"),
    ("post", "/v1/conversations/a%00b/answer", {}, None, "conversation_id"),
    ("get", "/v1/users/a%00b", None, None, "user_id"),
    ("get", "/v1/users/a%00b/feedback", None, None, "user_id"),
    ("get", "/v1/users/a%00b/recommendations", None, None, "user_id"),
    ("get", "/v1/users/u/recommendations", None, {"category": NUL}, "category"),
    ("get", "/v1/users/u/recommendations", None, {"exclude": NUL}, "exclude"),
    ("get", "/v1/items/a%00b", None, None, "item_id"),
    ("get", "/v1/items/a%00b/similar", None, None, "item_id"),
    ("delete", "/v1/items/a%00b", None, None, "item_id"),
    ("delete", "/v1/users/a%00b", None, None, "user_id"),
    ("get", "/v1/items", None, {"after": NUL}, "after"),
    ("get", "/v1/items", None, {"ids": NUL}, "ids"),
    ("get", "/v1/users", None, {"after": NUL}, "after"),
    ("get", "/v1/conversations/a%00b", None, None, "conversation_id"),
    ("get", "/v1/stats/events", None, {"item_id": NUL}, "item_id"),
    # numbers that are not finite: NaN and 1e309 (parsed as infinity) in every numeric field
    ("post", "/v1/feedback", '[{"event_id":"e","user_id":"u","item_id":"i","type":"click","value":NaN}]', None, "value"),
    ("post", "/v1/feedback", '[{"event_id":"e","user_id":"u","item_id":"i","type":"click","value":1e309}]', None, "value"),
    ("post", "/v1/feedback", '[{"event_id":"e","user_id":"u","item_id":"i","type":"click","value":-Infinity}]', None,
     "value"),
    ("post", "/v1/feedback", '[{"event_id":"e","user_id":"u","item_id":"i","type":"click","timestamp":NaN}]', None,
     "timestamp"),
    ("post", "/v1/feedback", '[{"event_id":"e","user_id":"u","item_id":"i","type":"click","timestamp":1e309}]', None,
     "timestamp"),
    ("post", "/v1/comparisons", '[{"event_id":"c","winner":"a","loser":"b","timestamp":NaN}]', None, "timestamp"),
    ("put", "/v1/items", '[{"id":"a","timestamp":1e309}]', None, "timestamp"),
    ("put", "/v1/items", '[{"id":"a","attributes":{"x":NaN}}]', None, "attributes"),
    ("put", "/v1/users", '[{"id":"u","attributes":{"x":1e309}}]', None, "attributes"),
    ("post", "/v1/models/train", '{"model":"pop","params":{"x":NaN}}', None, "params"),
    ("get", "/v1/users/u/recommendations", None, {"epsilon": "nan"}, "epsilon"),
    ("get", "/v1/items/popular", None, {"days": "inf"}, "days"),
    ("get", "/v1/items/latest", None, {"category": NUL}, "category"),
    ("get", "/v1/items/popular", None, {"days": "nan"}, "days"),
]


@pytest.mark.parametrize(("method", "path", "body", "params", "field"), REFUSED,
                         ids=[f"{m} {p} {f}{'' if isinstance(b, str) or b is None else ' NUL'}" for m, p, b, _, f in REFUSED])
def test_a_nul_character_or_a_non_finite_number_is_a_422_naming_the_field(client, method, path, body, params, field):
    client.post("/v1/feedback", json=[_event("seed")])
    kwargs: dict = {"params": params}
    if isinstance(body, str):
        kwargs |= {"content": body, "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs["json"] = body
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == 422, (r.status_code, r.text[:500])
    assert field in r.text, r.text[:500]
    assert client.app.state.service.store.counts()["events"] == 1  # nothing was stored


# --- a restore adds what its data carries and overwrites nothing with nothing -------------------------------------


def test_restoring_a_log_keeps_the_stored_titles_categories_and_attributes(client, tmp_path, database_url):
    """`penchant store restore --dataset log.csv` (users and items, nothing else) into a store whose
    items have titles and categories and whose users have attributes: the events are added, the
    records are kept as they were, and the counts say what was added and what was updated."""
    from tests.conftest import cli, write

    client.put("/v1/items", json=[{"id": "i1", "title": "Alien", "categories": ["sf"], "attributes": {"year": 1979}}])
    client.put("/v1/users", json=[{"id": "u1", "attributes": {"tier": "gold"}}])
    log = write(tmp_path / "log.csv", "user,item\nu1,i1\nu2,i2\n")
    url = ("--database-url", database_url) if database_url else ()
    code, out, err = cli("store", "restore", "--dataset", log, "--data-dir", tmp_path / "data", *url)
    assert code == 0, err
    assert client.get("/v1/items/i1").json() == {"id": "i1", "title": "Alien", "text": None, "categories": ["sf"],
                                                 "attributes": {"year": 1979}, "timestamp": None}
    assert client.get("/v1/users/u1").json()["attributes"] == {"tier": "gold"}
    assert client.get("/v1/items/i2").json()["title"] is None  # new: created with what the log says (nothing)
    assert "users_added 1, users_updated 0, items_added 1, items_updated 0" in out, out
    assert "events 2" in out, out
    # a dataset that does carry titles updates them, and says so; what it lacks stays
    write(tmp_path / "rich" / "rich.item", "item_id:token\ttitle:token_seq\ni1\tAlien (director's cut)\n")
    write(tmp_path / "rich" / "rich.inter", "user_id:token\titem_id:token\nu1\ti1\n")
    code, out, err = cli("store", "restore", "--dataset", tmp_path / "rich", "--data-dir", tmp_path / "data", *url)
    assert code == 0, err
    assert "items_added 0, items_updated 1" in out, out
    assert client.get("/v1/items/i1").json() == {"id": "i1", "title": "Alien (director's cut)", "text": None,
                                                 "categories": ["sf"], "attributes": {"year": 1979}, "timestamp": None}


def test_an_id_repeated_in_one_put_keeps_its_last_row(client):
    rows = [{"id": "i1", "title": "first"}, {"id": "i2"}, {"id": "i1", "title": "last", "categories": ["x"]}]
    assert client.put("/v1/items", json=rows).json() == {"upserted": 3}
    assert client.get("/v1/items/i1").json()["title"] == "last"
    assert client.put("/v1/users", json=[{"id": "u", "attributes": {"a": 1}}, {"id": "u"}]).status_code == 200
    assert client.get("/v1/users/u").json()["attributes"] == {}  # a PUT replaces the whole record


# --- a write that did not reach the store is an error -------------------------------------------------------------


def test_feedback_after_the_data_folder_is_deleted_is_a_503_not_a_200(tmp_path):
    """SQLite keeps writing to the open files of a deleted folder (the inodes live on until the
    process closes them), so every write "succeeds" into nothing: the store checks at each commit
    that its file is still the one it opened, and a write that cannot be kept is a 503 saying so."""
    import shutil

    c = _app_client(tmp_path / "data", None)
    with c:
        assert c.post("/v1/feedback", json=[_event("before")]).json()["inserted"] == 1
        assert c.get("/readyz").status_code == 200
        shutil.rmtree(tmp_path / "data")
        r = c.post("/v1/feedback", json=[_event("after")])
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert str(tmp_path / "data" / "penchant.db") in detail and "deleted or replaced" in detail, detail
        assert "nothing was stored" in detail
        assert c.put("/v1/items", json=[{"id": "x"}]).status_code == 503
        assert c.get("/readyz").status_code == 503
        # a store made again in its place is not this one either: still refused, not written into
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "penchant.db").write_bytes(b"")
        assert c.post("/v1/feedback", json=[_event("later")]).status_code == 503


_FULL_DISK = """
import json, subprocess, sys
from fastapi.testclient import TestClient
from penchant.serve.app import create_app
from penchant.serve.config import load_settings
folder = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], check=True)
app = create_app(load_settings(folder + "/data", env={}), admin_key=sys.argv[2])
out = {}
with TestClient(app) as c:
    c.headers["Authorization"] = "Bearer " + sys.argv[2]
    out["small"] = c.post("/v1/feedback", json=[{"event_id": "e", "user_id": "u", "item_id": "i", "type": "click"}]).status_code
    big = c.put("/v1/items", json=[{"id": f"x{k}", "text": "w" * 19000} for k in range(60)])
    out["big"], out["detail"] = big.status_code, big.text
    out["counts"] = app.state.service.store.counts()
print(json.dumps(out))
"""


def test_a_write_to_a_full_disk_is_a_503_naming_it(tmp_path):
    """The database refusing a write (here SQLite on a full disk: a 1 MB tmpfs, mounted in a mount
    namespace of its own) is a 503 with the database's words, and nothing of the request is stored.
    (A disk made read-only under a running service cannot be made: Linux refuses to remount a
    file system read-only while a file on it is open for writing; chmod does not reach open files.)"""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode:
        pytest.skip("needs unshare -m and mount (root, or CAP_SYS_ADMIN) to make a small disk")
    ran = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", _FULL_DISK, str(tmp_path), ADMIN],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = json.loads(ran.stdout.splitlines()[-1])
    assert out["small"] == 200
    assert out["big"] == 503 and "database or disk is full" in out["detail"] and "nothing" in out["detail"], out
    assert out["counts"] == {"users": 1, "items": 1, "events": 1}


# --- one id rule on every path; the service restores its own dump over HTTP ---------------------------------------


def test_an_id_too_long_for_the_store_is_refused_on_every_path(client, tmp_path, database_url):
    """One maximum id length (the id columns' 255) on every path that stores an id: a log restored
    with `--dataset`, a dump restored with `--in` or over HTTP, and the API."""
    from penchant.serve.store import MAX_ID_LENGTH
    from tests.conftest import cli, write

    long_id = "u" * (MAX_ID_LENGTH + 45)
    url = ("--database-url", database_url) if database_url else ()
    log = write(tmp_path / "log.csv", f"user,item\nok,i1\n{long_id},i2\n")
    code, _, err = cli("store", "restore", "--dataset", log, "--data-dir", tmp_path / "data", *url)
    assert code == 2 and "user 2" in err and "'id'" in err and f"at most {MAX_ID_LENGTH} characters" in err, err
    assert "the restore stored nothing" in err
    line = json.dumps({"kind": "event", "event_id": "e", "user_id": long_id, "item_id": "i", "type": "click",
                       "timestamp": 1})
    code, _, err = cli("store", "restore", "--in", write(tmp_path / "d.jsonl", line + "\n"), "--data-dir", tmp_path / "data",
                       *url)
    assert code == 2 and "line 1" in err and "user_id" in err and f"at most {MAX_ID_LENGTH} characters" in err, err
    r = client.post("/v1/admin/restore", content=line.encode())
    assert r.status_code == 422 and "line 1" in r.json()["detail"] and "user_id" in r.json()["detail"]
    assert client.post("/v1/feedback", json=[_event("e", user=long_id)]).status_code == 422
    assert client.get(f"/v1/users/{long_id}").status_code == 422
    assert client.app.state.service.store.counts() == {"users": 0, "items": 0, "events": 0}
    # the longest id the rule allows goes through every path and comes back in the dump
    longest = "u" * MAX_ID_LENGTH
    write(tmp_path / "max.csv", f"user,item\n{longest},i1\n")
    code, _, err = cli("store", "restore", "--dataset", tmp_path / "max.csv", "--data-dir", tmp_path / "data", *url)
    assert code == 0, err
    dump = client.get("/v1/admin/dump").content
    assert longest.encode() in dump
    assert client.post("/v1/admin/restore", content=dump).json()["duplicate_events"] == 1


def test_the_service_restores_its_own_dump_over_http_beyond_the_request_limit(request, tmp_path, database_url):
    """A dump is larger than any request (here 2.3 MB over a max_request_bytes of 2 MB): restore takes
    bodies up to max_restore_bytes, read in pieces to a temporary file (sent with a length or chunked);
    beyond that it is a 413 naming the setting, and nothing is stored."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    def app_client(folder, **env):
        """A service over a store of its own (on PostgreSQL: a fresh database)."""
        url = None if database_url is None else request.getfixturevalue("postgres_server").database()
        c = TestClient(create_app(load_settings(folder, database_url=url, env=env), admin_key=ADMIN))
        c.headers["Authorization"] = f"Bearer {ADMIN}"
        return c

    with app_client(tmp_path / "a") as a:
        for b in range(3):
            rows = [dict(_event(f"e{b}-{k}", user=f"user-{k % 50}", item=f"item-{k % 400}"), timestamp=float(k))
                    for k in range(5000)]
            assert a.post("/v1/feedback", json=rows).status_code == 200
        dump = a.get("/v1/admin/dump").content
        assert len(dump) > a.app.state.service.settings.max_request_bytes
    with app_client(tmp_path / "b") as b:
        r = b.post("/v1/admin/restore", content=dump)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["events"] == 15000
        assert b.get("/v1/admin/dump").content == dump
        chunked = b.post("/v1/admin/restore", content=iter([dump[:1_000_000], dump[1_000_000:]]))  # no Content-Length
        assert chunked.status_code == 200 and chunked.json()["duplicate_events"] == 15000
    with app_client(tmp_path / "c", PENCHANT_MAX_RESTORE_BYTES=str(len(dump) - 1)) as c:
        for body in (dump, iter([dump[:1_000_000], dump[1_000_000:]])):
            r = c.post("/v1/admin/restore", content=body)
            assert r.status_code == 413 and "max_restore_bytes" in r.json()["detail"], r.text[:300]
        assert c.app.state.service.store.counts()["events"] == 0
