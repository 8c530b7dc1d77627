"""Helpers for the service tests: a planted two-cluster event log, and a real `penchant serve`
process on a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from tests.conftest import ROOT

ADMIN = "pk_admin1_" + "a" * 40


def clustered_events(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> list[dict]:
    """Two taste clusters: even users click even items, odd users odd items."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for k, i in enumerate(rng.choice(pool, per_user, replace=False)):
            events.append({"event_id": f"u{u}-{k}", "user_id": f"u{u}", "item_id": f"i{i}", "type": "click",
                           "timestamp": float(1000 + k)})
    return events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, url, port, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``penchant serve`` on ``port`` (``env``: variables over this process's, e.g. failpoints)."""
    args = [sys.executable, "-m", "penchant", "serve", "--port", str(port), "--data-dir", str(data_dir), *extra]
    env = dict(os.environ, **(env or {}), PENCHANT_ADMIN_KEY=ADMIN, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(args + (["--database-url", url] if url else []), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.time() + 120
    while time.time() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()[-2000:]) from None
            time.sleep(0.2)
    raise AssertionError("server did not start")


def post(port: int, rows: list[dict]) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/feedback", data=json.dumps(rows).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def call(port: int, method: str, path: str, body=None) -> dict:
    """One JSON request to a running server with the admin key."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
