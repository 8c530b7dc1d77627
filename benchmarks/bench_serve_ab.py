"""The service's throughput from two source trees in one run: a base revision against the working
tree, the answer cache on and off, interleaved (base, head, base, head, …) so that a busy machine
slows both alike.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_serve_ab.py --base c3c971b [--rounds 3]

Each run: ML-100K restored into a fresh SQLite store, `penchant serve --workers 2` started from
that tree (``PYTHONPATH=<tree>/src``, the same virtual environment), ALS trained and activated
through the API, then the load of :mod:`bench_serve` (keep-alive connections asking
``GET /v1/users/{random of 943}/recommendations?k=10``). Printed: median requests/s and p99 per
tree, cache setting and concurrency, and head/base ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_serve import KEY, call, free_port, measure, wait_up  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, store: Path, cache: int, levels: list[int], seconds: float, workers: int) -> dict:
    """One server from ``tree`` over a copy of ``store``: {concurrency: (req/s, p50, p90, p99, errors)}."""
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
        return measure(port, paths, levels, seconds)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the git revision to compare the working tree with")
    ap.add_argument("--concurrency", default="1,100")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    base = Path(tempfile.mkdtemp(prefix="penchant-base-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                   capture_output=True)
    store = Path(tempfile.mkdtemp(prefix="penchant-store-"))
    try:
        data = Path(os.environ.get("PENCHANT_DATA", ROOT.parent / "shared" / "data")) / "ml-100k"
        subprocess.run([sys.executable, "-m", "penchant", "store", "restore", "--dataset", str(data), "--data-dir",
                        str(store)], check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(base / "src")))
        trees = {"base": base, "head": ROOT}
        got: dict = {}
        for cache in (10_000, 0):
            for r in range(args.rounds):
                for name, tree in trees.items():
                    got.setdefault((name, cache), []).append(run(tree, store, cache, levels, args.seconds, args.workers))
                    print(f"cache {cache:>6}, round {r + 1}, {name}: " + ", ".join(
                        f"{c}: {got[name, cache][-1][c][0]:,.0f} req/s" for c in levels), flush=True)
        print(f"\nbase {args.base} against the working tree; median of {args.rounds} runs each, interleaved; "
              f"{args.workers} workers, {args.seconds:g} s per level, on this machine ({os.cpu_count()} cores)\n")
        print("| answer cache | concurrent | base req/s | head req/s | head/base | base p99 ms | head p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for cache in (10_000, 0):
            for c in levels:
                b = np.median([x[c][0] for x in got["base", cache]]), np.median([x[c][3] for x in got["base", cache]])
                h = np.median([x[c][0] for x in got["head", cache]]), np.median([x[c][3] for x in got["head", cache]])
                print(f"| {'on' if cache else 'off'} | {c} | {b[0]:,.0f} | {h[0]:,.0f} | {h[0] / b[0]:.3f} | "
                      f"{b[1]:.1f} | {h[1]:.1f} |")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
