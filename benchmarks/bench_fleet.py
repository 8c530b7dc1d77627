"""Throughput of one, two and three `penchant serve` replicas on one PostgreSQL under the same load
(issue 41), and what the shared rate limit costs a request.

    PENCHANT_DATA=../shared/data nice -n 5 .venv/bin/python benchmarks/bench_fleet.py [--seconds 10] [--readers 16] [--writers 2]

ML-100K is restored into a fresh PostgreSQL database (the test suite's throwaway server,
tests/postgres.py, or ``PENCHANT_TEST_DATABASE_URL``), ALS is trained and activated through the
first replica, and replicas are started as in docs/service.md ("Several machines": the same
``--database-url``, each its own ``--data-dir`` and ``--port``). For 1, 2 and 3 replicas the same
load runs for the given time: ``--readers`` keep-alive connections sending GET
/v1/users/{random user}/recommendations?k=10 back to back and ``--writers`` connections posting
batches of 5 feedback events, the connections dealt round-robin over the replicas (the client is
the load balancer). Printed: requests/s, p50 and p99 of the reads, events/s acknowledged, and the
ratio of each to one replica's.

Then, in this process, the rate limiter's cost per request (µs, median of 5 blocks): the
in-process limiter (SQLite), the shared one claiming one request per round trip (batch 1), and the
shared one at its default batch (``rate_limit_per_minute // 100``, 12 at 1,200), the limit high
enough that nothing is refused.

Everything (client, replicas, PostgreSQL) runs on this machine: with 2 cores, more replicas add
processes competing for the same cores, not capacity, so the figure measures what coordination
costs, not how a fleet of machines scales.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import KEY, call, free_port, wait_up, worker  # the same client as bench_serve


async def writer(port: int, until: float, acknowledged: list[int], seed: int, run: str) -> None:
    """POST batches of 5 new events (ids ``<run>-<seed>-<batch>-<j>``) back to back on one keep-alive
    connection; counts the events acknowledged as inserted."""
    rng = np.random.default_rng(seed)
    reader, stream = await asyncio.open_connection("127.0.0.1", port)
    k = 0
    while time.perf_counter() < until:
        body = ("[" + ",".join(f'{{"event_id": "{run}-{seed}-{k}-{j}", "user_id": "{1 + int(rng.integers(943))}", '
                                f'"item_id": "{1 + int(rng.integers(1682))}", "type": "click"}}' for j in range(5)) + "]").encode()
        k += 1
        stream.write(f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await stream.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answer = await reader.readexactly(length)
        if status == 200:
            acknowledged.append(json.loads(answer)["inserted"])
    stream.close()


async def load(ports: list[int], paths: list[str], readers: int, writers: int, seconds: float, run: str = "warm"):
    latencies: list[float] = []
    errors: list[int] = []
    acknowledged: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(worker(ports[c % len(ports)], paths, until, latencies, errors, c) for c in range(readers)),
                         *(writer(ports[(readers + c) % len(ports)], until, acknowledged, c, run)
                           for c in range(writers)))
    return latencies, errors, sum(acknowledged), time.perf_counter() - start


def limiter_cost(url: str, calls: int = 2000) -> dict[str, float]:
    """µs per ``allow`` (median of 5 blocks): in-process, shared batch 1, shared default batch."""
    from penchant.serve.leases import RateLimiter, SharedRateLimiter
    from penchant.serve.store import make_engine

    engine = make_engine(url)
    limit = 10**9
    kinds = {"in-process (SQLite, one process)": RateLimiter(limit),
             "shared, batch 1 (a round trip per request)": SharedRateLimiter(engine, limit, batch=1),
             "shared, default batch (12)": SharedRateLimiter(engine, limit, batch=12)}  # rate_limit_per_minute 1,200's
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(5):
        for name, limiter in kinds.items():
            start = time.perf_counter()
            for k in range(calls):
                limiter.allow(f"key{k % 4}")
            out[name].append((time.perf_counter() - start) / calls * 1e6)
    engine.dispose()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--readers", type=int, default=16)
    ap.add_argument("--writers", type=int, default=2)
    args = ap.parse_args()
    from tests.postgres import PostgresServer

    data = Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k"
    pg = PostgresServer()
    url = pg.database()
    root = Path(tempfile.mkdtemp(prefix="penchant-fleet-"))
    env = dict(os.environ, PENCHANT_ADMIN_KEY=KEY, PENCHANT_RATE_LIMIT_PER_MINUTE="1000000000")  # measure, not throttle
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "-m", "penchant", "store", "restore", "--dataset", str(data), "--data-dir",
                        str(root / "restore"), "--database-url", url], check=True, env=env, capture_output=True)
        ports = [free_port() for _ in range(3)]
        for k, port in enumerate(ports):  # the commands of docs/service.md, "Several machines"
            procs.append(subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--database-url", url,
                                           "--data-dir", str(root / f"replica{k}"), "--port", str(port)],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_up(port)
        version = call(ports[0], "POST", "/v1/models/train", {"model": "als", "activate": True})["id"]
        while call(ports[0], "GET", f"/v1/models/{version}")["status"] == "training":
            time.sleep(0.2)
        paths = [f"/v1/users/{u}/recommendations?k=10" for u in range(1, 944)]
        for port in ports:  # each replica fetches the version and warms its answers
            asyncio.run(load([port], paths, 4, 0, 2.0))
        print(f"ML-100K in one PostgreSQL, ALS v{version} active; {args.readers} reading and {args.writers} writing "
              f"connections dealt over the replicas, {args.seconds:g} s each; client, replicas and PostgreSQL on this "
              f"machine ({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start)")
        rows = {}
        for n in (1, 2, 3):
            lat, errors, events, took = asyncio.run(load(ports[:n], paths, args.readers, args.writers, args.seconds, f"r{n}"))
            ms = np.array(lat) * 1000
            rows[n] = (len(lat) / took, *np.percentile(ms, [50, 99]), events / took, len(errors))
        print("| replicas | reads/s | p50 ms | p99 ms | events/s acknowledged | errors | reads/s ÷ one replica's | events/s ÷ one replica's |")
        print("|---|---|---|---|---|---|---|---|")
        for n, (rps, p50, p99, eps, errs) in rows.items():
            print(f"| {n} | {rps:,.0f} | {p50:.1f} | {p99:.1f} | {eps:,.0f} | {errs} | {rps / rows[1][0]:.2f} | "
                  f"{eps / rows[1][3]:.2f} |")
        print()
        for name, us in limiter_cost(url).items():
            print(f"rate limiter, {name}: {us:,.1f} µs per request")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        pg.stop()


if __name__ == "__main__":
    main()
