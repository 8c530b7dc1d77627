"""``?explore=thompson``: what a user's Thompson lists cost, and how well `penchant ope`'s estimators
recover a Thompson policy's value from Thompson logs, over seeds.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_thompson.py latency [--users 50]
    .venv/bin/python benchmarks/bench_thompson.py coverage [--seeds 20]

``latency``: ALS (64 factors, defaults) fitted on all of MovieLens-100K; for each of ``--users``
users, the N lists of k = 10 the service draws on a cache miss (N = 200 and 1,000, σ² = 1), and one
served from them with its propensities (a hit); medians in ms / µs. Then, at σ² = 0.1, 1, 10, the
share of shown items that are in the greedy top 10 (how much Thompson explores).

``coverage``: the world of tests/serve/test_serve_thompson.py without the HTTP layer (ALS on two
taste clusters of 400 users, click probability 0.6 in the user's cluster, 0.05 outside; lists of 3
logged under Thompson σ² = 2 with the service's propensities); the target is Thompson at σ² = 0.2.
Per seed: its true value (from 2,000 draws per user), iips and dr with 95% bootstrap intervals;
then how often the interval covered the truth and excluded the logging policy's value.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from penchant.models.als import ALS
from penchant.models.posterior import slot_marginals, thompson_lists
from penchant.serve.impressions import thompson


def _greedy_share(model: ALS, user: int, lists: np.ndarray, banned: np.ndarray) -> float:
    scores = np.where(banned, -np.inf, model.item_factors_ @ model.user_factors_[user])
    return float(np.isin(lists, np.argsort(-scores)[:10]).mean())


def latency(users: int) -> None:
    from penchant.data import load

    data = load(Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "ml-100k")
    model = ALS(factors=64)
    model.fit(data)
    rng = np.random.default_rng(0)
    chosen = rng.choice(data.n_users, users, replace=False)

    def banned(u: int) -> np.ndarray:
        mask = np.zeros(model.n_items_, bool)
        mask[model.train_[u].indices] = True
        return mask

    for n in (200, 1000):
        miss, hit = [], []
        for u in chosen:
            start = time.perf_counter()
            lists = thompson_lists(model, n, 10, rng, noise=1.0, user=int(u), banned=banned(u))
            miss.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(20):
                thompson(*lists, rng)
            hit.append((time.perf_counter() - start) / 20)
        print(f"N = {n}: a user's lists {np.median(miss) * 1e3:.1f} ms median ({np.quantile(miss, 0.9) * 1e3:.1f} p90); "
              f"one served with its propensities {np.median(hit) * 1e6:.0f} µs")
    for noise in (0.1, 1.0, 10.0):
        shares = [_greedy_share(model, int(u), thompson_lists(model, 500, 10, rng, noise=noise, user=int(u),
                                                              banned=banned(u))[0], banned(u)) for u in chosen[:20]]
        print(f"σ² = {noise:g}: {np.mean(shares):.0%} of shown items are in the greedy top 10")


def coverage(seeds: int) -> None:
    from penchant.data import Dataset
    from penchant.data.bandit_logs import Target, bandit_log
    from penchant.eval.ope import estimate

    rng0 = np.random.default_rng(0)
    n_users, n_items, k = 400, 40, 3
    users, items = [], []
    for u in range(n_users):  # tests/serve/server.py's clustered_events: 8 items of the user's parity
        users += [u] * 8
        items += list(rng0.choice(np.arange(u % 2, n_items, 2), 8, replace=False))
    data = Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                   np.array([f"i{i}" for i in range(n_items)], dtype=object), np.array(users, np.int32),
                   np.array(items, np.int32))
    model = ALS(factors=8, regularization=1.0, alpha=2.0)
    model.fit(data)
    parity = np.arange(n_items) % 2
    covered, excluded = {"iips": 0, "dr": 0}, {"iips": 0, "dr": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        log_rows: list[tuple] = []
        target_rows: list[tuple] = []
        value = logger = 0.0
        for u in range(n_users):
            banned = np.zeros(n_items, bool)
            banned[model.train_[u].indices] = True
            lists = thompson_lists(model, 1000, k, rng, noise=2.0, user=u, banned=banned)
            shown, _, propensity, _ = thompson(*lists, rng)
            click = np.where(parity == u % 2, 0.6, 0.05)
            rewards = rng.random(k) < click[shown]
            log_rows += [(u, u, int(shown[slot]), slot, float(rewards[slot]), propensity[slot]) for slot in range(k)]
            target = slot_marginals(thompson_lists(model, 2000, k, rng, noise=0.2, user=u, banned=banned)[0], n_items)
            value += float((target * click).sum()) / n_users
            logger += float((slot_marginals(lists[0], n_items) * click).sum()) / n_users
            target_rows += [(u * k + slot, a, target[slot, a]) for slot in range(k) for a in np.flatnonzero(target[slot])]
        log = bandit_log(*map(np.array, zip(*log_rows)))  # rows sorted by (round, slot): round u slot l is row u·k + l
        code = {int(v): c for c, v in enumerate(log.item_ids)}
        kept = [(row, code[a], p) for row, a, p in target_rows if a in code]
        rows, codes, probs = map(np.array, zip(*kept))
        results = estimate(log, Target(rows, log.item_ids, codes, probs), ("iips", "dr"), n_bootstrap=500, seed=seed)
        for name, r in results.items():
            covered[name] += r.ci[0] <= value <= r.ci[1]
            excluded[name] += not r.ci[0] <= logger <= r.ci[1]
        print(f"seed {seed}: true {value:.3f} (logger {logger:.3f}); "
              + "; ".join(f"{n} {r.value:.3f} [{r.ci[0]:.3f}, {r.ci[1]:.3f}]" for n, r in results.items()), flush=True)
    print(f"95% intervals covering the true value: iips {covered['iips']}/{seeds}, dr {covered['dr']}/{seeds}; "
          f"excluding the logging policy's value: iips {excluded['iips']}/{seeds}, dr {excluded['dr']}/{seeds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("latency", "coverage"))
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    with threadpool_limits(1):
        latency(args.users) if args.what == "latency" else coverage(args.seeds)


if __name__ == "__main__":
    main()
