"""`penchant serve --workers 2`: both processes answer, an activation under load reaches every
worker before its next answer (no answer mixes versions, none after the activation is old), an
event through one worker invalidates the user's cached answers in both, a worker killed with
SIGKILL is started again and serves the active version, workers killed during a restore or
an activation leave all of the restore or none, and one whole active version, and lists served
just before a SIGTERM are stored; one process lets a slow request in flight at SIGTERM finish."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from penchant.serve.store import Store, database_url, make_engine
from tests.serve.server import ADMIN, call, clustered_events, free_port, start_server


def _ready(port: int, version: int) -> None:
    end = time.time() + 120
    while call(port, "GET", f"/v1/models/{version}")["status"] == "training":
        assert time.time() < end, "training did not finish"
        time.sleep(0.1)


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except OSError:
        pass  # the worker died under the request


def _respawned(port: int, dead: set[int]) -> set[int]:
    """The two worker pids once the supervisor has replaced every one of ``dead``."""
    deadline = time.time() + 120
    while True:
        try:
            now = _pids(port, 20)
        except OSError:
            now = set()
        if len(now) == 2 and not now & set(dead):
            return now
        assert time.time() < deadline, now
        time.sleep(0.2)


def _pids(port: int, n: int = 40) -> set[int]:
    return {call(port, "GET", "/healthz")["pid"] for _ in range(n)}


@pytest.mark.slow
def test_two_workers_share_versions_and_survive_a_killed_worker(tmp_path):
    port = free_port()
    # room for the 4.6 MB restore below (the default limit is 2 MB), and no rate limit: the polling loops
    # below send as fast as the workers answer (a fast run passed 1,200 a minute and got a 429)
    config = tmp_path / "service.toml"
    config.write_text("[service]\nmax_request_bytes = 20000000\nrate_limit_per_minute = 100000000\n")
    server = start_server(tmp_path / "data", None, port, "--workers", "2", "--config", str(config))
    try:
        call(port, "POST", "/v1/feedback", clustered_events())
        v1 = call(port, "POST", "/v1/models/train", {"model": "pop", "activate": True})["id"]
        _ready(port, v1)
        v2 = call(port, "POST", "/v1/models/train", {"model": "itemknn"})["id"]
        _ready(port, v2)
        deadline = time.time() + 60
        while len(pids := _pids(port)) < 2:  # the second worker may still be starting
            assert time.time() < deadline, pids
        answers: list[tuple[float, float, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                start = time.monotonic()
                model = call(port, "GET", "/v1/users/u0/recommendations?k=5")["model"]
                answers.append((start, time.monotonic(), model))

        clients = [threading.Thread(target=load) for _ in range(4)]
        for c in clients:
            c.start()
        time.sleep(1.0)
        sent = time.monotonic()
        assert call(port, "POST", f"/v1/models/{v2}/activate")["active"] is True
        answered = time.monotonic()
        deadline = time.time() + 60
        while sum(start > answered for start, _, _ in list(answers)) < 40:  # a loaded machine answers slowly
            assert time.time() < deadline, "too few answers after the activation"
            time.sleep(0.1)
        stop.set()
        for c in clients:
            c.join()
        old, new = f"pop:v{v1}", f"itemknn:v{v2}"
        assert {m for _, _, m in answers} == {old, new}
        assert all(m == old for _, end, m in answers if end < sent)
        after = [m for start, _, m in answers if start > answered]
        assert len(after) >= 40 and set(after) == {new}  # every worker answered with the new version at once

        # an event stored through one worker makes the user's cached answers stale in both
        rec = "/v1/users/u0/recommendations?k=5"
        best = call(port, "GET", rec)["items"][0]["id"]
        assert {call(port, "GET", rec)["items"][0]["id"] for _ in range(20)} == {best}  # cached in both workers
        call(port, "POST", "/v1/feedback", [{"event_id": "w1", "user_id": "u0", "item_id": best, "type": "click"}])
        assert not any(best in [x["id"] for x in call(port, "GET", rec)["items"]] for _ in range(20))

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        pids = _respawned(port, {victim})
        assert {call(port, "GET", "/v1/users/u0/recommendations?k=5")["model"] for _ in range(20)} == {new}

        # both workers killed in the middle of a restore: it stored everything or nothing
        n = 40_000
        dump = "\n".join(json.dumps({"kind": "event", "event_id": f"r{k}", "user_id": f"u{k % 60}", "item_id": f"i{k % 40}",
                                     "type": "click", "timestamp": 5000.0 + k}) for k in range(n)).encode()
        outcome: list = []

        def restore() -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/restore", data=dump, method="POST",
                                             headers={"Authorization": f"Bearer {ADMIN}"})
            try:
                with urllib.request.urlopen(request, timeout=120) as r:
                    outcome.append(json.loads(r.read()))
            except OSError as e:
                outcome.append(e)

        sender = threading.Thread(target=restore)
        sender.start()
        time.sleep(0.5)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        sender.join(120)
        pids = _respawned(port, pids)
        store = Store(make_engine(database_url(tmp_path / "data", None)))
        restored = sum(e.startswith("r") for e in store.event_ids())
        assert restored in (0, n), restored
        if isinstance(outcome[0], dict):  # acknowledged before the kill: then it is all there
            assert outcome[0]["events"] == n and restored == n

        # both workers killed right after an activation was sent: one whole version is active and served
        sender = threading.Thread(target=lambda: _quietly(call, port, "POST", f"/v1/models/{v1}/activate"))
        sender.start()
        time.sleep(0.05)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        sender.join(60)
        _respawned(port, pids)
        active = [v for v in store.versions() if v["active"] and v["kind"] == "recommender"]
        assert len(active) == 1 and active[0]["status"] == "ready"
        label = f"{active[0]['model']}:v{active[0]['id']}"
        assert {call(port, "GET", "/v1/users/u1/recommendations?k=5")["model"] for _ in range(20)} == {label}

        # lists served just before a SIGTERM are still in the workers' buffers (written once a
        # second); each worker writes what it holds as it stops
        served = {call(port, "GET", f"/v1/users/u{k % 10}/recommendations?k=3")["list_id"] for k in range(40)}
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    assert len(served) == 40 and served <= {row["list_id"] for row in store.dump() if row["kind"] == "served"}


def test_sigterm_lets_a_slow_request_in_flight_finish(tmp_path):
    """A batch of 10,000 events is in flight when SIGTERM arrives (its body sent but for the last
    byte): the server still reads it, stores it and answers, then exits cleanly."""
    import http.client

    port = free_port()
    server = start_server(tmp_path / "data", None, port)
    rows = [{"event_id": f"e{k}", "user_id": f"u{k % 500}", "item_id": f"i{k % 997}", "type": "click",
             "timestamp": float(k)} for k in range(10_000)]
    body = json.dumps(rows).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/v1/feedback")
    for name, value in (("Authorization", f"Bearer {ADMIN}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))):
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(body[:-1])
    time.sleep(0.5)  # the server has the request and most of its body
    server.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    conn.send(body[-1:])
    response = conn.getresponse()
    answer = json.loads(response.read())
    code = server.wait(timeout=60)
    assert code == 0, server.stderr.read().decode()[-2000:]
    assert response.status == 200 and answer["inserted"] == 10_000 and answer["duplicates"] == 0
    store = Store(make_engine(database_url(tmp_path / "data", None)))
    assert len(store.event_ids()) == 10_000
