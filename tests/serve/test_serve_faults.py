"""The service under faults, with real `penchant serve` processes.

Killed at each step of its work (failpoints, :mod:`penchant.serve.failpoints`): a server is started
with one failpoint armed, driven into it until it SIGKILLs itself, and started again on the same
folder and store. After every crash: no acknowledged event is missing or doubled, the last good
model version serves, and nothing is reported as stored that is not (a version interrupted in
training reads "failed" with the reason, never "training" or "ready"). One chain of servers per
database: each restart is armed with the next failpoint, so each server checks what the previous
crash left and then crashes at the next step (7 starts for 6 failpoints on SQLite).

Also: a start that cannot load the active version serves the last good one; two servers started at
the same moment on a fresh store; request bodies sent chunked are refused before they are read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from penchant.serve.store import Store, make_engine
from penchant.serve.store import database_url as url_of
from tests.conftest import ROOT
from tests.serve.server import ADMIN, call, free_port, post, start_server

MODEL = "pop"  # the quickest to train: the chain is about what a crash leaves, not about the model


def _batch(b: int) -> list[dict]:
    """40 events (user u<k % 6> clicks item i<...>), ids b<b>-<k>."""
    return [{"event_id": f"b{b}-{k}", "user_id": f"u{k % 6}", "item_id": f"i{(b * 7 + k) % 30}", "type": "click",
             "timestamp": float(1000 + b * 40 + k)} for k in range(40)]


class Chain:
    """The server of one data folder (and store), started again after each crash."""

    def __init__(self, tmp_path, database_url, monkeypatch) -> None:
        self.data, self.url, self.monkeypatch = tmp_path / "data", database_url, monkeypatch
        self.store = None
        self.proc = self.port = None
        self.acknowledged: dict[str, int] = {}  # event id -> how many times a 200 counted it as inserted

    def start(self, armed: str = "") -> None:
        self.port = free_port()
        self.monkeypatch.setenv("PENCHANT_FAILPOINTS", armed)
        self.proc = start_server(self.data, self.url, self.port)
        self.monkeypatch.delenv("PENCHANT_FAILPOINTS")
        if self.store is None:
            self.store = Store(make_engine(url_of(self.data, self.url)))

    def died(self, why: str) -> None:
        """The server SIGKILLed itself at its failpoint."""
        code = self.proc.wait(timeout=120)
        assert code == -signal.SIGKILL, (why, code, self.proc.stderr.read().decode()[-2000:])
        self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc is not None:
            self.proc.stderr.close()

    def send(self, batch: list[dict]) -> dict | None:
        """POST a batch; its answer (and the events it acknowledged), or None when the server died under it."""
        try:
            answer = post(self.port, batch)
        except (OSError, urllib.error.URLError):
            return None
        assert answer["inserted"] + answer["duplicates"] == len(batch), answer
        for e in batch:
            self.acknowledged.setdefault(e["event_id"], 0)
        return answer

    def stored_events(self) -> list[str]:
        return self.store.event_ids()

    def check_events(self, in_flight: list[dict], committed: bool | None) -> None:
        """Every acknowledged event is stored once; the batch that was in flight at the crash is
        all there (``committed``), or none of it (False), or either, all or nothing (None)."""
        stored = self.stored_events()
        assert len(stored) == len(set(stored))
        assert set(self.acknowledged) <= set(stored), sorted(set(self.acknowledged) - set(stored))[:5]
        flight = {e["event_id"] for e in in_flight}
        there = flight & set(stored)
        if committed is None:
            assert there in (set(), flight), len(there)
        else:
            assert there == (flight if committed else set()), len(there)
        assert set(stored) - set(self.acknowledged) - flight == set()  # nothing else appeared
        ready = call(self.port, "GET", "/readyz")
        assert ready["events"] == len(stored)  # what the service reports is what the store holds

    def train(self, activate: bool = True) -> int:
        return call(self.port, "POST", "/v1/models/train", {"model": MODEL, "activate": activate})["id"]

    def ready(self, version: int) -> dict:
        end = time.time() + 120
        while (v := call(self.port, "GET", f"/v1/models/{version}"))["status"] == "training":
            assert time.time() < end, "training did not finish"
            time.sleep(0.05)
        return v

    def serves(self, version: int) -> None:
        """``version`` is the one active, ready recommender version, and answers name it."""
        label = f"{MODEL}:v{version}"
        assert call(self.port, "GET", "/v1/users/u0/recommendations?k=3")["model"] == label
        assert call(self.port, "GET", "/readyz")["model"] == label
        versions = call(self.port, "GET", "/v1/models")
        assert [v["id"] for v in versions if v["active"]] == [version], versions
        assert all(v["status"] in ("ready", "failed") for v in versions), versions

    def interrupted(self, version: int) -> None:
        v = call(self.port, "GET", f"/v1/models/{version}")
        assert v["status"] == "failed" and not v["active"], v
        assert "interrupted" in v["error"], v


def test_a_start_that_cannot_load_the_active_version_serves_the_last_good_one(tmp_path):
    """The active version's artefact is damaged: the start refuses it (failed, with the reason) and
    serves the newest ready version that loads instead, making it the active one, and says so in
    its start-up lines and in /readyz (before, nothing served: popular items)."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from tests.serve.server import clustered_events

    settings = load_settings(tmp_path / "data", env={})
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings, admin_key=ADMIN)) as c:
        c.post("/v1/feedback", json=clustered_events(), headers=auth)
        host = c.app.state.service.host
        good, bad = (host.wait(c.post("/v1/models/train", json={"model": MODEL, "activate": True},
                                      headers=auth).json()["id"])["id"] for _ in range(2))
        assert c.get("/v1/users/u0/recommendations", headers=auth).json()["model"] == f"{MODEL}:v{bad}"
    artefact = tmp_path / "data" / "models" / f"v{bad}" / "model.npz"
    artefact.write_bytes(artefact.read_bytes()[:100])
    app = create_app(settings, admin_key=ADMIN)
    assert len(app.state.refused) == 2, app.state.refused
    assert app.state.refused[0].startswith(f"model version {bad} ({MODEL}) refused, not served: ")
    assert app.state.refused[1].startswith(f"serving model version {good} ({MODEL}), the newest ready recommender "
                                           f"version that loads, because version {bad} could not be loaded")
    with TestClient(app) as c:
        assert c.get("/v1/users/u0/recommendations", headers=auth).json()["model"] == f"{MODEL}:v{good}"
        ready = c.get("/readyz").json()
        assert ready["model"] == f"{MODEL}:v{good}" and ready["warnings"] == app.state.refused
        versions = {v["id"]: v for v in c.get("/v1/models", headers=auth).json()}
        assert versions[good]["active"] and versions[good]["status"] == "ready"
        assert versions[bad]["status"] == "failed" and not versions[bad]["active"]
        assert "refused at start" in versions[bad]["error"]
    again = create_app(settings, admin_key=ADMIN)  # the next start serves it as the active one, with nothing to say
    assert again.state.refused == [] and again.state.service.host.deployed.version == good


def _restore_body(n: int) -> bytes:
    rows = [{"kind": "event", "event_id": f"r{k}", "user_id": f"u{k % 6}", "item_id": f"i{k % 30}", "type": "click",
             "timestamp": 9000.0 + k} for k in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


def _restore(port: int, body: bytes) -> dict | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/restore", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.loads(r.read())
    except (OSError, urllib.error.URLError):
        return None


@pytest.mark.slow
def test_a_crash_at_any_step_loses_nothing_acknowledged_and_keeps_the_last_good_version(tmp_path, database_url,
                                                                                        monkeypatch):
    # a version's steps: on PostgreSQL only the one whose outcome is the database's (ready and active in one
    # transaction); the training steps before it leave files and one failed row, the same on both databases
    steps = ["train.after_fit", "train.after_save", "version.before_ready"] if database_url is None else \
        ["version.before_ready"]
    chain = Chain(tmp_path, database_url, monkeypatch)
    try:
        # feedback: killed after inserting the third batch, before its commit
        chain.start("feedback.before_commit@3")
        assert chain.send(_batch(0)) and chain.send(_batch(1))
        assert chain.send(_batch(2)) is None
        chain.died("feedback.before_commit")

        # ... the third batch is not there; killed after committing the fourth, before answering it
        chain.start("feedback.after_commit@2")
        chain.check_events(_batch(2), committed=False)
        assert chain.send(_batch(2))["inserted"] == 40  # the client's retry
        assert chain.send(_batch(3)) is None
        chain.died("feedback.after_commit")

        # ... the fourth is stored though never acknowledged: its retry stores nothing twice. A first
        # version trains and goes live; the second is killed at the first step of a version's life armed
        chain.start(f"{steps[0]}@2")
        chain.check_events(_batch(3), committed=True)
        assert chain.send(_batch(3)) == {"inserted": 0, "duplicates": 40, "new_users": 0, "new_items": 0}
        good = chain.train()
        assert chain.ready(good)["status"] == "ready"
        chain.serves(good)
        for n, (step, following) in enumerate(zip(steps, [*steps[1:], "restore.midway"]), 1):
            killed = chain.train()
            assert killed == good + n
            chain.died(step)
            # ... that version reads failed (interrupted), the first still serves; the next step is armed
            chain.start(following)
            chain.interrupted(killed)
            chain.serves(good)

        # a restore is killed half-way through its transaction
        body = _restore_body(12_000)
        assert _restore(chain.port, body) is None
        chain.died("restore.midway")

        # ... none of the restore is stored; everything acknowledged is, once; its retry stores it all
        chain.start()
        chain.check_events([], committed=None)
        assert not any(e.startswith("r") for e in chain.stored_events())
        chain.serves(good)
        assert _restore(chain.port, body)["events"] == 12_000
    finally:
        chain.stop()


def _chunked(port: int, path: str, pieces, key: str | None) -> tuple[int, dict, int, int]:
    """POST ``pieces`` (bytes) as a chunked body over a raw socket, and stop sending as soon as the
    server answers: (status, JSON answer, bytes of body sent by then, bytes of the whole body)."""
    import select
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
            "Transfer-Encoding: chunked"] + ([f"Authorization: Bearer {key}"] if key else [])
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = total = 0
    answered = False
    for piece in pieces:
        total += len(piece)
        if answered or select.select([sock], [], [], 0)[0]:
            answered = True  # the server has answered: the rest is never sent
            continue
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            answered = True
            continue
        sent += len(piece)
    if not answered:
        sock.sendall(b"0\r\n\r\n")
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    sock.close()
    return int(head.split(b" ")[1]), json.loads(body), sent, total


def _events_json(megabytes: float, prefix: str, rows: int | None = None):
    """A JSON array of events, ``megabytes`` long, in pieces of about 256 kB: as many events as fill
    it, or ``rows`` events padded with blanks (a batch within max_batch, as large as wanted)."""
    pad = b"" if rows is None else b" " * int(megabytes * 1_000_000 / rows)
    piece, k, size = [], 0, 0
    yield b"["
    while k < rows - 1 if rows is not None else size < megabytes * 1_000_000:
        row = json.dumps({"event_id": f"{prefix}{k}", "user_id": f"u{k % 50}", "item_id": f"i{k % 70}",
                          "type": "click"}).encode() + b"," + pad
        piece.append(row)
        size += len(row)
        k += 1
        if size // 250_000 != (size - len(row)) // 250_000:
            yield b"".join(piece)
            piece = []
    yield b"".join(piece) + b'{"event_id": "%slast", "user_id": "u", "item_id": "i", "type": "click"}]' % prefix.encode()


def _rss(pid: int) -> int:
    """The process's resident memory, bytes (/proc/PID/status VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_a_chunked_body_is_refused_before_it_is_read(tmp_path):
    """A body sent chunked has no length to check: the key is checked before any of it is read
    (401 while it is still being sent), and its bytes are counted as they arrive (413 as soon as they
    pass max_request_bytes, 2 MB); nothing of either is stored, and two 40 MB bodies without a key
    leave the server's memory where it was (before: all 40 MB were read, and the server grew by 277 MB)."""
    port = free_port()
    server = start_server(tmp_path / "data", None, port)
    try:
        assert post(port, _batch(0))["inserted"] == 40  # the request paths warmed up
        limit = 2_000_000
        before = _rss(server.pid)
        for attempt in range(2):
            status, answer, sent, total = _chunked(port, "/v1/feedback", _events_json(40, f"n{attempt}-"), None)
            assert status == 401 and "API key" in answer["detail"], answer
            assert sent < total // 4, (sent, total)  # answered long before the body was all sent
        grown = _rss(server.pid) - before
        assert grown < limit, f"RSS grew by {grown / 1e6:.1f} MB"
        # 2,000 events (within max_batch) in 7.2 MB: stored before, though over the 2 MB limit
        status, answer, sent, total = _chunked(port, "/v1/feedback", _events_json(7.2, "big-", rows=2000), ADMIN)
        assert status == 413 and "max_request_bytes" in answer["detail"], answer
        assert sent < total, (sent, total)
        assert call(port, "GET", "/readyz")["events"] == 40  # nothing of the refused bodies stored
        status, answer, _, _ = _chunked(port, "/v1/feedback", _events_json(1.8, "ok-", rows=2000), ADMIN)
        assert status == 200 and answer["inserted"] == 2000  # a chunked body under the limit is stored
    finally:
        server.kill()
        server.wait(timeout=30)
        server.stderr.close()


def _serve(data_dir, url) -> subprocess.Popen:
    args = [sys.executable, "-m", "penchant", "serve", "--port", "0", "--data-dir", str(data_dir)]
    return subprocess.Popen(args + (["--database-url", url] if url else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PENCHANT_ADMIN_KEY=ADMIN, PYTHONPATH=str(ROOT / "src")))


def test_two_servers_started_at_once_on_a_fresh_store(tmp_path, database_url):
    """Started at the same moment on a fresh folder (SQLite): one serves, the other exits 2 with one
    line naming the one that serves. Each with a folder of its own on a fresh PostgreSQL database:
    both serve (before, both created the tables at once and one stopped, calling the store damaged)."""
    folders = [tmp_path / "data"] * 2 if database_url is None else [tmp_path / "a", tmp_path / "b"]
    procs = [_serve(folder, database_url) for folder in folders]
    try:
        first = [p.stderr.readline() for p in procs]  # the start-up line, or the one line of a refusal
        serving = [p for p, line in zip(procs, first) if line.startswith("penchant serving on http://")]
        if database_url is None:
            assert len(serving) == 1, first
            (winner,), (loser,) = serving, [p for p in procs if p not in serving]
            assert loser.wait(timeout=60) == 2
            refusal = first[procs.index(loser)] + loser.stderr.read()
            assert refusal == (f"penchant: error: {tmp_path / 'data'} is already served by penchant serve "
                               f"(pid {winner.pid}, started ") + refusal.split("started ", 1)[1], refusal
            assert refusal.count("\n") == 1 and refusal.endswith("(servers may share a PostgreSQL store, each with "
                                                                   "its own --data-dir)\n"), refusal
        else:
            assert len(serving) == 2, first
        for p in serving:  # each answers, and takes the admin key (registered once, by whichever came first)
            port = int(first[procs.index(p)].split(":")[2].split(" ")[0])
            assert call(port, "GET", "/readyz")["status"] == "ready" and call(port, "GET", "/v1/models") == []
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # never leave a server behind, whatever failed
                p.kill()
                p.wait(timeout=30)
            p.stderr.close()
