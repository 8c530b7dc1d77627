"""penchant at scale against plain references, in one run: for synthetic logs of 1M, 5M and 20M
interactions shaped like ML-20M (users ∝ size, items ∝ √size: 138k × 27k at 20M; power-law
popularity and activity), each step's wall time and peak memory for penchant and for a minimal
reference doing the same work, and their ratio.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000,5000000,20000000] [--steps load,split]

Steps (each measured in a fresh process, so peak memory is the step's own):
* ``load``: ``penchant.data.load`` of the CSV log and its user × item CSR, against
  ``polars.read_csv`` with categorical ids plus ``scipy.sparse.csr_matrix`` of the codes.
* ``split``: ``random_holdout`` 80/10/10 per user of the loaded Dataset, against a numpy
  per-user shuffle of the same arrays.

Peak memory is the process's peak resident set minus its resident set after imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def shape(n: int) -> tuple[int, int]:
    """(users, items) of an ML-20M-like log of ``n`` interactions."""
    return max(100, round(138_493 * n / 20_000_263)), max(100, round(26_744 * (n / 20_000_263) ** 0.5))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(step: str, side: str, path: Path) -> dict:
    """Run one step in this process; its seconds and peak MiB above the post-import baseline."""
    import numpy as np
    import polars as pl
    import scipy.sparse as sp

    from penchant.data import load
    from penchant.data.split import random_holdout

    base = rss_mib()
    start = time.perf_counter()
    if step == "load" and side == "penchant":
        ds = load(path)
        m = ds.csr
        size = int(m.nnz)
    elif step == "load":
        frame = pl.read_csv(path, schema_overrides={"user": pl.Categorical, "item": pl.Categorical,
                                                    "rating": pl.Float32, "timestamp": pl.Float64})
        u = frame["user"].to_physical().to_numpy()
        i = frame["item"].to_physical().to_numpy()
        m = sp.csr_matrix((frame["rating"].to_numpy(), (u, i)))
        size = int(m.nnz)
    else:  # split: load first (not timed), then the split alone
        ds = load(path)
        base, start = rss_mib(), time.perf_counter()
        if side == "penchant":
            parts = random_holdout(ds, (0.8, 0.1, 0.1), seed=0)
            size = parts.train.n_interactions
        else:
            rng = np.random.default_rng(0)
            order = np.lexsort((rng.random(len(ds.users)), ds.users))
            counts = np.bincount(ds.users, minlength=ds.n_users)
            rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
            share = rank / np.repeat(np.maximum(counts, 1), counts)
            train = order[share < 0.8]
            size = len(train)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak - base, "size": size}


def measure(step: str, side: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, side, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000")
    parser.add_argument("--steps", default="load,split")
    parser.add_argument("--work", type=Path, default=Path("/tmp/penchant-scale"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], Path(args.child[2]))))
        return
    from penchant.data.synthetic import power_law_log
    from penchant.data.write import write_log

    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'size':>11} {'step':<6} {'penchant s':>10} {'ref s':>8} {'ratio':>6} {'penchant MiB':>12} {'ref MiB':>8} {'ratio':>6}")
    for n in (int(s) for s in args.sizes.split(",")):
        users, items = shape(n)
        path = args.work / f"synth-{n}.csv"
        if not path.exists():
            t = time.perf_counter()
            write_log(power_law_log(users, items, n, seed=0), path)
            print(f"# wrote {path} ({users:,} users, {items:,} items) in {time.perf_counter() - t:.1f} s", flush=True)
        for step in args.steps.split(","):
            ours, ref = measure(step, "penchant", path), measure(step, "reference", path)
            print(f"{n:>11,} {step:<6} {ours['seconds']:>10.2f} {ref['seconds']:>8.2f} {ours['seconds'] / ref['seconds']:>6.2f} "
                  f"{ours['peak_mib']:>12.0f} {ref['peak_mib']:>8.0f} {ours['peak_mib'] / max(ref['peak_mib'], 1):>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
