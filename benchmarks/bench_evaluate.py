"""Evaluation alone (scores given) on an ML-1M-sized problem: users per second and peak memory.

    .venv/bin/python benchmarks/bench_evaluate.py [--users 6040] [--items 3706] [--per-user 165]

The scores come from a fixed random matrix, so only ranking, masking and the metrics are timed.
For reference, the same metrics are computed by a plain per-user loop (argsort per user, the way
many research scripts do it) on a subset of users, and the ratio of the two rates is printed.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from penchant.data import Dataset
from penchant.eval import build_target, evaluate
from penchant.models.base import Recommender


class GivenScores(Recommender):
    name = "given"

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def params(self):
        return {}

    def _fit(self, train, valid):
        pass

    def _score(self, users):
        return self.table[users]


def world(n_users: int, n_items: int, per_user: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(seed)
    pop = rng.permutation(1.0 / np.arange(10, n_items + 10) ** 0.9)  # long-tailed item popularity
    pop /= pop.sum()
    counts = np.clip(rng.lognormal(np.log(per_user) - 0.5, 1.0, n_users).astype(int), 20, n_items // 2)
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    # sample items per user by popularity (with repeats removed below)
    items = rng.choice(n_items, size=len(users), p=pop).astype(np.int32)
    key = np.unique(users.astype(np.int64) * n_items + items)
    users, items = (key // n_items).astype(np.int32), (key % n_items).astype(np.int32)
    is_test = rng.random(len(users)) < 0.2
    ids = lambda n, p: np.array([f"{p}{i}" for i in range(n)], dtype=object)  # noqa: E731
    make = lambda m: Dataset(ids(n_users, "u"), ids(n_items, "i"), users[m], items[m])  # noqa: E731
    return make(~is_test), make(is_test)


def naive_ndcg_recall(scores: np.ndarray, train: Dataset, test: Dataset, users: np.ndarray, k: int) -> float:
    tr, te = train.csr, test.csr
    total = 0.0
    for u in users:
        s = scores[u].astype(np.float64).copy()
        s[tr.indices[tr.indptr[u]:tr.indptr[u + 1]]] = -np.inf
        top = np.argsort(-s)[:k]
        rel = set(te.indices[te.indptr[u]:te.indptr[u + 1]].tolist())
        gains = [1.0 if i in rel else 0.0 for i in top]
        dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(len(rel), k)))
        total += dcg / idcg if idcg else 0.0
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument("--per-user", type=int, default=165)
    ap.add_argument("--reference-users", type=int, default=600)
    args = ap.parse_args()
    train, test = world(args.users, args.items, args.per_user)
    scores = np.random.default_rng(1).random((args.users, args.items), dtype=np.float32)
    model = GivenScores(scores).fit(train)
    print(f"problem: {args.users:,} users × {args.items:,} items, {train.n_interactions:,} train and "
          f"{test.n_interactions:,} test interactions")

    tracemalloc.start()
    start = time.perf_counter()
    target = build_target(train, test)
    result = evaluate(model, train, test, ks=[5, 10, 20, 50], target=target, diversity_attribute=None)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(result.users)
    rate = n / seconds
    print(f"penchant full evaluation (6 accuracy metrics × 4 cut-offs + coverage, Gini, novelty, ARP): "
          f"{seconds:.2f} s for {n:,} users = {rate:,.0f} users/s")
    print(f"peak traced memory during evaluation: {peak / 2**20:.0f} MiB "
          f"(score matrix itself: {scores.nbytes / 2**20:.0f} MiB, held by the model); "
          f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    ref_users = result.users[: args.reference_users]
    start = time.perf_counter()
    naive_ndcg_recall(scores, train, test, ref_users, 10)
    ref_seconds = time.perf_counter() - start
    ref_rate = len(ref_users) / ref_seconds
    print(f"reference per-user loop (NDCG@10 only): {ref_rate:,.0f} users/s on {len(ref_users):,} users")
    print(f"ratio penchant / reference: {rate / ref_rate:.1f}x (penchant computing far more metrics)")


if __name__ == "__main__":
    main()
