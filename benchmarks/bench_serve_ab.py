"""The service's throughput from two source trees in one run: a base revision against the working
tree, the answer cache on and off, interleaved (base, head, base, head, …) so that a busy machine
slows both alike.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_serve_ab.py --base c3c971b [--head REV] [--rounds 3]

Each run: ML-100K restored into a fresh SQLite store, `penchant serve --workers 2` started from
that tree (``PYTHONPATH=<tree>/src``, the same virtual environment), ALS trained and activated
through the API, then the load of :mod:`bench_serve` (keep-alive connections asking
``GET /v1/users/{random of 943}/recommendations?k=10``). Printed: median requests/s, p99 and the
server's CPU milliseconds per request (its processes' user + system time over the requests it
answered: the figure a busy machine disturbs least) per tree, cache setting and concurrency, with
head/base ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import KEY, call, free_port, load, wait_up

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server and its worker processes so far."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run(tree: Path, store: Path, cache: int, levels: list[int], seconds: float, workers: int) -> dict:
    """One server from ``tree`` over a copy of ``store``: {concurrency: (req/s, p99 ms, server CPU ms per
    request, errors)}."""
    folder = Path(tempfile.mkdtemp(prefix="penchant-ab-"))
    shutil.copytree(store, folder, dirs_exist_ok=True)
    (folder / "bench.toml").write_text(f"[service]\nanswer_cache_entries = {cache}\n")
    env = dict(os.environ, PENCHANT_ADMIN_KEY=KEY, PENCHANT_RATE_LIMIT_PER_MINUTE="1000000000",
               PYTHONPATH=str(tree / "src"))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--port", str(port), "--data-dir", str(folder),
                               "--workers", str(workers), "--config", str(folder / "bench.toml")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port)
        version = call(port, "POST", "/v1/models/train", {"model": "als", "activate": True})["id"]
        while call(port, "GET", f"/v1/models/{version}")["status"] == "training":
            time.sleep(0.2)
        paths = [f"/v1/users/{u}/recommendations?k=10" for u in range(1, 944)]
        asyncio.run(load(port, paths, 4, 2.0))  # warm-up
        out = {}
        for c in levels:
            before = _cpu_seconds(server.pid)
            lat, errors, took = asyncio.run(load(port, paths, c, seconds))
            cpu_ms = 1000 * (_cpu_seconds(server.pid) - before) / max(len(lat), 1)
            out[c] = (len(lat) / took, float(np.percentile(np.array(lat) * 1000, 99)), cpu_ms, len(errors))
        return out
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the git revision to compare with")
    ap.add_argument("--head", default=None, help="the git revision compared (default: the working tree)")
    ap.add_argument("--concurrency", default="1,100")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    base = Path(tempfile.mkdtemp(prefix="penchant-base-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                   capture_output=True)
    head = ROOT
    if args.head is not None:
        head = Path(tempfile.mkdtemp(prefix="penchant-head-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(head), args.head], check=True,
                       capture_output=True)
    store = Path(tempfile.mkdtemp(prefix="penchant-store-"))
    try:
        data = Path(os.environ.get("PENCHANT_DATA", ROOT.parent / "shared" / "data")) / "ml-100k"
        subprocess.run([sys.executable, "-m", "penchant", "store", "restore", "--dataset", str(data), "--data-dir",
                        str(store)], check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(base / "src")))
        trees = {"base": base, "head": head}
        got: dict = {}
        for cache in (10_000, 0):
            for r in range(args.rounds):
                for name, tree in trees.items():
                    got.setdefault((name, cache), []).append(run(tree, store, cache, levels, args.seconds, args.workers))
                    print(f"cache {cache:>6}, round {r + 1}, {name}: " + ", ".join(
                        f"{c}: {got[name, cache][-1][c][0]:,.0f} req/s, {got[name, cache][-1][c][2]:.3f} CPU ms/request"
                        for c in levels), flush=True)
        print(f"\nbase {args.base} against {args.head or 'the working tree'}; median of {args.rounds} runs each, interleaved; "
              f"{args.workers} workers, {args.seconds:g} s per level, on this machine ({os.cpu_count()} cores)\n")
        print("| answer cache | concurrent | base req/s | head req/s | head/base | base CPU ms/request | "
              "head CPU ms/request | head/base | base p99 ms | head p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for cache in (10_000, 0):
            for c in levels:
                b = [np.median([x[c][j] for x in got["base", cache]]) for j in range(3)]
                h = [np.median([x[c][j] for x in got["head", cache]]) for j in range(3)]
                print(f"| {'on' if cache else 'off'} | {c} | {b[0]:,.0f} | {h[0]:,.0f} | {h[0] / b[0]:.3f} | {b[2]:.3f} | "
                      f"{h[2]:.3f} | {h[2] / b[2]:.3f} | {b[1]:.1f} | {h[1]:.1f} |")
    finally:
        for tree in {base, head} - {ROOT}:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True,
                           check=False)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
