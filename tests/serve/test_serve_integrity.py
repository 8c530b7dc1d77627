"""Nothing lost, nothing half-done: a restore is all or nothing, dump → restore → dump is the
identity, one server per data folder, and a damaged store or model artefact is refused at start,
never served."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request

from tests.conftest import cli, penchant, write
from tests.serve.server import ADMIN, clustered_events, free_port, start_server


def _dump_lines(n_events: int) -> list[str]:
    rows = [{"kind": "user", "id": "u0", "attributes": {"tier": "gold"}},
            {"kind": "item", "id": "i0", "title": "Alien", "text": None, "categories": ["sf"], "attributes": {},
             "timestamp": 1709251200.0}]
    rows += [{"kind": "event", **e, "value": 1.0} for e in clustered_events(n_users=n_events // 8, per_user=8)]
    rows += [{"kind": "comparison", "event_id": "c1", "user_id": "u0", "winner": "i0", "loser": "i2", "timestamp": 5.0}]
    return [json.dumps(r) for r in rows]


def _serve_must_refuse(data_dir) -> str:
    """stderr of a `penchant serve` that must exit 2 at start (a subprocess, so a server that
    wrongly starts is stopped by the timeout instead of hanging the suite)."""
    ran = penchant("serve", "--data-dir", data_dir, "--port", "0", timeout=60)
    assert ran.returncode == 2, ran.stderr
    return ran.stderr


def test_a_restore_that_fails_late_stores_nothing(tmp_path, client):
    lines = _dump_lines(6000)
    bad = lines + ['{"kind": "event", "event_id": "x", "user_id": "u", "item_id": "i", "type": "click"}']
    path = write(tmp_path / "bad.jsonl", "\n".join(bad) + "\n")
    code, _, err = cli("store", "restore", "--in", path, "--data-dir", tmp_path / "cli")
    assert code == 2 and f"line {len(bad)}" in err and "timestamp" in err and "the restore stored nothing" in err
    from penchant.serve.store import Store, make_engine
    from penchant.serve.store import database_url as url_of

    assert Store(make_engine(url_of(tmp_path / "cli", None))).counts() == {"users": 0, "items": 0, "events": 0}
    # the same over HTTP, on SQLite and PostgreSQL
    r = client.post("/v1/admin/restore", content="\n".join(bad).encode())
    assert r.status_code == 422 and f"line {len(bad)}" in r.json()["detail"] and "stored nothing" in r.json()["detail"]
    assert client.app.state.service.store.counts() == {"users": 0, "items": 0, "events": 0}
    good = client.post("/v1/admin/restore", content="\n".join(lines).encode()).json()
    assert good["events"] == 6000 and good["comparisons"] == 1


def test_dump_restore_dump_is_the_identity(tmp_path):
    source = write(tmp_path / "in.jsonl", "\n".join(_dump_lines(80)) + "\n")
    assert cli("store", "restore", "--in", source, "--data-dir", tmp_path / "a").returncode == 0
    assert cli("store", "dump", "--out", tmp_path / "a.jsonl", "--data-dir", tmp_path / "a").returncode == 0
    assert cli("store", "restore", "--in", tmp_path / "a.jsonl", "--data-dir", tmp_path / "b").returncode == 0
    assert cli("store", "dump", "--out", tmp_path / "b.jsonl", "--data-dir", tmp_path / "b").returncode == 0
    first, second = (tmp_path / "a.jsonl").read_bytes(), (tmp_path / "b.jsonl").read_bytes()
    assert first == second
    parsed = [json.loads(line) for line in first.decode().splitlines()]
    # every row of the input is in the dump, unchanged (users named by events are created, so there are more)
    dumped = {(r["kind"], r.get("id") or r.get("event_id")): r for r in parsed}
    for line in _dump_lines(80):
        row = json.loads(line)
        assert dumped[(row["kind"], row.get("id") or row.get("event_id"))] == row
    events = [json.loads(line) for line in _dump_lines(80) if '"kind": "event"' in line]
    named = {("user", e["user_id"]) for e in events} | {("item", e["item_id"]) for e in events} | {("user", "u0"), ("item", "i0")}
    assert len(parsed) == len(events) + 1 + len(named)


def test_a_second_server_on_the_same_folder_is_refused(tmp_path):
    port = free_port()
    proc = start_server(tmp_path / "data", None, port)
    try:
        refused = _serve_must_refuse(tmp_path / "data")
        assert f"{tmp_path / 'data'} is already served by penchant serve (pid {proc.pid}" in refused
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # once it has stopped, the folder is free again; the start-up lines say where and what; access logs name the key's id only
    proc = subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--data-dir", str(tmp_path / "data"), "--port", "0",
                             "--access-log"], stderr=subprocess.PIPE, text=True, env=dict(os.environ, PENCHANT_ADMIN_KEY=ADMIN))
    try:
        first = [proc.stderr.readline() for _ in range(3)]
        assert first[0].startswith("penchant serving on http://127.0.0.1:"), first
        port = int(first[0].split(":")[2].split(" ")[0])
        assert port > 0 and first[1].startswith("store sqlite:///") and "0 events" in first[1]
        assert first[2].startswith("models: recommender none")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/users/u1/recommendations?k=3",
                                         headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200
        line = proc.stderr.readline()
        logged = json.loads(line)
        assert ADMIN not in line and ADMIN.split("_")[2] not in line
        assert {k: logged[k] for k in ("method", "path", "status", "key_id")} == {
            "method": "GET", "path": "/v1/users/u1/recommendations", "status": 200, "key_id": "admin1"}
        assert logged["ms"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_damaged_store_is_refused_at_start(tmp_path):
    write(tmp_path / "junk" / "penchant.db", b"\x00\x01not sqlite" * 1000)
    assert "penchant.db cannot be opened or is damaged (file is not a database)" in _serve_must_refuse(tmp_path / "junk")
    source = write(tmp_path / "in.jsonl", "\n".join(_dump_lines(4000)) + "\n")
    assert cli("store", "restore", "--in", source, "--data-dir", tmp_path / "torn").returncode == 0
    db = tmp_path / "torn" / "penchant.db"
    with sqlite3.connect(db) as conn:  # every page in the main file, none left in the write-ahead log
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8192] = b"\xff" * 8192  # two pages in the middle of the events
    db.write_bytes(bytes(data))
    refused = _serve_must_refuse(tmp_path / "torn")
    # SQLite notices a torn page when it opens the schema or in the integrity check, whichever reads it first
    assert "penchant.db" in refused and "is damaged (" in refused and "restore it from a dump" in refused, refused


def test_a_damaged_model_artefact_is_refused_at_start_and_never_served(tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    settings = load_settings(tmp_path / "data", env={})
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings, admin_key=ADMIN)) as c:
        c.post("/v1/feedback", json=clustered_events(), headers=auth)
        version = c.post("/v1/models/train", json={"model": "als", "params": {"factors": 4}, "activate": True},
                         headers=auth).json()["id"]
        assert c.app.state.service.host.wait(version)["status"] == "ready"
        assert c.get("/v1/users/u0/recommendations", headers=auth).json()["model"] == f"als:v{version}"
    artefact = tmp_path / "data" / "models" / f"v{version}" / "model.npz"
    data = bytearray(artefact.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64
    artefact.write_bytes(bytes(data))
    app = create_app(settings, admin_key=ADMIN)
    assert len(app.state.refused) == 1 and f"model version {version} (als) refused, not served" in app.state.refused[0]
    with TestClient(app) as c:
        assert c.get("/v1/users/u0/recommendations", headers=auth).json()["model"].startswith("popular")
        listed = c.get("/v1/models", headers=auth).json()[0]
        assert listed["status"] == "failed" and not listed["active"] and "refused at start" in listed["error"]
