"""Sequential recommendation on MovieLens-100K: leave-last-one-out by time, full ranking.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_sequential.py [--models sasrec,gru4rec,...]

Each user's last interaction is the test item and the one before it the validation item; every
model fits on the rest (validation for early stopping and selection), sequential models then read
the validation item as part of the history, and the test item is ranked against the full catalogue
with the user's train and valid items masked. Printed: NDCG@10, Recall@10, fit seconds, epochs and
seconds per epoch for the neural models, and the ratio to the best non-sequential model.
"""

from __future__ import annotations

import argparse

import numpy as np

from penchant.data import load_movielens
from penchant.data.split import leave_last_out
from penchant.eval.evaluate import build_target
from penchant.experiment.run import run

MODELS = ["pop", "ease", "als", "markov", "lastitemknn", "gru4rec", "sasrec"]
NON_SEQUENTIAL = {"pop", "ease", "als", "itemknn", "edlae", "dlae", "bpr"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--param", action="append", default=[], help="model:key=value, e.g. sasrec:loss=bce")
    args = ap.parse_args()
    extra: dict[str, dict[str, str]] = {}
    for spec in args.param:
        name, _, kv = spec.partition(":")
        key, _, value = kv.partition("=")
        extra.setdefault(name, {})[key] = value
    split = leave_last_out(load_movielens("ml-100k"), n_test=1, n_valid=1)
    target = build_target(split.train, split.test, (split.valid,))
    rows = []
    for name in args.models.split(","):
        from penchant.models import create

        params = {k: type(create(name).params()[k])(v) for k, v in extra.get(name, {}).items()}
        result = run(name, params, split.train, split.valid, split.test, ks=[10, 20], target=target)
        m = result.metrics()
        epochs = result.extra.get("selected", {}).get("epochs")
        per_epoch = result.extra.get("epoch_seconds")
        rows.append((name, m["ndcg@10"], m["recall@10"], result.fit_seconds, epochs, per_epoch))
        print(f"{name}: ndcg@10 {m['ndcg@10']:.4f} recall@10 {m['recall@10']:.4f} fit {result.fit_seconds:.1f} s"
              + (f", best epoch {epochs}, {per_epoch:.2f} s/epoch" if per_epoch else ""), flush=True)
    base = max((r[1] for r in rows if r[0] in NON_SEQUENTIAL and r[0] != "pop"), default=np.nan)
    print(f"\nML-100K leave-last-one-out, {len(target.users)} users, full ranking, train+valid items masked")
    print("| model | NDCG@10 | Recall@10 | fit s | best epoch | s per epoch | ratio to best non-sequential |")
    print("|---|---|---|---|---|---|---|")
    for name, ndcg, recall, fit, epochs, per_epoch in sorted(rows, key=lambda r: -r[1]):
        print(f"| {name} | {ndcg:.4f} | {recall:.4f} | {fit:.1f} | {epochs or '—'} | "
              f"{f'{per_epoch:.2f}' if per_epoch else '—'} | {ndcg / base:.3f} |")


if __name__ == "__main__":
    main()
