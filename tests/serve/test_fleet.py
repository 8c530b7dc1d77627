"""Service replicas on one PostgreSQL (issue 41): training-job leases, shared rate limits, and three
`penchant serve` processes under mixed load with one killed mid-job and started again.

The lease and limiter tests run against the store directly (several "replicas" are several
:class:`~penchant.serve.leases.JobLeases` or limiters with their own owners on one database); the
fleet test runs three real server processes with the commands docs/service.md ("Several
machines") gives (:func:`documented_replicas`)."""

from __future__ import annotations

import shlex
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from penchant.serve.leases import JobLeases, LeaseLost, SharedRateLimiter, versions
from penchant.serve.store import Store, make_engine, migrate
from tests.conftest import ROOT
from tests.serve.server import ADMIN, call, clustered_events, free_port, start_server

#: what the fleet test adds to the documented commands: leases short enough that the killed replica's
#: runs out soon (the defaults are 30 s and 5 s), and no rate limit on the load
TEST_ONLY = ("--set", "job_lease_s=3", "--set", "job_heartbeat_s=0.5", "--set", "rate_limit_per_minute=1000000")


def documented_replicas() -> list[list[str]]:
    """The `penchant serve` commands of docs/service.md's "Several machines", as argument lists
    without the program and ``serve`` (the test puts its own database, folders and ports in)."""
    doc = (ROOT / "docs" / "service.md").read_text(encoding="utf-8")
    section = doc.split("## Several machines", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line)[2:] for line in block.splitlines() if line.startswith("penchant serve ")]
    assert len(commands) == 3 and all({"--database-url", "--data-dir", "--port"} <= set(c) for c in commands), commands
    return commands


def _replica_flags(documented: list[str]) -> list[str]:
    """A documented command's flags other than the database, folder and port (which start_server gives)."""
    out, args = [], iter(documented)
    for arg in args:
        if arg in ("--database-url", "--data-dir", "--port"):
            next(args)
        else:
            out.append(arg)
    return out


@pytest.fixture(scope="module")
def pg(postgres_server):
    """One migrated PostgreSQL store for the module's lease and limiter tests."""
    engine = make_engine(postgres_server.database())
    migrate(engine)
    yield Store(engine)
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """The leases' store: SQLite (one host, the same code) or the module's PostgreSQL one."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg")
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('leases') / 'penchant.db'}")
    migrate(engine)
    return Store(engine)


def _expired_job(store: Store, owner: str, attempts: int = 1) -> int:
    """A training version whose job ``owner`` claimed ``attempts`` times and whose lease ran out."""
    version = store.new_version("pop", {}, owner=owner)
    leases = JobLeases(store.engine, owner, 30, 5, attempts)
    leases.claim_new(version, True).stop()
    with store.engine.begin() as conn:
        conn.execute(sa.update(versions).where(versions.c.id == version).values(attempts=attempts, lease_expires_at=0.0))
    return version


def test_of_replicas_looking_at_once_exactly_one_claims_an_expired_job(store):
    dead = "otherhost:4242:99"
    version = _expired_job(store, dead)
    replicas = [JobLeases(store.engine, f"host{k}:{k}:1", 30, 5, 2) for k in range(6)]
    start = threading.Barrier(len(replicas))
    won: dict[str, list] = {}

    def look(leases: JobLeases) -> None:
        start.wait()
        won[leases.owner] = leases.claim_expired()[0]

    threads = [threading.Thread(target=look, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [owner for owner, rows in won.items() if rows]
    assert len(winners) == 1, won
    assert won[winners[0]][0]["id"] == version and won[winners[0]][0]["attempt"] == 2
    assert [(c["attempt"], c["owner"]) for c in replicas[0].claims(version)] == [(1, dead), (2, winners[0])]
    row = store.version(version)
    assert row["status"] == "training" and row["owner"] == winners[0]

    # the dead owner, were it only stalled, publishes nothing now: its write is fenced
    with pytest.raises(LeaseLost, match=f"model version {version} is no longer this process's job"):
        store.mark_ready(version, activate=False, owner=dead, path="/nowhere")
    assert store.version(version)["status"] == "training"
    loser = next(r for r in replicas if r.owner != winners[0])
    assert loser.renew(version) is False and loser.fail(version, "x") is False
    store.mark_ready(version, activate=False, owner=winners[0], path="/somewhere")
    assert store.version(version)["status"] == "ready"


def test_a_new_job_has_its_lease_and_first_claim_from_the_moment_its_version_exists(store):
    owner = "newhost:31:3"
    version, lease = JobLeases(store.engine, owner, 30, 5, 2).create_job("pop", {}, "recommender", True)
    lease.stop()
    row = store.version(version)
    with store.engine.connect() as conn:
        expires, attempts, job = conn.execute(sa.select(versions.c.lease_expires_at, versions.c.attempts, versions.c.job)
                                              .where(versions.c.id == version)).one()
    assert row["status"] == "training" and row["owner"] == owner and job == {"activate": True} and attempts == 1
    assert expires > time.time() + 20  # database clock, 30 s lease
    other = JobLeases(store.engine, "other:32:3", 30, 5, 2)
    assert [(c["attempt"], c["owner"]) for c in other.claims(version)] == [(1, owner)]
    with store.engine.begin() as conn:  # the owner dies at once: its lease runs out, the job is another's
        conn.execute(sa.update(versions).where(versions.c.id == version).values(lease_expires_at=0.0))
    claimed, _ = other.claim_expired()
    assert [(r["id"], r["attempt"]) for r in claimed] == [(version, 2)]
    store.fail_training(version, "done")


def test_a_job_whose_claims_are_spent_fails_naming_its_last_owner(store):
    version = _expired_job(store, "farhost:777:5", attempts=2)
    claimed, lines = JobLeases(store.engine, "me:1:1", 30, 5, 2).claim_expired()
    assert claimed == []
    row = store.version(version)
    assert row["status"] == "failed" and not row["active"]
    assert row["error"].startswith("interrupted: the replica training it (pid 777 on farhost) stopped renewing its "
                                   "lease and the job has had its 2 of job_attempts 2 claims")
    assert lines == [f"model version {version} (pop) {row['error']}"]


def test_a_live_lease_is_renewed_and_never_claimed(pg):
    owner = "livehost:5:5"
    version = pg.new_version("pop", {}, owner=owner)
    leases = JobLeases(pg.engine, owner, 1.0, 0.2, 2)
    lease = leases.claim_new(version, False)
    try:
        time.sleep(1.5)  # longer than the lease: only the heartbeat keeps it
        other = JobLeases(pg.engine, "thief:6:6", 1.0, 0.2, 2)
        assert other.claim_expired() == ([], []) and not lease.lost
        with pg.engine.connect() as conn:
            expires, now = conn.execute(sa.select(versions.c.lease_expires_at, leases.now)
                                        .where(versions.c.id == version)).one()
        assert 0 < expires - now <= 1.0
    finally:
        lease.stop()
    pg.fail_training(version, "done")


def _outside_a_minute_boundary() -> None:
    """Wait until at least 3 s remain in the current minute (of this host's clock, which the local
    PostgreSQL shares), so a burst is counted in one minute."""
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.1)


@pytest.mark.parametrize("batch", [1, 4])
def test_the_rate_limit_holds_across_replicas(pg, batch):
    """Three replicas' limiters, 30 requests a minute for one key: 90 requests round-robin over them
    get exactly 30 admitted, however the replicas claim (one at a time or in batches of 4)."""
    key = f"key{batch}"
    limiters = [SharedRateLimiter(pg.engine, 30, batch=batch) for _ in range(3)]
    _outside_a_minute_boundary()
    admitted = sum(limiters[k % 3].allow(key) for k in range(90))
    assert admitted == 30
    trips = sum(lim.round_trips for lim in limiters)
    # a round trip per batch granted (the last one partly), then each replica asks once to learn the key is
    # over its limit and refuses without asking after that (REFUSAL_S)
    assert trips == -(-30 // batch) + 3, trips
    assert not any(lim.allow(key) for lim in limiters)
    assert sum(lim.round_trips for lim in limiters) == trips
    assert SharedRateLimiter(pg.engine, 30).allow("another key")  # per key


def _terminate(pg, conn) -> int:
    """End ``conn``'s server process from another connection, waiting until it is gone; its pid."""
    pid = conn.info.backend_pid
    with pg.engine.connect() as other:
        assert other.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()
    return pid


def test_a_kept_connection_the_server_ended_is_opened_anew_once(pg):
    """The counters' reader and the shared limiter keep their connections (KeptConnections): one the
    server ended between two uses (pg_terminate_backend) is replaced, and the second use succeeds on
    the new connection; a server that cannot be reached at all is a StoreUnavailableError (a 503)."""
    from penchant.errors import StoreUnavailableError
    from penchant.serve.store import CounterReader

    reader = CounterReader(pg.engine)
    first = reader.read(-1)
    kept = reader.connections.idle.get_nowait()
    reader.connections.idle.put(kept)
    pid = _terminate(pg, kept)
    assert reader.read(-1) == first
    fresh = reader.connections.idle.get_nowait()
    assert kept.closed and not fresh.closed and fresh.info.backend_pid != pid
    reader.connections.idle.put(fresh)
    reader.close()

    limiter = SharedRateLimiter(pg.engine, 30, batch=1)
    assert limiter.allow("retried key")
    kept = limiter.connection.idle.get_nowait()
    limiter.connection.idle.put(kept)
    pid = _terminate(pg, kept)
    assert limiter.allow("retried key") and limiter.round_trips == 2
    assert limiter.connection.idle.get_nowait().info.backend_pid != pid
    limiter.close()

    gone = CounterReader(pg.engine)
    gone.connections.url = f"postgresql://penchant@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    with pytest.raises(StoreUnavailableError, match="could not be reached to check for changes"):
        gone.read(-1)


def test_two_apps_on_one_database_share_a_key_s_limit(tmp_path, postgres_server):
    """Two replicas' apps (their own data folders, one PostgreSQL), 3 requests a minute: the key's
    three requests through the first use up its minute on the second too (429 there, through the
    hot path and a route alike)."""
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    url = postgres_server.database()
    auth = {"Authorization": f"Bearer {ADMIN}"}
    apps = [create_app(load_settings(tmp_path / name, database_url=url, env={}, overrides={"rate_limit_per_minute": "3"}),
                       admin_key=ADMIN) for name in ("a", "b")]
    _outside_a_minute_boundary()
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        first = [a.get("/v1/models", headers=auth).status_code for _ in range(3)]
        second = [b.get(path, headers=auth).status_code for path in ("/v1/models", "/v1/users/u1/recommendations")]
        third = a.get("/v1/models", headers=auth).status_code
    assert (first, second, third) == ([200, 200, 200], [429, 429], 429)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_limiter_that_cannot_reach_the_database_answers_503(client):
    """The shared limiter's database out of reach: 503 naming it (route and hot path alike), never
    an admitted request or a 500."""
    limiter = client.app.state.service.limiter
    limiter.close()
    limiter.connection.url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    for path in ("/v1/models", "/v1/users/u1/recommendations"):
        r = client.get(path)
        assert r.status_code == 503, (path, r.text)
        assert "could not be reached to count this key's requests" in r.json()["detail"]


# --- the fleet -------------------------------------------------------------------------------------


def _ready(port: int, version: int, timeout: float = 120) -> dict:
    end = time.time() + timeout
    while (v := call(port, "GET", f"/v1/models/{version}"))["status"] == "training":
        assert time.time() < end, f"version {version} still training"
        time.sleep(0.1)
    return v


def _with_key(port: int, key: str, path: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_three_replicas_share_versions_keys_events_and_jobs(tmp_path, postgres_server):
    url = postgres_server.database()
    ports = [free_port() for _ in range(3)]
    procs: list = [None, None, None]
    stop = threading.Event()

    commands = documented_replicas()

    def start(k: int, failpoints: str = "") -> None:
        procs[k] = start_server(tmp_path / f"replica{k}", url, ports[k], *_replica_flags(commands[k]), *TEST_ONLY,
                                env={"PENCHANT_FAILPOINTS": failpoints})

    try:
        # replica 2 dies (SIGKILL, by its failpoint) in the middle of its first training job: fitted, not saved
        starters = [threading.Thread(target=start, args=(k, "train.after_fit" if k == 2 else "")) for k in range(3)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        assert all(p is not None for p in procs)
        call(ports[0], "POST", "/v1/feedback", clustered_events())
        v1 = call(ports[0], "POST", "/v1/models/train", {"model": "pop", "activate": True})["id"]
        assert _ready(ports[1], v1)["status"] == "ready"  # trained on replica 0, read through replica 1

        # bounded mixed load on every live replica: reads and feedback writes from four threads
        live = {0, 1, 2}
        acknowledged: set[str] = set()
        answers: list[tuple[float, int, str]] = []
        wrong: list[dict] = []

        def reads(n: int) -> None:
            k = 0
            while not stop.is_set():
                k += 1
                replica = sorted(live)[k % len(live)]
                start_at = time.monotonic()
                try:
                    model = call(ports[replica], "GET", f"/v1/users/u{(n + k) % 60}/recommendations?k=3")["model"]
                except urllib.error.HTTPError as e:  # an answer, but not a 200
                    wrong.append({"read": replica, "status": e.code})
                    continue
                except OSError:
                    continue  # the replica is down
                answers.append((start_at, replica, model))

        def writes(n: int) -> None:
            for k in range(10_000):
                if stop.is_set():
                    return
                replica = sorted(live)[k % len(live)]
                batch = [{"event_id": f"w{n}-{k}-{j}", "user_id": f"u{(k + j) % 60}", "item_id": f"i{(n + k + j) % 40}",
                          "type": "click", "timestamp": 2000.0 + k} for j in range(5)]
                try:
                    answer = call(ports[replica], "POST", "/v1/feedback", batch)
                except urllib.error.HTTPError as e:
                    wrong.append({"write": replica, "status": e.code})
                    continue
                except OSError:
                    continue  # not acknowledged: the replica died under it (stored or not, all or nothing)
                if answer["inserted"] != 5:  # new ids: all of a batch is inserted
                    wrong.append(answer)
                acknowledged.update(e["event_id"] for e in batch)
                time.sleep(0.02)

        load = [threading.Thread(target=reads, args=(n,), daemon=True) for n in range(2)]
        load += [threading.Thread(target=writes, args=(n,), daemon=True) for n in range(2)]
        for t in load:
            t.start()

        # a job taken by replica 2, which dies in it; its lease runs out and exactly one other replica
        # claims it and finishes it (job_attempts 2)
        try:
            killed_job = call(ports[2], "POST", "/v1/models/train", {"model": "pop"})["id"]
        except OSError:  # pop fits at once: the replica may die before it answers; the job is stored before
            killed_job = max(v["id"] for v in Store(make_engine(url)).versions())
        assert procs[2].wait(timeout=60) == -9
        live.discard(2)
        done = _ready(ports[0], killed_job)
        assert done["status"] == "ready", done
        claims = JobLeases(make_engine(url), "test:0:0", 30, 5, 2).claims(killed_job)
        assert [c["attempt"] for c in claims] == [1, 2]
        assert claims[0]["owner"].split(":")[1] == str(procs[2].pid)
        assert claims[1]["owner"].split(":")[1] in {str(procs[0].pid), str(procs[1].pid)}

        start(2)  # started again on its own folder: it serves the fleet's active version at once
        live.add(2)
        assert call(ports[2], "GET", "/v1/users/u0/recommendations?k=3")["model"] == f"pop:v{v1}"

        # a version trained through one replica, activated through another: once the activation has
        # returned, no replica answers with the old one
        v2 = call(ports[1], "POST", "/v1/models/train", {"model": "itemknn"})["id"]
        _ready(ports[1], v2)
        assert call(ports[2], "POST", f"/v1/models/{v2}/activate")["active"] is True
        activated = time.monotonic()
        for port in ports:
            assert call(port, "GET", "/v1/users/u1/recommendations?k=3")["model"] == f"itemknn:v{v2}"
        deadline = time.time() + 60
        while sum(s > activated for s, _, _ in list(answers)) < 30:
            assert time.time() < deadline, "too few answers after the activation"
            time.sleep(0.1)

        # a key revoked through one replica is refused by every replica once the revocation has returned
        key = call(ports[0], "POST", "/v1/admin/keys", {"name": "reader", "scope": "read"})
        assert [_with_key(p, key["key"], "/v1/models") for p in ports] == [200, 200, 200]
        assert call(ports[1], "POST", f"/v1/admin/keys/{key['id']}/revoke")["revoked"] is True
        assert [_with_key(p, key["key"], "/v1/models") for p in ports] == [401, 401, 401]

        stop.set()
        for t in load:
            t.join(timeout=60)
        after = [(replica, model) for s, replica, model in answers if s > activated]
        assert {model for _, model in after} == {f"itemknn:v{v2}"} and {r for r, _ in after} == {0, 1, 2}
        # no acknowledged event lost; every replica counts what the database holds
        stored = set(Store(make_engine(url)).event_ids())
        assert len(acknowledged) > 0 and acknowledged <= stored, sorted(acknowledged - stored)[:5]
        assert wrong == [] and not any(t.is_alive() for t in load)
        assert {call(p, "GET", "/readyz")["events"] for p in ports} == {len(stored)}
    finally:
        stop.set()
        for p in procs:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=30)
            if p is not None:
                p.stderr.close()
