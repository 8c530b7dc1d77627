"""`penchant serve --workers 2`: both processes answer, an activation under load reaches every
worker before its next answer (no answer mixes versions, none after the activation is old), an
event through one worker invalidates the user's cached answers in both, and a worker killed with
SIGKILL is started again and serves the active version."""

from __future__ import annotations

import os
import signal
import threading
import time

from tests.serve.server import call, clustered_events, free_port, start_server


def _ready(port: int, version: int) -> None:
    end = time.time() + 120
    while call(port, "GET", f"/v1/models/{version}")["status"] == "training":
        assert time.time() < end, "training did not finish"
        time.sleep(0.1)


def _pids(port: int, n: int = 40) -> set[int]:
    return {call(port, "GET", "/healthz")["pid"] for _ in range(n)}


def test_two_workers_share_versions_and_survive_a_killed_worker(tmp_path):
    port = free_port()
    server = start_server(tmp_path / "data", None, port, "--workers", "2")
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
        deadline = time.time() + 90
        while True:  # the supervisor starts a replacement, which loads the active version
            try:
                now = _pids(port, 20)
            except OSError:
                now = set()
            if len(now) == 2 and victim not in now:
                break
            assert time.time() < deadline, now
            time.sleep(0.2)
        assert {call(port, "GET", "/v1/users/u0/recommendations?k=5")["model"] for _ in range(20)} == {new}
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
