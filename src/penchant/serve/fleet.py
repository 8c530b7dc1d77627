"""Service replicas on one PostgreSQL: model files kept in the database, a local cache of them in
each replica's data folder, and a listener that hears the other replicas' changes.

Storage (a documented choice: the database, no object store): a ready version's files
(``model.npz``, the artefact, and ``items.usearch``, the approximate index when one was built) are
copied into ``version_chunks`` as pieces of :data:`CHUNK_BYTES`, read from disk one piece at a time,
in the transaction that marks the version ready (:meth:`penchant.serve.store.Store.mark_ready`);
the version's ``files`` column is its manifest (size and SHA-256 of each file). The database copy is
the truth: a replica serves a version from ``<data_dir>/models/v<id>/``, fetched when missing and
fetched again when a file there does not match the manifest (checked at every load). A fetch
writes to a temporary name, checks size and SHA-256, syncs and renames, so a half-written file is
never used. The memory-mapped arrays (``arrays/``) are not stored: each replica writes them from the
artefact at its first load, as one process always has (:func:`penchant.models.artefact.load`).

Changes (activation, rollback, item changes, restores, key revocations, events) are counted in the
store in the transaction that makes them (``fleet_state``, ``user_event_counts``); every answer
reads those counts (one SELECT, :meth:`~penchant.serve.store.Store.fleet_read`) and a replica whose
counts moved reloads before answering, so after an activation returns no replica answers with the
old version, whether or not it heard about it. The :class:`Listener` hears the NOTIFY that each
change sends and reloads at once in the background (and compares the counter every second, so a
notification lost with a dropped connection costs nothing but that head start).

SQLite keeps the files in the data folder and shares changes between the workers of one folder
through memory (:class:`~penchant.serve.host.ModelHost`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from penchant.serve.store import Store, psycopg_url, version_chunks

#: the size of a stored piece of a version's file: a few MB, so neither side holds a whole file
CHUNK_BYTES = 4 << 20
#: the files of a version folder kept in the store (the memory-mapped ``arrays/`` are rebuilt from the artefact)
STORED = ("model.npz", "items.usearch")
#: the NOTIFY channel of changes (per database)
CHANNEL = "penchant_fleet"


def upload(conn: Connection, version: int, folder: Path) -> dict:
    """Copy ``folder``'s :data:`STORED` files into ``version_chunks`` (in ``conn``'s transaction),
    one :data:`CHUNK_BYTES` piece in memory at a time; returns the manifest
    ``{relative path: {"size": bytes, "sha256": hex, "chunk_bytes": int}}``."""
    manifest = {}
    conn.execute(sa.delete(version_chunks).where(version_chunks.c.version == version))  # a retried publish
    for name in STORED:
        path = Path(folder) / name
        if not path.exists():
            continue
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as f:
            for number, piece in enumerate(iter(lambda: f.read(CHUNK_BYTES), b"")):
                digest.update(piece)
                size += len(piece)
                conn.execute(sa.insert(version_chunks).values(version=version, path=name, chunk=number, data=piece))
        manifest[name] = {"size": size, "sha256": digest.hexdigest(), "chunk_bytes": CHUNK_BYTES}
    return manifest


def _matches(path: Path, meta: dict) -> bool:
    """Whether the file at ``path`` has the manifest's size and SHA-256 (read in pieces)."""
    try:
        if path.stat().st_size != meta["size"]:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for piece in iter(lambda: f.read(CHUNK_BYTES), b""):
                digest.update(piece)
    except OSError:
        return False
    return digest.hexdigest() == meta["sha256"]


class VersionFiles:
    """Where this replica finds a version's files: its folder in the data folder (SQLite: where it
    was written), fetched from the store first when the store is shared (see the module's notes)."""

    def __init__(self, store: Store, models_dir: Path) -> None:
        self.store, self.models_dir = store, Path(models_dir)
        self.fetched = 0  # files copied from the store by this process (a test and the metrics read it)

    def local(self, v: dict) -> Path:
        """The folder holding version ``v``'s files (``v``: a model_versions row), every stored file
        in it checked against the manifest (size and SHA-256) and fetched again where missing or
        different. A version with no manifest (SQLite, or written before the store kept files) is
        its recorded path."""
        manifest = v.get("files")
        if not self.store.shared or not manifest:
            return Path(v["path"])
        folder = self.models_dir / f"v{v['id']}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, meta in sorted(manifest.items()):
            if not _matches(folder / name, meta):
                self._fetch(v["id"], name, meta, folder)
        return folder

    def _fetch(self, version: int, name: str, meta: dict, folder: Path) -> None:
        """Copy one stored file into ``folder`` (a temporary name, checked, synced, renamed); the
        artefact's memory-mapped arrays are dropped when the artefact is fetched again (rebuilt at load)."""
        from penchant.models.artefact import ArtefactError

        target = folder / name
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.part"
        digest, size = hashlib.sha256(), 0
        count = -(-meta["size"] // meta["chunk_bytes"])
        try:
            with open(tmp, "wb") as out:
                for number in range(count):
                    with self.store.engine.connect() as conn:  # one piece at a time in memory
                        piece = conn.execute(sa.select(version_chunks.c.data).where(
                            version_chunks.c.version == version, version_chunks.c.path == name,
                            version_chunks.c.chunk == number)).scalar()
                    if piece is None:
                        break
                    piece = bytes(piece)
                    digest.update(piece)
                    size += len(piece)
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
            if size != meta["size"] or digest.hexdigest() != meta["sha256"]:
                raise ArtefactError(f"the store's copy of version {version}'s {name} does not match its manifest "
                                    f"({size} bytes, sha256 {digest.hexdigest()[:12]}…; expected {meta['size']} "
                                    f"bytes, {meta['sha256'][:12]}…)", file=target)
            if name == "model.npz" and (folder / "arrays").exists():  # mapped from the old file: rebuilt at load
                stale = folder / f".arrays.{os.getpid()}.{threading.get_ident()}.old"
                os.replace(folder / "arrays", stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, target)
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.fetched += 1
        finally:
            tmp.unlink(missing_ok=True)


class Listener:
    """A background thread on its own connection that LISTENs for the replicas' changes and calls
    ``on_change`` when one arrives, and at least every ``poll_s`` seconds regardless (the callback
    compares the store's counter, so a missed notification is caught there). A dropped connection
    is opened again (after 0.5 s, doubling to 10 s while it fails)."""

    def __init__(self, store: Store, on_change: Callable[[], None], poll_s: float = 1.0) -> None:
        self.url = psycopg_url(store.engine)
        self.on_change, self.poll_s = on_change, poll_s
        self.stopping = threading.Event()
        self.heard = 0  # notifications received (tests read it)
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="penchant-fleet-listener")

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        """End the thread: a NOTIFY wakes it at once (the other replicas' listeners wake too, find
        their counts unchanged, and wait on)."""
        import psycopg

        self.stopping.set()
        if self.thread.is_alive():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f"NOTIFY {CHANNEL}")
            except psycopg.Error:
                pass  # the server is gone: the thread ends at its next tick
            self.thread.join(timeout=2 * self.poll_s + 1)

    def _run(self) -> None:
        import psycopg

        wait = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    wait = 0.5
                    self._changed()  # whatever happened while no connection listened
                    while not self.stopping.is_set():
                        heard = sum(1 for _ in conn.notifies(timeout=self.poll_s))
                        self.heard += heard
                        self._changed()
            except psycopg.Error:
                if self.stopping.is_set():
                    return
                self.reconnects += 1
                self.stopping.wait(wait)
                wait = min(10.0, wait * 2)

    def _changed(self) -> None:
        try:
            self.on_change()
        except Exception:  # noqa: BLE001  # a failed reload is retried at the next tick; answers check for themselves
            traceback.print_exc()
