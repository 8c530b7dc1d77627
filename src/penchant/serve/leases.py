"""What service replicas claim from the database they share: training jobs (a lease each) and
rate-limit budget (requests per key per minute).

**Job leases.** A training job is a model version in status "training" with a ``job`` (what is
needed to run it again: ``{"activate": bool}``), an ``owner`` (the process running it,
``host:pid:start ticks``), ``lease_expires_at`` (unix seconds by the *database's* clock, so hosts
whose clocks differ agree) and ``attempts`` (claims so far); each claim is also a row of
``job_claims`` (version, attempt, owner, time), the job's history. The replica that takes a train
request claims the job as it creates it and renews the lease every ``job_heartbeat_s`` from a thread
of its own until the job ends (also while the job waits for the replica's previous one). Every
replica looks for jobs whose lease ran out (their owner stopped renewing: SIGKILL, power cut, a lost
network) every ``job_heartbeat_s`` while it is idle, and claims one with one atomic
``UPDATE … WHERE id = :id AND status = 'training' AND lease_expires_at < now`` (found with ``SELECT
… FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas looking at once pick different jobs and never
the same one): of two replicas at most one's UPDATE matches. A job that has had its
``job_attempts`` claims is failed instead, with an error naming its last owner. The owner's last
writes are fenced: a version is marked ready (:meth:`~penchant.serve.store.Store.mark_ready`) or
failed (:meth:`JobLeases.fail`) only where the row still names that owner, so a replica that lost its
lease (stalled longer than ``job_lease_s``) publishes nothing; its heartbeat notices the loss and says so.

Simplification: a job taken over starts again from the beginning (the store's events as they are
then); nothing of the dead owner's partial fit is reused.

**Shared rate limits.** :class:`SharedRateLimiter`: per API key and minute (of the database's
clock) a row ``rate_windows(key_id, minute, used)``; the requests of the last 60 s are estimated as
this minute's count plus the previous minute's count weighted by the part of it still inside the
last 60 s (a sliding window over two counters). A replica claims a batch of requests for a key at a
time with one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` that grants at most what is left under
the limit, and answers the batch's requests from its local count without a database round trip.
Never more than the limit is granted fleet-wide; a replica may refuse while another still holds part
of a claimed batch (at most ``batch - 1`` requests per replica and key), and a batch unused when its
minute ends is counted as used. ``batch`` is ``rate_limit_per_minute // 100`` (1 to 20): 12 at the
default 1,200. A key refused is refused by that replica for the next second (or the rest of the
minute) without asking again, so a client over its limit costs no round trip per request.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from penchant.errors import ConflictError
from penchant.serve.store import KeptConnections, Store

#: the columns of ``model_versions`` this module reads and writes (the lease ones: migration 0010)
versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("model", sa.String),
                    sa.column("params", sa.JSON), sa.column("kind", sa.String), sa.column("status", sa.String),
                    sa.column("owner", sa.String), sa.column("error", sa.Text), sa.column("active", sa.Boolean),
                    sa.column("finished_at", sa.Float), sa.column("job", sa.JSON),
                    sa.column("lease_expires_at", sa.Float), sa.column("attempts", sa.Integer),
                    sa.column("progress", sa.Float), sa.column("created_at", sa.Float))
metadata = sa.MetaData()
job_claims = sa.Table("job_claims", metadata,
                      sa.Column("version", sa.Integer, primary_key=True),
                      sa.Column("attempt", sa.Integer, primary_key=True),
                      sa.Column("owner", sa.String(255), nullable=False),
                      sa.Column("claimed_at", sa.Float, nullable=False))


def db_now(engine: Engine):
    """The database's clock as unix seconds (a float SQL expression): leases compare against it, so
    replicas on hosts whose clocks differ agree on when a lease ran out."""
    if engine.dialect.name == "postgresql":
        return sa.literal_column("extract(epoch from clock_timestamp())::float8")
    return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)")


def who(owner: str | None) -> str:
    """``host:pid:ticks`` as words: ``pid 123 on host``."""
    if not owner:
        return "a process of an earlier penchant"
    host, pid, _ = owner.rsplit(":", 2)
    return f"pid {pid} on {host}"


class Lease:
    """The lease of one job this process owns, renewed every ``heartbeat_s`` by a daemon thread
    until :meth:`stop`. :attr:`lost` turns true when a renewal finds the row no longer names this
    owner (another replica claimed the job after the lease ran out, or it was failed)."""

    def __init__(self, leases: JobLeases, version: int) -> None:
        self.leases, self.version = leases, version
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"penchant-lease-v{version}")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.leases.heartbeat_s):
            try:
                if not self.leases.renew(self.version):
                    self.lost = True
                    print(f"penchant: lost the lease of model version {self.version} (another replica claimed it "
                          "or it was failed); this replica will not publish it", flush=True)
                    return
            except Exception:  # noqa: BLE001  # the database unreachable: retried at the next beat, until the lease runs out
                traceback.print_exc()

    def stop(self) -> None:
        self._stop.set()


class JobLeases:
    """The job leases of one replica (``owner``: this process) over ``engine``."""

    def __init__(self, engine: Engine, owner: str, lease_s: float, heartbeat_s: float, attempts: int) -> None:
        self.engine, self.owner = engine, owner
        self.lease_s, self.heartbeat_s, self.attempts = lease_s, heartbeat_s, attempts
        self.now = db_now(engine)

    def claim_new(self, version: int, activate: bool) -> Lease:
        """A version this replica has just created (training, owner this process) becomes a job it
        holds the lease of (attempt 1); the lease is renewed from now on."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(versions).where(versions.c.id == version, versions.c.owner == self.owner)
                         .values(job={"activate": bool(activate)}, attempts=1, lease_expires_at=self.now + self.lease_s))
            conn.execute(sa.insert(job_claims).values(version=version, attempt=1, owner=self.owner,
                                                      claimed_at=time.time()))
        return Lease(self, version)

    def create_job(self, model: str, params: dict, kind: str, activate: bool) -> tuple[int, Lease]:
        """A new version in training that is this replica's job from the start: the row, its lease
        (attempt 1) and its first claim are written in one transaction, so no crash can leave a
        version in training without a lease that another replica could take over. (version id, lease)."""
        with self.engine.begin() as conn:
            version = int(conn.execute(sa.insert(versions).values(
                model=model, params=params, status="training", progress=0.0, active=False, kind=kind,
                created_at=time.time(), owner=self.owner, job={"activate": bool(activate)}, attempts=1,
                lease_expires_at=self.now + self.lease_s).returning(versions.c.id)).scalar_one())
            conn.execute(sa.insert(job_claims).values(version=version, attempt=1, owner=self.owner,
                                                      claimed_at=time.time()))
        return version, Lease(self, version)

    def renew(self, version: int) -> bool:
        """Push the lease of a job this replica owns ``lease_s`` past now; whether it still owns it."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(versions).where(versions.c.id == version, versions.c.owner == self.owner,
                                                          versions.c.status == "training")
                                .values(lease_expires_at=self.now + self.lease_s)).rowcount > 0

    def release(self, version: int, owner: str) -> bool:
        """End the lease of a job whose ``owner`` is known to be dead (its process is gone from this
        host) and that has claims left, so the next look for jobs claims it at once; whether it did
        (False: not a job, or its claims are spent: the caller fails it)."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(versions).where(versions.c.id == version, versions.c.owner == owner,
                                                          versions.c.status == "training", versions.c.job.isnot(None),
                                                          versions.c.attempts < self.attempts)
                                .values(lease_expires_at=0.0)).rowcount > 0

    def fail(self, version: int, error: str) -> bool:
        """Mark a job this replica owns failed (fenced: not if another replica owns it now)."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(versions).where(versions.c.id == version, versions.c.owner == self.owner,
                                                          versions.c.status == "training")
                                .values(status="failed", active=False, error=error, finished_at=time.time(),
                                        owner=None, lease_expires_at=None)).rowcount > 0

    def claim_expired(self) -> tuple[list[dict], list[str]]:
        """Look once for jobs whose lease ran out: the first one with claims left is claimed (its
        row, with ``attempt``, in the list; at most one), each one before it that has had
        ``attempts`` claims is failed naming its last owner (one line each)."""
        claimed, lines = [], []
        while not claimed:
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(versions.c.id, versions.c.model, versions.c.params, versions.c.kind,
                                             versions.c.owner, versions.c.job, versions.c.attempts)
                                   .where(versions.c.status == "training", versions.c.job.isnot(None),
                                          versions.c.lease_expires_at < self.now)
                                   .order_by(versions.c.id).limit(1)
                                   .with_for_update(skip_locked=True)).mappings().first()
                if row is None:
                    break
                expired = (versions.c.id == row["id"], versions.c.status == "training",
                           versions.c.lease_expires_at < self.now)
                if row["attempts"] >= self.attempts:
                    error = (f"interrupted: the replica training it ({who(row['owner'])}) stopped renewing its lease "
                             f"and the job has had its {row['attempts']} of job_attempts {self.attempts} claims; "
                             "nothing of it is served; train it again")
                    if conn.execute(sa.update(versions).where(*expired)
                                    .values(status="failed", active=False, error=error, finished_at=time.time(),
                                            owner=None, lease_expires_at=None)).rowcount:
                        lines.append(f"model version {row['id']} ({row['model']}) {error}")
                    continue
                if self._claim(conn, row, expired):
                    claimed.append({**row, "attempt": row["attempts"] + 1})
        return claimed, lines

    def _claim(self, conn: Connection, row, expired) -> bool:
        attempt = row["attempts"] + 1
        if not conn.execute(sa.update(versions).where(*expired)
                            .values(owner=self.owner, attempts=attempt,
                                    lease_expires_at=self.now + self.lease_s)).rowcount:
            return False  # another replica's UPDATE matched first
        conn.execute(sa.insert(job_claims).values(version=row["id"], attempt=attempt, owner=self.owner,
                                                  claimed_at=time.time()))
        print(f"penchant: claimed model version {row['id']} ({row['model']}), attempt {attempt} of "
              f"{self.attempts}: {who(row['owner'])} stopped renewing its lease", flush=True)
        return True

    def claims(self, version: int) -> list[dict]:
        """The job's claims, first first: ``[{"attempt", "owner", "claimed_at"}]``."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                sa.select(job_claims.c.attempt, job_claims.c.owner, job_claims.c.claimed_at)
                .where(job_claims.c.version == version).order_by(job_claims.c.attempt)).mappings()]


class JobWatch:
    """A replica's daemon thread that, every ``heartbeat_s`` while ``idle()``, claims a job whose
    lease ran out (:meth:`JobLeases.claim_expired`) and hands it to ``run`` (which runs it in the
    background and returns). Started and stopped with the app (its lifespan)."""

    def __init__(self, leases: JobLeases, idle: Callable[[], bool], run: Callable[[dict], None],
                 report: Callable[[list[str]], None]) -> None:
        self.leases, self.idle, self.run, self.report = leases, idle, run, report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True, name="penchant-jobs")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def look(self) -> None:
        """One look: claim and start at most one job whose lease ran out (when idle)."""
        if not self.idle():
            return
        claimed, lines = self.leases.claim_expired()
        if lines:
            self.report(lines)
        for row in claimed:
            self.run(row)

    def _loop(self) -> None:
        while not self._stop.wait(self.leases.heartbeat_s):
            try:
                self.look()
            except Exception:  # noqa: BLE001  # the database unreachable: looked again at the next beat
                traceback.print_exc()


class RateLimiter:
    """The per-key limit of one process: a sliding one-minute window of request times."""

    def __init__(self, per_minute: int) -> None:
        from collections import defaultdict, deque

        self.per_minute, self.hits, self.lock = per_minute, defaultdict(deque), threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            q = self.hits[key]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            return True

    def close(self) -> None:
        """Nothing to release (the shared limiter's :meth:`SharedRateLimiter.close` closes its connection)."""


rate_windows = sa.Table("rate_windows", metadata,
                        sa.Column("key_id", sa.String(32), primary_key=True),
                        sa.Column("minute", sa.BigInteger, primary_key=True),
                        sa.Column("used", sa.Integer, nullable=False),
                        sa.Column("granted", sa.Integer, nullable=False))

#: one claim of ``:n`` requests for ``:key`` under ``:limit`` (PostgreSQL): the minute and the part of
#: it gone by the database's clock, the room left under the limit after the previous minute's weighted
#: count, and an upsert that adds (and records in ``granted``) only what fits
_CLAIM = sa.text("""
WITH t AS (SELECT extract(epoch from clock_timestamp())::float8 / 60 AS m),
w AS (SELECT floor(t.m)::bigint AS minute, t.m - floor(t.m) AS f FROM t),
cap AS (SELECT w.minute, w.f, floor(:limit - COALESCE(
          (SELECT r.used FROM rate_windows r WHERE r.key_id = :key AND r.minute = w.minute - 1), 0) * (1 - w.f))::int AS room
        FROM w)
INSERT INTO rate_windows AS r (key_id, minute, used, granted)
SELECT :key, cap.minute, GREATEST(0, LEAST(:n, cap.room)), GREATEST(0, LEAST(:n, cap.room)) FROM cap
ON CONFLICT (key_id, minute) DO UPDATE
  SET used = r.used + GREATEST(0, LEAST(:n, (SELECT room FROM cap) - r.used)),
      granted = GREATEST(0, LEAST(:n, (SELECT room FROM cap) - r.used))
RETURNING r.minute, r.granted, (SELECT f FROM cap)
""")


#: seconds a replica refuses a key over its limit without asking the database again
REFUSAL_S = 1.0


class SharedRateLimiter:
    """``rate_limit_per_minute`` per key across every replica on one PostgreSQL database (see the
    module's notes): a request spends one of the requests this process claimed for the key within
    the current minute, else claims a batch (one statement); refused when nothing is granted."""

    def __init__(self, engine: Engine, per_minute: int, batch: int | None = None) -> None:
        # a claim is one statement, sent on a kept autocommit connection of its own: one round trip, where
        # a pooled SQLAlchemy connection costs four (pre-ping, BEGIN, the statement, COMMIT): 0.7 against 1.5 ms
        self.connection = KeptConnections(engine, keep=1)
        self.sql = str(_CLAIM.compile(dialect=engine.dialect))
        self.claiming = threading.Lock()  # one claim at a time on the one connection
        self.per_minute = per_minute
        self.batch = batch if batch is not None else min(20, max(1, per_minute // 100))
        self.local: dict[str, tuple[float, int]] = {}  # key -> (monotonic end of its minute, requests left)
        self.refused: dict[str, float] = {}  # key -> monotonic time until which it is refused without asking
        self.lock = threading.Lock()
        self.round_trips = 0
        self._swept = None  # the last minute whose stale rows this process deleted

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            ends, left = self.local.get(key, (0.0, 0))
            if left > 0 and now < ends:
                self.local[key] = (ends, left - 1)
                return True
            if self.refused.get(key, 0.0) > now:
                return False
        granted, _, f = self._claim(key, self.batch)
        with self.lock:
            if granted > 0:
                self.local[key] = (now + (1 - f) * 60, granted - 1)
                return True
            self.local.pop(key, None)
            self.refused[key] = now + min(REFUSAL_S, (1 - f) * 60)  # a key over its limit costs no round trip
            return False

    def _claim(self, key: str, n: int) -> tuple[int, int, float]:
        """Claim ``n`` requests for ``key`` now: (granted, minute, part of the minute gone)."""

        def claim(conn) -> tuple[int, int, float]:
            minute, granted, f = conn.execute(self.sql, {"key": key, "n": n, "limit": self.per_minute},
                                              prepare=True).fetchone()
            if minute != self._swept:  # once a minute per process: rows older than the previous minute go
                self._swept = minute
                conn.execute("DELETE FROM rate_windows WHERE minute < %s", (minute - 1,))
            return int(granted), int(minute), float(f)

        with self.claiming:
            claimed = self.connection.run(claim, "count this key's requests")
            self.round_trips += 1
        return claimed

    def close(self) -> None:
        self.connection.close()


def rate_limiter(store: Store, per_minute: int) -> RateLimiter | SharedRateLimiter:
    """The limiter for a store: shared through the database where replicas share the store
    (:attr:`~penchant.serve.store.Store.shared`: PostgreSQL), in-process otherwise (SQLite, one host:
    one process, or ``--workers N`` each with its own)."""
    if store.shared:
        return SharedRateLimiter(store.engine, per_minute)
    return RateLimiter(per_minute)


class LeaseLost(ConflictError):
    """This process's job is no longer its own: its lease ran out and another replica claimed it,
    or it was failed. Nothing of the job is published."""


def fence(conn: Connection, version: int, owner: str) -> None:
    """Inside the transaction that publishes a version: lock its row and check that ``owner``
    still holds its job (training, owner unchanged); :class:`LeaseLost` otherwise, so the caller's
    transaction (the version's files, ready, active) rolls back."""
    if conn.execute(sa.select(versions.c.id).where(versions.c.id == version, versions.c.owner == owner,
                                                   versions.c.status == "training").with_for_update()).first() is None:
        raise LeaseLost(f"model version {version} is no longer this process's job (its lease ran out and another "
                        "replica claimed it, or it was failed); nothing of it was published")
