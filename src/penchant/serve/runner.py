"""Running the app as a server: one server per data folder (a lock file says who holds it), the
socket bound before anything is announced, a start-up line saying where it listens, which store
and which model versions it serves, graceful shutdown (requests in flight finish), and optional
JSON access logs."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO

from penchant.errors import ConfigError

LOCK_NAME = "penchant.lock"


def hold_data_dir(data_dir: Path) -> IO:
    """An exclusive lock on ``data_dir`` for this process's life (the returned file keeps it).
    A second server on the same folder is refused naming the process that holds it: two servers
    would each activate versions and train into the same models folder without knowing of the other."""
    import fcntl

    path = Path(data_dir) / LOCK_NAME
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 — held open while serving
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ConfigError(f"{data_dir} is already served by {holder}; stop that server or give another --data-dir "
                          "(servers may share a PostgreSQL store, each with its own --data-dir)") from None
    f.seek(0)
    f.truncate()
    f.write(f"penchant serve (pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    f.flush()
    return f


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; a port in use is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def startup_lines(app, sock: socket.socket) -> list[str]:
    """What the server says when it is ready: where, which store, which versions, what it refused."""
    svc = app.state.service
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    counts = svc.store.counts()
    store = svc.store.engine.url.render_as_string(hide_password=True)
    models = [f"recommender {svc.host.deployed.label if svc.host.deployed else 'none (popular items until one is trained)'}",
              f"preference {svc.host.preference.label if svc.host.preference else 'none'}"]
    lines = [f"penchant serving on http://{shown}:{port} (API docs /docs, dashboard /ui)",
             f"store {store}: {counts['users']:,} users, {counts['items']:,} items, {counts['events']:,} events",
             "models: " + "; ".join(models)]
    return lines + [f"warning: {line}" for line in app.state.refused]


class AccessLog:
    """ASGI middleware writing one JSON line per request (time, method, path, status, duration,
    the key's id — never the key) to ``stream``."""

    def __init__(self, app, stream: IO = sys.stderr) -> None:
        self.app, self.stream = app, stream

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            key_id = auth.split("_")[1] if auth.lower().startswith("bearer pk_") and auth.count("_") >= 2 else None
            client = scope.get("client") or [None]
            record = {"time": round(time.time(), 3), "method": scope["method"], "path": scope["path"],
                      "status": status[0], "ms": round((time.perf_counter() - start) * 1000, 3),
                      "key_id": key_id, "client": client[0]}
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()


def serve_forever(app, host: str, port: int, *, access_log: bool = False, graceful_s: float = 30.0) -> None:
    """Bind, announce, serve until SIGINT/SIGTERM (then requests in flight get ``graceful_s``
    seconds to finish). The caller holds the data folder (:func:`hold_data_dir`)."""
    import uvicorn

    sock = bind(host, port)
    if access_log:
        app = AccessLog(app)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=graceful_s,
                            lifespan="on")
    for line in startup_lines(app.app if access_log else app, sock):
        print(line, file=sys.stderr, flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
