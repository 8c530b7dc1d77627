"""Does DPO fine-tuning help a trained SASRec? ML-100K, leave-last-one-out, full ranking.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_dpo.py [--epochs 1] [--beta 0.1] [--lr 3e-5]

SASRec is trained as in bench_sequential.py. Preference pairs come from the training ratings: at
every position whose next item the user rated ≥ 4, that item is preferred over an item the same
user rated ≤ 2 (`next_item_pairs`). The model is then fine-tuned with DPO and with robust DPO
(flip rate ε = 0.1), each from the same trained copy, and NDCG@10 / Recall@10 on the test items are
compared, together with the hit rate at 10 split by the test item's rating: users whose test item
they rated ≥ 4 (higher is better) and ≤ 2 (a disliked item recommended; lower is better).
"""

from __future__ import annotations

import argparse
import copy

import numpy as np

from penchant.data import load_movielens
from penchant.data.split import leave_last_out
from penchant.eval import evaluate, validator
from penchant.eval.evaluate import build_target
from penchant.models import create
from penchant.models.sequential.alignment.finetune import finetune_pairs
from penchant.models.sequential.alignment.pairs import next_item_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=3e-5)
    args = ap.parse_args()
    data = load_movielens("ml-100k")
    split = leave_last_out(data, n_test=1, n_valid=1)
    model = create("sasrec").fit(split.train, validator(split.train, split.valid))
    model.partial_fit(split.valid)
    target = build_target(split.train, split.test, (split.valid,))
    pairs = next_item_pairs(split.train, model.max_len)
    test_rating = np.zeros(split.test.n_users, dtype=np.float32)
    test_rating[split.test.users] = split.test.ratings
    print(f"{len(pairs)} preference pairs from training ratings", flush=True)

    def report(label: str, m) -> None:
        r = evaluate(m, split.train, split.test, ks=[10], target=target, beyond_accuracy=False)
        hit = r.per_user["hit@10"]
        rating = test_rating[r.users]
        print(f"| {label} | {r.metrics()['ndcg@10']:.4f} | {r.metrics()['recall@10']:.4f} | "
              f"{hit[rating >= 4].mean():.4f} | {hit[rating <= 2].mean():.4f} |", flush=True)

    print("| model | NDCG@10 | Recall@10 | HR@10, test item rated ≥ 4 | HR@10, test item rated ≤ 2 |")
    print("|---|---|---|---|---|")
    report("SASRec", model)
    for label, flip in (("+ DPO", 0.0), ("+ robust DPO (ε = 0.1)", 0.1)):
        tuned = copy.deepcopy(model)
        finetune_pairs(tuned, pairs, loss="rdpo" if flip else "dpo", beta=args.beta, flip_rate=flip, lr=args.lr,
                       epochs=args.epochs)
        report(label, tuned)


if __name__ == "__main__":
    main()
