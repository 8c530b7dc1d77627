"""What each worker of `penchant serve --workers N` holds of a large model: the deployed version's
arrays are memory-mapped from ``models/v<N>/arrays/``, so they are shared, file-backed pages, not
private copies.

    .venv/bin/python benchmarks/bench_worker_memory.py [--items 300000] [--users 50000] [--factors 64] [--workers 2]

An ALS artefact of the given shape (random factors: only their size matters here) is imported and
activated in a fresh data folder (``ann_min_items = 0``: exact scoring, which reads every item's factors); `penchant serve --workers N` answers recommendations until every
worker has loaded it; then each worker's memory is read from ``/proc/<pid>/smaps_rollup``: resident
(RSS), proportional (PSS: shared pages divided among their users), private, and shared. Printed
beside the size of the model's arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import scipy.sparse as sp

KEY = "pk_bench_" + "m" * 40


def smaps(pid: int) -> dict[str, int]:
    """kB figures of /proc/<pid>/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0])
    return out


def mapped_model(pid: int) -> tuple[float, float]:
    """(resident, shared) MiB of the mappings of the model's array files (``models/v*/arrays/*.npy``)."""
    rss = shared = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:  # a mapping's first line
            inside = len(head) >= 6 and "/arrays/" in head[-1] and head[-1].endswith(".npy")
        elif inside and line.startswith("Rss:"):
            rss += int(head[1])
        elif inside and line.startswith(("Shared_Clean:", "Shared_Dirty:")):
            shared += int(head[1])
    return rss / 1024, shared / 1024


def get(port: int, path: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=300_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from penchant.models import create

    rng = np.random.default_rng(0)
    model = create("als", factors=args.factors)
    # a fitted state of the requested shape, without fitting: one training event per user
    model.train_ = sp.csr_matrix((np.ones(args.users, np.float32), (np.arange(args.users), rng.integers(0, args.items, args.users))),
                                 shape=(args.users, args.items))
    model.n_users_, model.n_items_ = args.users, args.items
    model.user_ids_ = np.array([f"u{u}" for u in range(args.users)])
    model.item_ids_ = np.array([f"i{i}" for i in range(args.items)])
    model._set_factors(rng.normal(size=(args.users, args.factors)), rng.normal(size=(args.items, args.factors)))
    array_mb = (model.user_factors_.nbytes + model.item_factors_.nbytes) / 2**20

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        path = model.save(Path(tmp) / "big.npz")
        env = dict(os.environ, PENCHANT_ADMIN_KEY=KEY)
        config = Path(tmp) / "service.toml"  # exact scoring, so every worker reads all of the item factors
        config.write_text("[service]\nann_min_items = 0\n")
        subprocess.run([sys.executable, "-m", "penchant", "versions", "import", str(path), "--data-dir", str(data),
                        "--activate", "--config", str(config)], check=True, env=env, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "penchant", "serve", "--port", str(port), "--data-dir", str(data),
                                   "--workers", str(args.workers), "--config", str(config)], env=env, stderr=subprocess.DEVNULL)
        try:
            end = time.time() + 300
            pids: set[int] = set()
            while len(pids) < args.workers and time.time() < end:
                try:
                    pids.add(get(port, "/healthz")["pid"])
                    get(port, f"/v1/users/u{rng.integers(args.users)}/recommendations?k=10")
                except OSError:
                    time.sleep(0.5)
            for _ in range(50):  # every worker answers at least once with the model loaded
                get(port, f"/v1/users/u{rng.integers(args.users)}/recommendations?k=10")
            print(f"ALS artefact: {args.users:,} users × {args.items:,} items × {args.factors} factors; "
                  f"factor arrays {array_mb:.0f} MiB; {args.workers} workers")
            print(f"{'worker pid':<12}{'RSS MiB':>10}{'PSS MiB':>10}{'private MiB':>13}{'shared MiB':>12}"
                  f"{'model arrays resident / shared MiB':>37}")
            for pid in sorted(pids):
                m = smaps(pid)
                private = (m["Private_Clean"] + m["Private_Dirty"]) / 1024
                shared = (m["Shared_Clean"] + m["Shared_Dirty"]) / 1024
                arrays_rss, arrays_shared = mapped_model(pid)
                print(f"{pid:<12}{m['Rss'] / 1024:>10.0f}{m['Pss'] / 1024:>10.0f}{private:>13.0f}{shared:>12.0f}"
                      f"{arrays_rss:>28.0f} / {arrays_shared:.0f}")
        finally:
            server.terminate()
            server.wait(60)


if __name__ == "__main__":
    main()
