"""Load on `penchant serve`: recommendation latency and throughput on MovieLens-100K with a deployed
ALS model, from a bounded client on loopback (this machine runs both), against the framework's
ceiling measured in the same run.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_serve.py [--workers 2] [--concurrency 1,10,100] [--seconds 10]

The ceiling is `benchmarks/serve_ceiling.py`: a minimal FastAPI/Uvicorn app with the same number
of worker processes returning a precomputed top 10 for the user in the path; the table gives
penchant's requests/s and p99 as ratios of the ceiling's at each concurrency. Gorse's published
per-request latencies are printed beside them, as published (their benchmark, their machine).

The store is loaded from ML-100K (100,000 events), ALS is trained and activated through the API,
then for each concurrency level C, C keep-alive connections each send GET
/v1/users/{random user}/recommendations?k=10 back to back for the given time (the client is a
minimal asyncio HTTP/1.1 client, so it costs the server's two cores little). Reported: requests
per second, p50/p90/p99 latency, and errors. Also one sequential run of POST /v1/feedback batches
(events per second acknowledged).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

KEY = "pk_bench_" + "b" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body=None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


async def worker(port: int, paths: list[str], until: float, latencies: list[float], errors: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"Host: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\r\n"
    while time.perf_counter() < until:
        path = paths[rng.integers(len(paths))]
        start = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\n{head}".encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - start)
        if status != 200:
            errors.append(status)
    writer.close()


async def load(port: int, paths: list[str], concurrency: int, seconds: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(worker(port, paths, until, latencies, errors, s) for s in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


#: Gorse's own RESTful API benchmark (gorse-io/docs, src/docs/benchmark.md): milliseconds per request
GORSE_PUBLISHED = {"RecommendFromOfflineCache/10 (MySQL data, Redis cache)": 0.35,
                   "RecommendFromOfflineCache/10 (PostgreSQL data and cache)": 0.76,
                   "GetRecommendCache/10 (MySQL data, Redis cache)": 0.26}


def wait_up(port: int) -> None:
    for _ in range(1200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def measure(port: int, paths: list[str], levels: list[int], seconds: float) -> dict[int, tuple[float, float, float, float, int]]:
    """Per concurrency level: (requests/s, p50, p90, p99 ms, errors), after a warm-up."""
    asyncio.run(load(port, paths, 4, 2.0))
    out = {}
    for c in levels:
        lat, errors, took = asyncio.run(load(port, paths, c, seconds))
        ms = np.array(lat) * 1000
        out[c] = (len(lat) / took, *np.percentile(ms, [50, 90, 99]), len(errors))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="1,10,100")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes of both servers")
    ap.add_argument("--no-impressions", action="store_true",
                    help="serve without recording impressions (log_impressions = false), to measure what recording costs")
    ap.add_argument("--cache-entries", type=int, default=10_000,
                    help="penchant's answer cache per worker (0: every answer computed, as for users seen once)")
    args = ap.parse_args()
    data = Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k"
    folder = Path(tempfile.mkdtemp(prefix="penchant-bench-"))
    env = dict(os.environ, PENCHANT_ADMIN_KEY=KEY, PENCHANT_RATE_LIMIT_PER_MINUTE="1000000000")  # measure, not throttle
    subprocess.run([sys.executable, "-m", "penchant", "store", "restore", "--dataset", str(data), "--data-dir",
                    str(folder)], check=True, env=env, capture_output=True)
    port = free_port()
    config = folder / "bench.toml"
    config.write_text(f"[service]\nanswer_cache_entries = {args.cache_entries}\n"
                      f"log_impressions = {'false' if args.no_impressions else 'true'}\n")
    server = subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--port", str(port), "--data-dir", str(folder),
                               "--workers", str(args.workers), "--config", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ceiling_port = free_port()
    ceiling = None
    try:
        wait_up(port)
        version = call(port, "POST", "/v1/models/train", {"model": "als", "activate": True})["id"]
        while call(port, "GET", f"/v1/models/{version}")["status"] == "training":
            time.sleep(0.2)
        users = [str(u) for u in range(1, 944)]
        paths = [f"/v1/users/{u}/recommendations?k=10" for u in users]
        levels = [int(x) for x in args.concurrency.split(",")]
        print(f"ML-100K in the store (SQLite, {folder}), ALS v{version} active, {args.workers} worker process(es), "
              f"answer cache {args.cache_entries:,} entries; impressions {'off' if args.no_impressions else 'recorded'}; "
              f"client and server on this machine ({os.cpu_count()} cores); {args.seconds:g} s per level")
        ours = measure(port, paths, levels, args.seconds)  # (every user's answer is cached after its first request)
        batch, n = 1000, 20
        start = time.perf_counter()
        for b in range(n):
            call(port, "POST", "/v1/feedback", [{"event_id": f"bench-{b}-{k}", "user_id": str(1 + k % 943),
                                                 "item_id": str(1 + (b * 7 + k) % 1682), "type": "click"}
                                                for k in range(batch)])
        took = time.perf_counter() - start
        feedback = (f"feedback: {n} batches of {batch} events, one after another: {n * batch / took:,.0f} events/s "
                    f"acknowledged ({took / n * 1000:.0f} ms per batch, each committed before the answer)")
        server.terminate()
        server.wait(60)
        ceiling = subprocess.Popen([sys.executable, "-m", "uvicorn", "serve_ceiling:app", "--app-dir",
                                    str(Path(__file__).parent), "--port", str(ceiling_port), "--workers", str(args.workers),
                                    "--log-level", "warning", "--no-access-log"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_up(ceiling_port)
        top = measure(ceiling_port, paths, levels, args.seconds)
        print("| concurrent connections | server | requests/s | p50 ms | p90 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|")
        for c in levels:
            for name, row in (("penchant", ours[c]), ("ceiling (FastAPI, precomputed)", top[c])):
                print(f"| {c} | {name} | {row[0]:,.0f} | {row[1]:.1f} | {row[2]:.1f} | {row[3]:.1f} | {row[4]} |")
        print()
        for c in levels:
            print(f"at {c} concurrent: penchant/ceiling requests/s {ours[c][0] / top[c][0]:.2f}, "
                  f"p99 {ours[c][3] / top[c][3]:.2f}")
        print(feedback)
        print("Gorse, published (ms per request, sequential, their machine): " +
              "; ".join(f"{k} {v}" for k, v in GORSE_PUBLISHED.items()))
    finally:
        for proc in (server, ceiling):  # SIGTERM: both stop their worker processes too
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
