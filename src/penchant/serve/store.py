"""Everything the service keeps, in one SQL database through SQLAlchemy 2: users, items, feedback
events, API keys and model versions. SQLite (WAL, synchronous=FULL) is the embedded default;
PostgreSQL by URL. The schema is created and upgraded by Alembic (:func:`migrate`).

Feedback is written in one transaction per batch and acknowledged only after the commit; a
client-supplied ``event_id`` is the primary key, so a retried batch inserts nothing twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penchant.errors import ConfigError, DataError, StoreUnavailableError
from penchant.serve.failpoints import failpoint

_T = TypeVar("_T")

#: the longest user, item or event id kept (the id columns' VARCHAR length): one rule, checked by the
#: request schemas (:data:`penchant.serve.schemas.Id`), which every path that stores an id goes through
MAX_ID_LENGTH = 255

metadata = sa.MetaData()

users = sa.Table("users", metadata,
                 sa.Column("id", sa.String(MAX_ID_LENGTH), primary_key=True),
                 sa.Column("attributes", sa.JSON, nullable=False, default=dict),
                 sa.Column("created_at", sa.Float, nullable=False))
items = sa.Table("items", metadata,
                 sa.Column("id", sa.String(MAX_ID_LENGTH), primary_key=True),
                 sa.Column("title", sa.Text, nullable=True),
                 sa.Column("text", sa.Text, nullable=True),
                 sa.Column("categories", sa.JSON, nullable=False, default=list),
                 sa.Column("attributes", sa.JSON, nullable=False, default=dict),
                 sa.Column("created_at", sa.Float, nullable=False),
                 sa.Column("timestamp", sa.Float, nullable=True))
feedback = sa.Table("feedback", metadata,
                    sa.Column("event_id", sa.String(MAX_ID_LENGTH), primary_key=True),
                    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=False),
                    sa.Column("item_id", sa.String(MAX_ID_LENGTH), nullable=False, index=True),
                    sa.Column("type", sa.String(64), nullable=False),
                    sa.Column("value", sa.Float, nullable=False, default=1.0),
                    sa.Column("timestamp", sa.Float, nullable=False),
                    sa.Index("ix_feedback_user_item_type", "user_id", "item_id", "type"))  # covers user_items()
api_keys = sa.Table("api_keys", metadata,
                    sa.Column("id", sa.String(32), primary_key=True),
                    sa.Column("name", sa.String(255), nullable=False),
                    sa.Column("hash", sa.String(64), nullable=False),
                    sa.Column("scopes", sa.String(64), nullable=False),
                    sa.Column("created_at", sa.Float, nullable=False),
                    sa.Column("revoked_at", sa.Float, nullable=True))
model_versions = sa.Table("model_versions", metadata,
                          sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                          sa.Column("model", sa.String(64), nullable=False),
                          sa.Column("params", sa.JSON, nullable=False),
                          sa.Column("status", sa.String(16), nullable=False),
                          sa.Column("progress", sa.Float, nullable=False, default=0.0),
                          sa.Column("metrics", sa.JSON, nullable=True),
                          sa.Column("error", sa.Text, nullable=True),
                          sa.Column("path", sa.Text, nullable=True),
                          sa.Column("events", sa.Integer, nullable=True),
                          sa.Column("active", sa.Boolean, nullable=False, default=False),
                          sa.Column("kind", sa.String(16), nullable=False, default="recommender"),
                          sa.Column("created_at", sa.Float, nullable=False),
                          sa.Column("finished_at", sa.Float, nullable=True),
                          # while training: the process doing it ("host:pid:start ticks"), so one that died is found
                          sa.Column("owner", sa.String(255), nullable=True),
                          # PostgreSQL: the version's files in version_chunks, {relative path: {"size", "sha256"}}
                          sa.Column("files", sa.JSON, nullable=True))
#: a version's files in pieces of CHUNK_BYTES (PostgreSQL: every replica fetches them; :mod:`penchant.serve.fleet`)
version_chunks = sa.Table("version_chunks", metadata,
                          sa.Column("version", sa.Integer, primary_key=True),
                          sa.Column("path", sa.String(255), primary_key=True),
                          sa.Column("chunk", sa.Integer, primary_key=True),
                          sa.Column("data", sa.LargeBinary, nullable=False))
#: one row (id 1): counts bumped in the transaction of every change replicas must see at once
fleet_state = sa.Table("fleet_state", metadata,
                       sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                       sa.Column("generation", sa.BigInteger, nullable=False),  # versions, items, restores
                       sa.Column("keys", sa.BigInteger, nullable=False))        # key revocations
#: events stored per slot of users (CRC-32 of the id, :func:`penchant.serve.answers.slot`)
user_event_counts = sa.Table("user_event_counts", metadata,
                             sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
                             sa.Column("events", sa.BigInteger, nullable=False))

comparisons = sa.Table("comparisons", metadata,
                       sa.Column("event_id", sa.String(MAX_ID_LENGTH), primary_key=True),
                       sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True, index=True),
                       sa.Column("winner", sa.String(MAX_ID_LENGTH), nullable=False),
                       sa.Column("loser", sa.String(MAX_ID_LENGTH), nullable=False),
                       sa.Column("timestamp", sa.Float, nullable=False))
served_lists = sa.Table("served_lists", metadata,
                         sa.Column("list_id", sa.String(64), primary_key=True),
                         sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=False, index=True),
                         sa.Column("items", sa.JSON, nullable=False),          # item ids, top slot first
                         sa.Column("propensities", sa.JSON, nullable=False),   # P(item at its slot), per slot
                         sa.Column("slate_propensity", sa.Float, nullable=False),
                         sa.Column("version", sa.Integer, nullable=True),
                         # a two-stage version's ranker, "name:artefact digest" (TwoStage.ranker_identity)
                         sa.Column("ranker", sa.String(255), nullable=True),
                         sa.Column("policy", sa.String(64), nullable=False),
                         sa.Column("timestamp", sa.Float, nullable=False))
conversations = sa.Table("conversations", metadata,
                         sa.Column("id", sa.String(32), primary_key=True),
                         sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True),
                         sa.Column("state", sa.JSON, nullable=False),
                         sa.Column("created_at", sa.Float, nullable=False),
                         sa.Column("updated_at", sa.Float, nullable=False))


def database_url(data_dir: Path, url: str | None) -> str:
    """``url``, or SQLite in ``data_dir`` when none is given."""
    return url or f"sqlite:///{Path(data_dir).resolve() / 'penchant.db'}"


class SQLiteFile:
    """The identity (device, inode) of an SQLite store's file, taken when it is first opened, and
    the check that it is still the file at its path.

    SQLite writes through the file descriptors it opened: when the data folder is deleted (or the
    file replaced), those descriptors still reach the unlinked inodes, so every commit, fsync
    included, succeeds into files nobody can open again, and the data is gone when the process
    ends. One ``stat`` of the path at each commit (about a microsecond) notices; the commit is then
    refused, so nothing is acknowledged that was not kept."""

    def __init__(self, path: str) -> None:
        self.path, self.identity = path, None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def opened(self) -> None:
        """A connection opened the file: the first one fixes the identity; a later one that found
        another file (made again in the place of a deleted one) is refused."""
        now = self._stat()
        if self.identity is None:
            self.identity = now
        else:
            self.check()

    def check(self) -> None:
        """:class:`StoreUnavailableError` if the file at the path is not the one opened."""
        if self.identity is not None and self._stat() != self.identity:
            raise StoreUnavailableError(
                f"the store's file {self.path} was deleted or replaced while the service ran, so nothing written now "
                "could be kept; nothing was stored. Stop the service, and start it on the data folder that holds the "
                "store (or restore a dump into a new one)")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        path = engine.url.database
        file = SQLiteFile(str(Path(path).resolve())) if path and path != ":memory:" and not path.startswith("file:") else None

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged batch survives a crash
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            if file is not None:
                file.opened()

        if file is not None:
            engine.sqlite_file = file  # type: ignore[attr-defined]  # Store.check reads it
            # before each commit: a write that cannot be kept raises instead (the transaction rolls back)
            sa.event.listen(engine, "commit", lambda _conn: file.check())
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


#: the PostgreSQL advisory lock that migrations hold (any number: penchant's own)
MIGRATION_LOCK = 0x70656E63


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision. A store that cannot be opened or (SQLite)
    fails its integrity check is a :class:`ConfigError` naming it: a damaged store is never served.

    One process migrates at a time: the transaction first takes the store's write lock (SQLite:
    ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so processes started together on a fresh
    store (two servers sharing a PostgreSQL database, a server and ``penchant keys create``) wait
    for the first and then find its tables, instead of creating them twice (one failed, reported as
    a damaged store)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits (the busy timeout) for another migration
                problems = [p for r in conn.exec_driver_sql("PRAGMA quick_check") for p in r[0].splitlines()
                            if not p.startswith("***")]
                if problems != ["ok"]:
                    raise ConfigError(f"the store {where} is damaged (SQLite quick_check found {len(problems)} problems, "
                                      f"first: {problems[0]}); "
                                      "restore it from a dump (`penchant store restore`) into a new --data-dir")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.DatabaseError as e:
        raise ConfigError(f"the store {where} cannot be opened or is damaged ({e.orig}); if it was penchant's, "
                          "restore it from a dump (`penchant store restore`) into a new --data-dir") from None


def _insert_ignoring(engine: Engine, table: sa.Table):
    """INSERT … ON CONFLICT DO NOTHING for this engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


#: what a user's or an item's record holds besides its id, and what a record that never had it holds
RECORD_FIELDS = {"users": {"attributes": {}},
                 "items": {"title": None, "text": None, "categories": [], "attributes": {}, "timestamp": None}}


def _upsert(engine: Engine, table: sa.Table, fields: Sequence[str]):
    """INSERT … ON CONFLICT (id) DO UPDATE of ``fields`` only (DO NOTHING when there are none)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    if not fields:
        return stmt.on_conflict_do_nothing()
    return stmt.on_conflict_do_update(index_elements=[table.c.id], set_={f: stmt.excluded[f] for f in fields})


def psycopg_url(engine: Engine) -> str:
    """The URL of ``engine``'s PostgreSQL database as psycopg itself takes it (the password kept): for
    the connections penchant opens beside the engine's pool (:class:`KeptConnections`, the fleet's
    listener)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class KeptConnections:
    """Up to ``keep`` autocommit psycopg connections to ``engine``'s PostgreSQL database, kept open
    between uses: a statement sent on one (prepared) is one round trip, where a pooled SQLAlchemy
    connection costs four (pre-ping, BEGIN, the statement, COMMIT or ROLLBACK on return).
    :meth:`run` takes an idle one (or opens one) for each call, so threads calling at once each get
    their own; a connection the server dropped is closed and the work runs once more on a new one;
    a server that cannot be reached is :class:`StoreUnavailableError` (a 503) naming ``what``."""

    def __init__(self, engine: Engine, keep: int = 8) -> None:
        import queue

        self.url = psycopg_url(engine)
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.keep = keep

    def run(self, work: Callable[[Any], _T], what: str) -> _T:
        """``work(connection)``'s result, run on a kept connection (see the class): ``what`` completes
        "the database server could not be reached to …" (e.g. "check for changes")."""
        import queue

        import psycopg

        try:
            conn = self.idle.get_nowait()
        except queue.Empty:
            conn = None
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                result = work(conn)
                break
            except psycopg.OperationalError as e:  # the server dropped the kept connection: once more, anew
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 2:
                    raise StoreUnavailableError(f"the database server could not be reached to {what} "
                                                f"({type(e).__name__}); nothing was answered") from None
        if self.idle.qsize() < self.keep:
            self.idle.put(conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        import queue

        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


class CounterReader:
    """The read of the fleet's counters that every answer of a replica makes (PostgreSQL), on a few
    kept connections with a prepared statement (:class:`KeptConnections`): one round trip, where a
    pooled SQLAlchemy connection costs four (9 to 18 ms against 1.3 to 1.7 ms on this loaded 2-core
    machine). A connection the server dropped is opened again once; a server that cannot be reached
    is :class:`StoreUnavailableError` (a 503)."""

    SQL = ("SELECT generation, keys, (SELECT events FROM user_event_counts WHERE slot = %s) "
           "FROM fleet_state WHERE id = 1")

    def __init__(self, engine: Engine, keep: int = 8) -> None:
        self.connections = KeptConnections(engine, keep)

    def read(self, slot: int) -> tuple[int, int, int]:
        """(generation, keys, events of ``slot``; 0 for a slot with none, or slot -1)."""
        row = self.connections.run(lambda conn: conn.execute(self.SQL, (slot,), prepare=True).fetchone(),
                                   "check for changes")
        return int(row[0]), int(row[1]), int(row[2] or 0)

    def close(self) -> None:
        self.connections.close()


class Store:
    """The service's data, over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.key_generation = 0  # bumped when a key is revoked here, so caches drop it at once
        #: PostgreSQL: replicas on other hosts share the store, so changes are counted in it (fleet_state,
        #: user_event_counts) and model files kept in it (version_chunks); see :mod:`penchant.serve.fleet`
        self.shared = engine.dialect.name == "postgresql"
        self._counters: CounterReader | None = None

    def close(self) -> None:
        """Close the connections kept for the counters (the engine's pool is the engine's)."""
        if self._counters is not None:
            self._counters.close()

    # --- what replicas must see at once (PostgreSQL) -----------------------------------------------

    def _changed(self, conn: Connection, generation: int = 1, keys: int = 0) -> None:
        """Count a change every replica must see before its next answer, in the caller's transaction
        (``generation``: versions, items, restores; ``keys``: revocations), and NOTIFY the replicas'
        listeners (delivered at the commit). Nothing in an SQLite store (one data folder's processes
        share memory instead)."""
        if not self.shared:
            return
        conn.execute(sa.update(fleet_state).where(fleet_state.c.id == 1)
                     .values(generation=fleet_state.c.generation + generation, keys=fleet_state.c["keys"] + keys))
        conn.exec_driver_sql("SELECT pg_notify('penchant_fleet', '')")

    def _users_changed(self, conn: Connection, user_ids: Iterable[str]) -> None:
        """Bump the event counters of these users' slots in the caller's transaction (PostgreSQL), so
        every replica's answer cache sees their new events (:mod:`penchant.serve.answers`)."""
        if not self.shared:
            return
        from sqlalchemy.dialects.postgresql import insert

        from penchant.serve.answers import slot

        slots = sorted({slot(u) for u in user_ids})  # slot order: concurrent batches lock rows in one order
        if slots:
            stmt = insert(user_event_counts)
            conn.execute(stmt.on_conflict_do_update(index_elements=[user_event_counts.c.slot],
                                                    set_={"events": user_event_counts.c.events + 1}),
                         [{"slot": k, "events": 1} for k in slots])

    def fleet_read(self, user_id: str | None = None) -> tuple[int, int, int]:
        """(change generation, key revocations, events of ``user_id``'s slot) as the store holds them
        now: one SELECT of a primary-key row (and one slot), the check every answer of a replica
        makes, sent on a kept connection (:class:`CounterReader`: one round trip)."""
        from penchant.serve.answers import slot

        if self._counters is None:
            self._counters = CounterReader(self.engine)
        return self._counters.read(-1 if user_id is None else slot(user_id))

    def keys_changed(self) -> int:
        """A count that moves whenever a key is revoked: here (SQLite), or on any replica (PostgreSQL,
        read from the store: one SELECT)."""
        return self.fleet_read()[1] if self.shared else self.key_generation

    def check(self) -> None:
        """:class:`StoreUnavailableError` when the store cannot keep writes (an SQLite file deleted
        or replaced under it; see :class:`SQLiteFile`)."""
        file = getattr(self.engine, "sqlite_file", None)
        if file is not None:
            file.check()

    @contextmanager
    def _writing(self, conn: Connection | None) -> Iterator[Connection]:
        """``conn`` (a transaction someone else commits) or a transaction of its own."""
        if conn is not None:
            yield conn
        else:
            with self.engine.begin() as own:
                yield own

    # --- users and items -------------------------------------------------------------------------

    def upsert_users(self, rows: Sequence[dict], conn: Connection | None = None) -> int:
        """Store user records (see :meth:`upsert_records`); how many rows were given."""
        with self._writing(conn) as conn:
            self.upsert_records("users", rows, conn)
        return len(rows)

    def upsert_items(self, rows: Sequence[dict], conn: Connection | None = None) -> int:
        """Store item records (see :meth:`upsert_records`); how many rows were given."""
        with self._writing(conn) as conn:
            self.upsert_records("items", rows, conn)
            self._changed(conn)
        return len(rows)

    def upsert_records(self, kind: str, rows: Sequence[dict], conn: Connection) -> dict:
        """Store ``users`` or ``items`` (``kind``) records: a new id is added with the fields its row
        carries (the others blank); a stored one gets the fields its row carries and keeps the
        others, so data that lacks a field (a log with no titles) never overwrites it with nothing.
        A repeated id: its last row wins. Counts ``{"added", "updated"}`` (updated: stored records
        whose row carried at least one field)."""
        table, blank = (users if kind == "users" else items), RECORD_FIELDS[kind]
        last = {r["id"]: r for r in rows}
        if not last:
            return {"added": 0, "updated": 0}
        new = self.missing(kind, last, conn)
        by_fields: dict[tuple[str, ...], list[dict]] = {}
        for i in sorted(last):  # id order: concurrent writers lock rows in one order
            row = last[i]
            by_fields.setdefault(tuple(f for f in blank if f in row), []).append(row)
        now = time.time()
        for fields, part in by_fields.items():
            conn.execute(_upsert(self.engine, table, fields),
                         [{**blank, **{f: blank[f] if r[f] is None else r[f] for f in fields}, "id": r["id"],
                           "created_at": now} for r in part])
        updated = sum(1 for fields, part in by_fields.items() if fields for r in part if r["id"] not in new)
        return {"added": len(new), "updated": updated}

    def delete_users(self, ids: Sequence[str]) -> dict:
        """Forget users in one transaction: their rows, and every event, comparison, conversation and
        served list of theirs. Counts ``{"users", "events"}``."""
        wanted, found, events = sorted(set(ids)), 0, 0
        with self.engine.begin() as conn:
            for s in range(0, len(wanted), 500):
                part = wanted[s:s + 500]
                conn.execute(sa.delete(conversations).where(conversations.c.user_id.in_(part)))
                conn.execute(sa.delete(comparisons).where(comparisons.c.user_id.in_(part)))
                conn.execute(sa.delete(served_lists).where(served_lists.c.user_id.in_(part)))
                events += conn.execute(sa.delete(feedback).where(feedback.c.user_id.in_(part))).rowcount
                found += conn.execute(sa.delete(users).where(users.c.id.in_(part))).rowcount
            self._users_changed(conn, wanted)
        return {"users": int(found), "events": int(events)}

    def delete_items(self, ids: Sequence[str]) -> dict:
        """Forget items and every event on them, in one transaction. Counts ``{"items", "events"}``."""
        wanted, found, events = sorted(set(ids)), 0, 0
        with self.engine.begin() as conn:
            for s in range(0, len(wanted), 500):
                part = wanted[s:s + 500]
                events += conn.execute(sa.delete(feedback).where(feedback.c.item_id.in_(part))).rowcount
                found += conn.execute(sa.delete(items).where(items.c.id.in_(part))).rowcount
            self._changed(conn)
        return {"items": int(found), "events": int(events)}

    def delete_user(self, user_id: str) -> dict:
        """Forget a user: their row, every event and every conversation of theirs."""
        out = self.delete_users([user_id])
        return {"user": bool(out["users"]), "events": out["events"]}

    def delete_item(self, item_id: str) -> dict:
        out = self.delete_items([item_id])
        return {"item": bool(out["items"]), "events": out["events"]}

    def get_user(self, user_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).mappings().first()
        return dict(row) if row else None

    def page(self, kind: str, after: str | None, limit: int) -> list[dict]:
        """Up to ``limit`` users or items (``kind``) in id order, those after ``after``: keyset
        pagination, so a page costs the same wherever it is."""
        table = users if kind == "users" else items
        q = sa.select(table).order_by(table.c.id).limit(limit)
        if after is not None:
            q = q.where(table.c.id > after)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def missing(self, kind: str, ids: Iterable[str], conn: Connection | None = None) -> set[str]:
        """Which of ``ids`` are not stored as ``kind`` ("users" or "items")."""
        table = users if kind == "users" else items
        wanted = sorted(set(ids))
        found: set[str] = set()

        def look(c: Connection) -> None:
            for s in range(0, len(wanted), 500):
                found.update(c.execute(sa.select(table.c.id).where(table.c.id.in_(wanted[s:s + 500]))).scalars())

        if conn is not None:
            look(conn)
        else:
            with self.engine.connect() as c:
                look(c)
        return set(wanted) - found

    def event_count(self, user_id: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(feedback)
                                    .where(feedback.c.user_id == user_id)).scalar_one())

    def latest_items(self, after: float | None = None, limit: int = 100) -> list[dict]:
        """Items newest first by their own ``timestamp`` (else when they were stored); ``after``:
        only those older than this time (the next page)."""
        when = sa.func.coalesce(items.c.timestamp, items.c.created_at)
        q = sa.select(items, when.label("time")).order_by(when.desc(), items.c.id).limit(limit)
        if after is not None:
            q = q.where(when < after)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def get_items(self, ids: Iterable[str] | None = None) -> list[dict]:
        q = sa.select(items)
        if ids is not None:
            q = q.where(items.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # --- feedback --------------------------------------------------------------------------------

    def _insert_new(self, conn, table: sa.Table, rows: Sequence[dict], key: str = "event_id") -> list[dict]:
        """Insert the rows whose ``key`` is neither stored nor repeated earlier in the batch (the
        first of a repeated key wins); returns the rows this transaction inserted.

        The database's uniqueness decides, not a look-up before the insert: ``INSERT … ON CONFLICT
        DO NOTHING RETURNING key`` answers only the rows it stored, so batches carrying the same ids
        at the same time (threads, worker processes) count each id once between them; rows go in
        key order, so such batches take their row locks in one order (PostgreSQL: no deadlock)."""
        first: dict[str, dict] = {}
        for r in rows:
            first.setdefault(r[key], r)
        if not first:
            return []
        ordered = [first[k] for k in sorted(first)]
        stored = set(conn.execute(_insert_ignoring(self.engine, table).returning(table.c[key]), ordered).scalars())
        return [r for r in ordered if r[key] in stored]

    def _create_named(self, conn: Connection, table: sa.Table, ids: Iterable[str], blank: dict) -> int:
        """Create the ``users`` or ``items`` rows of ``ids`` not stored yet (records with nothing but
        the id); how many this transaction created (so concurrent batches count each once)."""
        missing = sorted(self.missing("users" if table is users else "items", ids, conn))
        if not missing:
            return 0
        now = time.time()
        made = conn.execute(_insert_ignoring(self.engine, table).returning(table.c.id),
                            [{"id": i, **blank, "created_at": now} for i in missing])
        return len(made.scalars().all())

    def insert_feedback(self, rows: Sequence[dict], conn: Connection | None = None) -> dict:
        """Insert a batch in one transaction; an event whose id is already stored, or repeated
        in the batch, is skipped and counted (a retry). Returns ``{"inserted", "duplicates",
        "new_users", "new_items"}`` after the commit: ``inserted`` counts the rows this batch
        stored, so over batches sent at the same time the counts add up to what is stored."""
        own = conn is None  # a transaction of its own (a request's batch), not a restore's
        with self._writing(conn) as conn:
            fresh = self._insert_new(conn, feedback, rows)
            new_users = new_items = 0
            if fresh:  # users and items named by events exist from then on, and are counted
                new_users = self._create_named(conn, users, (r["user_id"] for r in fresh), {"attributes": {}})
                new_items = self._create_named(conn, items, (r["item_id"] for r in fresh),
                                               {"title": None, "text": None, "categories": [], "attributes": {}})
                self._users_changed(conn, (r["user_id"] for r in fresh))
            if own:
                failpoint("feedback.before_commit")
        if own:
            failpoint("feedback.after_commit")
        return {"inserted": len(fresh), "duplicates": len(rows) - len(fresh), "new_users": new_users,
                "new_items": new_items}

    def insert_served_lists(self, rows: Sequence[dict], conn: Connection | None = None, *, fresh: bool = False) -> dict:
        """Record served lists (one row per list); a list already stored is counted, not doubled.
        ``fresh``: the ids are new for certain (the service's own, random), so nothing is looked up."""
        with self._writing(conn) as conn:
            if fresh:
                if rows:
                    conn.execute(served_lists.insert(), list(rows))
                return {"inserted": len(rows), "duplicates": 0}
            new = self._insert_new(conn, served_lists, rows, key="list_id")
        return {"inserted": len(new), "duplicates": len(rows) - len(new)}

    def insert_comparisons(self, rows: Sequence[dict], conn: Connection | None = None) -> dict:
        """Like :meth:`insert_feedback`, for A-versus-B choices."""
        with self._writing(conn) as conn:
            fresh = self._insert_new(conn, comparisons, rows)
        return {"inserted": len(fresh), "duplicates": len(rows) - len(fresh)}

    def all_comparisons(self) -> list[tuple[str | None, str, str]]:
        q = sa.select(comparisons.c.user_id, comparisons.c.winner, comparisons.c.loser).order_by(
            comparisons.c.timestamp, comparisons.c.event_id)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def user_items(self, user_id: str) -> list[tuple[str, str]]:
        """(item, type) of every event of a user: the cheap read a recommendation needs."""
        q = sa.select(feedback.c.item_id, feedback.c.type).where(feedback.c.user_id == user_id)
        with self.engine.connect() as conn:
            return conn.execute(q).all()  # one fetchall, not a fetch per row

    def user_feedback(self, user_id: str, limit: int | None = None) -> list[dict]:
        q = sa.select(feedback).where(feedback.c.user_id == user_id).order_by(feedback.c.timestamp.desc())
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def item_counts(self, types: Sequence[str], since: float | None = None) -> dict[str, int]:
        """Events of the given types per item (those at or after ``since``, unix seconds, if given)."""
        q = sa.select(feedback.c.item_id, sa.func.count()).where(feedback.c.type.in_(list(types)))
        if since is not None:
            q = q.where(feedback.c.timestamp >= since)
        q = q.group_by(feedback.c.item_id)
        with self.engine.connect() as conn:
            return {i: int(n) for i, n in conn.execute(q)}

    def event_histogram(self, width_s: float, item_id: str | None = None) -> list[dict]:
        """Events (and distinct users) per bucket of ``width_s`` seconds, oldest first, only buckets
        that have events: ``[{"start": unix seconds, "events": n, "users": m}]``; of one item if given."""
        ratio = feedback.c.timestamp / width_s
        # SQLite may lack floor(); its integer cast truncates, which is floor for times ≥ 0
        bucket = sa.cast(ratio, sa.BigInteger) if self.engine.dialect.name == "sqlite" else sa.func.floor(ratio)
        q = sa.select(bucket.label("b"), sa.func.count(), sa.func.count(sa.distinct(feedback.c.user_id)))
        if item_id is not None:
            q = q.where(feedback.c.item_id == item_id)
        q = q.group_by(bucket).order_by(bucket)
        with self.engine.connect() as conn:
            return [{"start": float(b) * width_s, "events": int(n), "users": int(m)} for b, n, m in conn.execute(q)]

    def all_feedback(self) -> list[tuple[str, str, str, float, float]]:
        """Every event as (user, item, type, value, timestamp), in timestamp order."""
        q = sa.select(feedback.c.user_id, feedback.c.item_id, feedback.c.type, feedback.c.value,
                      feedback.c.timestamp).order_by(feedback.c.timestamp, feedback.c.event_id)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    def event_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(feedback.c.event_id)).scalars())

    def counts(self) -> dict:
        with self.engine.connect() as conn:
            return {name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                    for name, t in (("users", users), ("items", items), ("events", feedback))}

    # --- dump and restore ------------------------------------------------------------------------

    def dump(self):
        """Every user, item, event, comparison and served list as JSON-ready dicts with a ``kind``
        (``served`` for a list), users and items first (a generator: the store is read in pages)."""
        for kind, table, key in (("user", users, users.c.id), ("item", items, items.c.id),
                                 ("event", feedback, feedback.c.event_id),
                                 ("comparison", comparisons, comparisons.c.event_id),
                                 ("served", served_lists, served_lists.c.list_id)):
            last = None
            while True:
                q = sa.select(table).order_by(key).limit(5000)
                if last is not None:
                    q = q.where(key > last)
                with self.engine.connect() as conn:
                    page = [dict(r) for r in conn.execute(q).mappings()]
                if not page:
                    break
                for row in page:
                    row.pop("created_at", None)
                    yield {"kind": kind, **row}
                last = page[-1][{"user": "id", "item": "id", "served": "list_id"}.get(kind, "event_id")]

    def restore(self, rows: Iterable[dict]) -> dict:
        """Load dumped rows (users and items: the fields each row carries, see
        :meth:`upsert_records`; events inserted once by id) in one transaction: all or nothing. A
        bad row anywhere, even after thousands of good ones, raises and stores nothing (the
        :class:`DataError` says so). Returns counts: users and items added and updated, events,
        comparisons and served lists inserted and already stored."""
        counts = {"users_added": 0, "users_updated": 0, "items_added": 0, "items_updated": 0, "events": 0,
                  "duplicate_events": 0, "comparisons": 0, "duplicate_comparisons": 0, "served_lists": 0,
                  "duplicate_served_lists": 0}
        buffer: dict[str, list[dict]] = {"user": [], "item": [], "event": [], "comparison": [], "served": []}
        inserters = {"event": self.insert_feedback, "comparison": self.insert_comparisons,
                     "served": self.insert_served_lists}

        def flush(conn: Connection, kind: str) -> None:
            part = buffer[kind]
            if not part:
                return
            if kind in ("user", "item"):
                done = self.upsert_records(f"{kind}s", part, conn)
                counts[f"{kind}s_added"] += done["added"]
                counts[f"{kind}s_updated"] += done["updated"]
            else:
                done = inserters[kind](part, conn)
                plural = "served_lists" if kind == "served" else f"{kind}s"
                counts[plural] += done["inserted"]
                counts[f"duplicate_{plural}"] += done["duplicates"]
            buffer[kind] = []

        try:
            with self.engine.begin() as conn:
                for number, row in enumerate(rows, 1):
                    kind = row.get("kind")
                    if kind not in buffer:
                        raise DataError(f"kind is {kind!r}", line=number, line_kind="row", column="kind",
                                        expected="user, item, event, comparison or served")
                    buffer[kind].append({k: v for k, v in row.items() if k != "kind"})
                    if len(buffer[kind]) >= 5000:
                        flush(conn, kind)
                        failpoint("restore.midway")
                for kind in buffer:
                    flush(conn, kind)
                self._changed(conn)
        except DataError as e:
            raise DataError(f"{e.message}; the restore stored nothing", file=e.file, line=e.line, column=e.column,
                            expected=e.expected, line_kind=e.line_kind) from None
        return counts

    # --- model versions --------------------------------------------------------------------------

    def new_version(self, model: str, params: dict, kind: str = "recommender", owner: str | None = None) -> int:
        """A version in training (``owner``: the process training it); its id."""
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(model_versions).values(model=model, params=params, status="training",
                                                                     progress=0.0, active=False, kind=kind,
                                                                     created_at=time.time(), owner=owner)
                                    .returning(model_versions.c.id)).scalar_one())

    def update_version(self, version: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(model_versions).where(model_versions.c.id == version).values(**values))

    def versions(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(model_versions).order_by(model_versions.c.id)).mappings()]

    def version(self, version: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(model_versions).where(model_versions.c.id == version)).mappings().first()
        return dict(row) if row else None

    def set_active(self, version: int, conn: Connection | None = None) -> None:
        """Make ``version`` the active one of its kind (recommender or preference), in one transaction
        that also counts the change for every replica (:meth:`_changed`)."""
        with self._writing(conn) as conn:
            kind = conn.execute(sa.select(model_versions.c.kind).where(model_versions.c.id == version)).scalar_one()
            conn.execute(sa.update(model_versions).where(model_versions.c.kind == kind, model_versions.c.active)
                         .values(active=False))
            conn.execute(sa.update(model_versions).where(model_versions.c.id == version).values(active=True))
            self._changed(conn)

    def mark_ready(self, version: int, *, activate: bool, files: Path | None = None, owner: str | None = None,
                   **values) -> None:
        """A trained version is ready (with ``values``: its path, metrics), and with ``activate`` the
        active one of its kind, in one transaction: a crash leaves it training (the previous version
        active) or ready and active, never active and not ready. The caller has its artefact on disk,
        in ``files`` (a folder); in a shared store (PostgreSQL) its files are copied into the store in
        this same transaction (:func:`penchant.serve.fleet.upload`), so no replica finds a ready
        version it cannot fetch. ``owner``: the process whose job it is; nothing is published unless
        the version still names it (:func:`penchant.serve.leases.fence`: its lease held)."""
        with self.engine.begin() as conn:
            if owner is not None:
                from penchant.serve.leases import fence

                fence(conn, version, owner)
            if self.shared and files is not None:
                from penchant.serve.fleet import upload

                values["files"] = upload(conn, version, files)
            conn.execute(sa.update(model_versions).where(model_versions.c.id == version)
                         .values(status="ready", progress=1.0, finished_at=time.time(), owner=None, **values))
            if activate:
                self.set_active(version, conn)

    def fail_training(self, version: int, error: str) -> bool:
        """Mark ``version`` failed (and inactive) with ``error`` if it is still training; whether it was."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(model_versions)
                                .where(model_versions.c.id == version, model_versions.c.status == "training")
                                .values(status="failed", active=False, error=error, finished_at=time.time(),
                                        owner=None)).rowcount > 0

    # --- conversations ---------------------------------------------------------------------------

    def save_conversation(self, conv_id: str, user_id: str | None, state: dict, new: bool) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            if new:
                conn.execute(sa.insert(conversations).values(id=conv_id, user_id=user_id, state=state, created_at=now,
                                                             updated_at=now))
            else:
                conn.execute(sa.update(conversations).where(conversations.c.id == conv_id)
                             .values(state=state, updated_at=now))

    def conversation(self, conv_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(conversations).where(conversations.c.id == conv_id)).mappings().first()
        return dict(row) if row else None

    # --- keys ------------------------------------------------------------------------------------

    def add_key(self, key_id: str, name: str, digest: str, scopes: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(api_keys).values(id=key_id, name=name, hash=digest, scopes=scopes,
                                                    created_at=time.time()))

    def key(self, key_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return dict(row) if row else None

    def keys(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).mappings()]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; every replica's key cache drops it before its next check (the change is
        counted in the revocation's transaction, :meth:`_changed`)."""
        self.key_generation += 1
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=time.time())).rowcount > 0
            self._changed(conn, generation=0, keys=1)
            return done
