"""Running the app as a server: one server per data folder (a lock file says who holds it), the
socket bound before anything is announced, a start-up line saying where it listens, which store
and which model versions it serves, graceful shutdown (requests in flight finish), and optional
JSON access logs.

With ``workers > 1`` the parent binds the socket and supervises that many worker processes
(started with ``spawn``, so none inherits the parent's threads), each a whole app on the shared
socket; the kernel spreads connections between them. They share one store and one counter of
changes (:class:`~penchant.serve.host.ModelHost`), so an activation in one is seen by all before
their next answer. A worker that dies is started again; SIGTERM/SIGINT stop them all gracefully."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO

from penchant.errors import ConfigError
from penchant.serve.keys import bearer, key_id_of
from penchant.serve.metrics import AfterEachRequest

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
        holder = _holder(f)
        f.close()
        raise ConfigError(f"{data_dir} is already served by {holder}; stop that server or give another --data-dir "
                          "(servers may share a PostgreSQL store, each with its own --data-dir)") from None
    line = f"penchant serve (pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')})\n"
    os.ftruncate(f.fileno(), 0)
    os.write(f.fileno(), line.encode())  # one write: a reader sees no line or all of it
    return f


def _holder(f: IO) -> str:
    """The line the server holding the lock wrote, once it is there. Two servers started together
    on a fresh folder: the refused one can get here before the holder has written its line (the
    file is empty), or, in a folder served before, while it still holds the last server's line (a
    pid no longer running); it waits for the holder's own line, a second at most."""
    import re

    for _ in range(50):
        f.seek(0)
        text = f.read()
        pid = re.search(r"\(pid (\d+),", text)
        if text.endswith("\n") and pid and process_running(int(pid.group(1))):
            return text.strip()
        time.sleep(0.02)
    return "another process"


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0; one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


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
    active = {kind: d.label for kind, d in (("recommender", svc.host.deployed), ("preference", svc.host.preference)) if d}
    lines = _announce(svc.store, sock, active)
    return lines + [f"warning: {line}" for line in app.state.refused]


class AccessLog(AfterEachRequest):
    """ASGI middleware writing one JSON line per request (time, method, path, status, duration,
    the key's id — never the key) to ``stream``."""

    def __init__(self, app, stream: IO = sys.stderr) -> None:
        super().__init__(app)
        self.stream = stream

    def done(self, scope: dict, status: int, seconds: float) -> None:
        key = bearer(dict(scope["headers"]).get(b"authorization", b"").decode("latin-1"))
        key_id = key_id_of(key) if key else None
        client = scope.get("client") or [None]
        record = {"time": round(time.time(), 3), "method": scope["method"], "path": scope["path"],
                  "status": status, "ms": round(seconds * 1000, 3), "key_id": key_id, "client": client[0]}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


def _uvicorn(app, sock: socket.socket, access_log: bool, graceful_s: float) -> None:
    import uvicorn

    if access_log:
        app = AccessLog(app)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=graceful_s,
                            lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def _worker(settings, sock: socket.socket, generation, generation_lock, user_events, index: int, access_log: bool,
            graceful_s: float) -> None:
    """One worker process: its own app over the shared store and socket."""
    from penchant.serve.app import create_app

    _die_with_parent()
    app = create_app(settings, generation=generation, generation_lock=generation_lock, user_events=user_events,
                     schedule=index == 0)
    for line in app.state.refused:
        print(f"warning: worker {index}: {line}", file=sys.stderr, flush=True)
    _uvicorn(app, sock, access_log, graceful_s)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the supervisor dies, even by SIGKILL, so no orphaned
    worker keeps serving the port (elsewhere a no-op)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_workers(settings, host: str, port: int, workers: int, *, access_log: bool = False,
                  graceful_s: float = 30.0) -> None:
    """Bind, announce, start ``workers`` worker processes and keep them running until
    SIGINT/SIGTERM. The caller has created the store (migrations, keys) and holds the data folder."""
    import multiprocessing
    import signal

    from penchant.serve.answers import SLOTS
    from penchant.serve.store import Store, database_url, make_engine

    ctx = multiprocessing.get_context("spawn")
    generation, generation_lock = ctx.RawValue("q", 0), ctx.Lock()
    user_events = ctx.RawArray("q", SLOTS)
    sock = bind(host, port)
    store = Store(make_engine(database_url(settings.data_dir, settings.database_url)))
    active = {v["kind"]: f"{v['model']}:v{v['id']}" for v in store.versions() if v["active"] and v["status"] == "ready"}
    for line in _announce(store, sock, active):  # what the workers load (each says what it refuses)
        print(line, file=sys.stderr, flush=True)
    print(f"{workers} worker processes", file=sys.stderr, flush=True)
    store.engine.dispose()
    stopping = []

    def start(index: int):
        proc = ctx.Process(target=_worker, name=f"penchant-worker-{index}", daemon=False,
                           args=(settings, sock, generation, generation_lock, user_events, index, access_log, graceful_s))
        proc.start()
        return proc

    def stop(signum, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    procs = [start(k) for k in range(workers)]
    try:
        while not stopping:
            for k, proc in enumerate(procs):
                if not proc.is_alive() and not stopping:
                    print(f"worker {k} (pid {proc.pid}) exited with {proc.exitcode}; starting it again",
                          file=sys.stderr, flush=True)
                    procs[k] = start(k)
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn lets requests in flight finish
        for proc in procs:
            proc.join(graceful_s + 5)
            if proc.is_alive():
                proc.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()


#: what the start-up lines say of a kind of model with no active version
NONE_ACTIVE = {"recommender": "none (popular items until one is trained)", "preference": "none"}


def _announce(store, sock: socket.socket, active: dict) -> list[str]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    counts = store.counts()
    lines = [f"penchant serving on http://{shown}:{port} (API docs /docs, dashboard /ui)",
             f"store {store.engine.url.render_as_string(hide_password=True)}: {counts['users']:,} users, "
             f"{counts['items']:,} items, {counts['events']:,} events",
             "models: " + "; ".join(f"{kind} {active.get(kind, default)}" for kind, default in NONE_ACTIVE.items())]
    return lines


def serve_forever(app, host: str, port: int, *, access_log: bool = False, graceful_s: float = 30.0) -> None:
    """Bind, announce, serve until SIGINT/SIGTERM (then requests in flight get ``graceful_s``
    seconds to finish). The caller holds the data folder (:func:`hold_data_dir`)."""
    import signal

    sock = bind(host, port)
    for line in startup_lines(app, sock):
        print(line, file=sys.stderr, flush=True)
    # uvicorn re-raises the signal that stopped it once its graceful shutdown is done, under the
    # handlers it found: these make that a clean exit (status 0, as with --workers) rather than death
    # by SIGTERM (-15), which supervisors would read as a crash
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _uvicorn(app, sock, access_log, graceful_s)
    finally:
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
