"""DLAE against EASE on several random splits of MovieLens-100K (per-user 80/10/10), both choosing
their hyper-parameters on the validation part; full-ranking NDCG@10 on the test part.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_dlae_seeds.py [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse

from penchant.data import load_movielens
from penchant.data.split import random_holdout
from penchant.eval import evaluate, validator
from penchant.models import create


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    args = ap.parse_args()
    data = load_movielens("ml-100k")
    for seed in map(int, args.seeds.split(",")):
        split = random_holdout(data, (0.8, 0.1, 0.1), seed=seed)
        check = validator(split.train, split.valid)
        ndcg = {name: evaluate(create(name).fit(split.train, check), split.train, split.test, ks=[10],
                               also_exclude=(split.valid,)).metrics()["ndcg@10"] for name in ("ease", "dlae")}
        print(f"seed {seed}: ease {ndcg['ease']:.4f}  dlae {ndcg['dlae']:.4f}  ratio {ndcg['dlae'] / ndcg['ease']:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
