"""The approximate index (HNSW by inner product, :mod:`penchant.models.ann`) against exact scoring on
a synthetic catalogue of latent-factor vectors, in one run:

    .venv/bin/python benchmarks/bench_ann.py [--items 1000000] [--dim 64] [--queries 1000] [--seed 0]

The catalogue looks like a fitted factor model's: each item is one of 200 topic directions plus
noise, scaled by a log-normal popularity factor, with an item bias; each user query mixes a few
topics. Keys and queries carry the bias as one more dimension (``[q_i, b_i]`` · ``[p_u, 1]``), as the
service builds them.

Reported: build time and size of the index; recall@10 against the exact top 10 over the queries
and per-query latency (p50/p99, one query at a time, as the service asks) for several search
depths ``ef`` (the default marked), beside exact scoring (one matrix-vector product over every
item plus a partial sort), and the ratio; and the
same with 100 banned items per query (a user's seen items), which the index answers by asking for
110 and dropping the banned.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from penchant.models.ann import EXPANSION_SEARCH, ItemIndex, recall_at_k


def catalogue(n_items: int, dim: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 keys (n_items, dim + 1) and queries (n_queries, dim + 1)."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(200, dim)).astype(np.float32) / np.sqrt(dim)
    keys = np.empty((n_items, dim + 1), np.float32)
    for s in range(0, n_items, 200_000):  # in blocks: bounded memory at a million items
        n = min(200_000, n_items - s)
        topic = rng.integers(0, 200, n)
        pop = rng.lognormal(0.0, 0.5, (n, 1)).astype(np.float32)
        keys[s:s + n, :dim] = pop * (topics[topic] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim))
        keys[s:s + n, dim] = 0.1 * rng.normal(size=n)
    mix = rng.dirichlet(np.full(200, 0.05), n_queries).astype(np.float32)
    queries = np.hstack([mix @ topics * 3.0, np.ones((n_queries, 1), np.float32)])
    return keys, queries.astype(np.float32)


def exact_top(keys: np.ndarray, query: np.ndarray, k: int, banned: np.ndarray | None = None) -> np.ndarray:
    scores = keys @ query
    if banned is not None:
        scores[banned] = -np.inf
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part])]


def timed(fn, queries) -> tuple[np.ndarray, np.ndarray]:
    out, seconds = [], []
    for q in queries:
        start = time.perf_counter()
        out.append(fn(q))
        seconds.append(time.perf_counter() - start)
    return np.array(out), np.array(seconds) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    k = 10
    keys, queries = catalogue(args.items, args.dim, args.queries, args.seed)
    print(f"{args.items:,} items × {args.dim} factors (+ bias), {args.queries:,} queries, {os.cpu_count()} cores")

    start = time.perf_counter()
    index = ItemIndex.build(keys)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = index.save(os.path.join(tmp, "items.usearch"))
        size = path.stat().st_size
        index = ItemIndex.load(path)  # memory-mapped, as the service loads it
        print(f"build: {build_s:.1f} s on all cores; file {size / 2**20:.0f} MiB "
              f"(the float32 keys alone: {keys.nbytes / 2**20:.0f} MiB)")

        exact, exact_ms = timed(lambda q: exact_top(keys, q, k), queries)
        print(f"{'per query':<28}{'recall@' + str(k):>10}{'p50 ms':>9}{'p99 ms':>9}{'exact/index p50':>17}")
        print(f"{'exact (numpy)':<28}{1.0:>10.4f}{np.percentile(exact_ms, 50):>9.3f}{np.percentile(exact_ms, 99):>9.3f}")
        for ef in sorted({64, 128, 256, 512, EXPANSION_SEARCH}):
            index.index.expansion_search = ef
            found, ann_ms = timed(lambda q: index.search(q, k)[0][0], queries)
            mark = " (default)" if ef == EXPANSION_SEARCH else ""
            print(f"{'index, ef ' + str(ef) + mark:<28}{recall_at_k(found, exact):>10.4f}{np.percentile(ann_ms, 50):>9.3f}"
                  f"{np.percentile(ann_ms, 99):>9.3f}{np.percentile(exact_ms, 50) / np.percentile(ann_ms, 50):>16.0f}×")
        index.index.expansion_search = EXPANSION_SEARCH

        rng = np.random.default_rng(args.seed + 1)
        masks = []
        for _ in range(len(queries)):
            m = np.zeros(args.items, bool)
            m[rng.choice(args.items, 100, replace=False)] = True
            masks.append(m)
        pairs = list(zip(queries, masks))
        found_b, ann_b = timed(lambda qm: index.top(qm[0], k, qm[1])[0], pairs)
        exact_b, exact_bms = timed(lambda qm: exact_top(keys, qm[0], k, qm[1]), pairs)
        print(f"with 100 banned items per query: recall@{k} {recall_at_k(found_b, exact_b):.4f}; "
              f"p50 {np.percentile(ann_b, 50):.3f} ms (index) vs {np.percentile(exact_bms, 50):.3f} ms (exact)")


if __name__ == "__main__":
    main()
