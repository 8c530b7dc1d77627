"""Long histories: what scoring and training cost as the history grows, full self-attention over
the whole history against SDIM-style hashing of the history beyond the recent items.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_long_history.py [--lengths 50,200,1000,5000] [--quality]

Cost: untrained networks (cost does not depend on the weights), 1,682 items, d = 64, random
histories of exactly L items. "full" is SASRec with ``max_len = L`` (2 blocks of causal attention
over all L items); "hashed" is SASRec over the last 50 items plus the hashed long-term part over
the L − 50 before them (``long_len``). Printed: milliseconds to score the full catalogue for one
user (batches of 16 users) and for one training step (a batch of 8 windows, forward + backward),
and the ratio of each to its value at the first length.

``--quality`` then trains on MovieLens-100K, leave-last-one-out by time (full ranking; histories
there reach 737 items): SASRec over the last 50 items, full attention over 200, and 50 + hashed
150, reporting NDCG@10, fit time and seconds per epoch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from penchant.models import create

N_ITEMS, RECENT = 1682, 50


def _network(length: int, hashed: bool):
    import torch

    params = {"max_len": RECENT, "long_len": length - RECENT} if hashed and length > RECENT else {"max_len": length}
    model = create("sasrec", **params)
    model.n_items_, model.item_vectors_, model.warm_ = N_ITEMS, None, None
    torch.manual_seed(0)
    model.net_ = model._build_net()
    return model


def _best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cost(lengths: list[int]) -> None:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    _network(RECENT, False)._score_padded(rng.integers(0, N_ITEMS, size=(16, RECENT)))  # warm-up: first torch calls
    rows = []
    for length in lengths:
        for hashed in (False, True):
            model = _network(length, hashed)
            users = rng.integers(0, N_ITEMS, size=(16, length))
            model.net_.eval()
            score_ms = _best_of(lambda: model._score_padded(users)) / 16 * 1e3
            window = rng.integers(0, N_ITEMS, size=(8, length + 1))
            model.net_.train()

            def step() -> None:
                long = window[:, : model.long_len] if model.long_len else None
                seqs, targets = window[:, model.long_len:-1], torch.from_numpy(window[:, model.long_len + 1:])
                hidden, table, extra = model._forward(seqs, long)
                logits = hidden @ table[:N_ITEMS].T
                if extra is not None:
                    logits = logits + extra[:, None, :]
                F.cross_entropy(logits.reshape(-1, N_ITEMS), targets.reshape(-1)).backward()

            try:
                step_ms = _best_of(step, 2) * 1e3
            except RuntimeError as err:  # out of memory at the longest lengths
                step_ms = float("nan")
                print(f"  full attention training at L={length} failed: {err}".splitlines()[0], flush=True)
            rows.append((length, "hashed" if hashed else "full", score_ms, step_ms))
            print(f"L={length} {'hashed' if hashed else 'full'}: score {score_ms:.2f} ms/user, "
                  f"train step {step_ms:.0f} ms", flush=True)
    print("\n| history L | full: ms/user | full: ms/step | hashed: ms/user | hashed: ms/step | full/hashed per user |")
    print("|---|---|---|---|---|---|")
    by = {(r[0], r[1]): r for r in rows}
    for length in lengths:
        f, h = by[(length, "full")], by[(length, "hashed")]
        print(f"| {length} | {f[2]:.2f} | {f[3]:.0f} | {h[2]:.2f} | {h[3]:.0f} | {f[2] / h[2]:.1f} |")
    first = lengths[0]
    for kind in ("full", "hashed"):
        growth = ", ".join(f"{by[(n, kind)][2] / by[(first, kind)][2]:.1f}×" for n in lengths)
        print(f"{kind}: scoring cost relative to L={first}: {growth} (length ratio "
              + ", ".join(f"{n / first:g}×" for n in lengths) + ")")


def quality() -> None:
    from penchant.data import load_movielens
    from penchant.data.split import leave_last_out
    from penchant.eval.evaluate import build_target
    from penchant.experiment.run import run

    split = leave_last_out(load_movielens("ml-100k"), n_test=1, n_valid=1)
    target = build_target(split.train, split.test, (split.valid,))
    print("\nML-100K leave-last-one-out, full ranking")
    print("| SASRec history | NDCG@10 | fit s | s per epoch | best epoch |")
    print("|---|---|---|---|---|")
    for label, params in (("last 50, full attention", {"max_len": 50}),
                          ("last 200, full attention", {"max_len": 200}),
                          ("last 50 + hashed 150 before them", {"max_len": 50, "long_len": 150})):
        r = run("sasrec", params, split.train, split.valid, split.test, ks=[10], target=target)
        print(f"| {label} | {r.metrics()['ndcg@10']:.4f} | {r.fit_seconds:.0f} | {r.extra['epoch_seconds']:.2f} | "
              f"{r.extra.get('selected', {}).get('epochs', '—')} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="50,200,1000,5000")
    ap.add_argument("--quality", action="store_true")
    args = ap.parse_args()
    cost([int(x) for x in args.lengths.split(",")])
    if args.quality:
        quality()


if __name__ == "__main__":
    main()
