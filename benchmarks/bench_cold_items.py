"""Cold items on MovieLens-100K: can a model recommend a film nobody has interacted with?

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_cold_items.py [--fraction 0.2] [--seeds 0,1,2]

20% of the films (seeded) are held out of training entirely. Each user whose first interaction
with a held-out film comes after at least 5 others is one episode: the model reads the films the
user had before as a session and ranks the held-out film among the cold films (and, second
column, among the whole catalogue minus the history). Printed: NDCG@10 per model (mean over
seeds, ± the spread), the expected NDCG@10 of a random ranking, and the ratio to it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from penchant.data import load_movielens
from penchant.data.coldstart import cold_item_split
from penchant.eval.cold import cold_item_ndcg
from penchant.eval.evaluate import validator
from penchant.models import create

SPECS = [("zeroshot", {}), ("sasrec", {}), ("sasrec", {"item_text": "fuse"}), ("sasrec", {"item_text": "text"}),
         ("gru4rec", {"item_text": "fuse"})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    ds = load_movielens("ml-100k")
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        split = cold_item_split(ds, fraction=args.fraction, seed=seed)
        print(f"seed {seed}: {split.counts}", flush=True)
        check = validator(split.warm.train, split.warm.valid)
        for name, params in SPECS:
            label = name + "".join(f" {k}={v}" for k, v in params.items())
            start = time.perf_counter()
            model = create(name, seed=seed, **params) if name != "zeroshot" else create(name)
            model.fit(split.warm.train, check)
            fit = time.perf_counter() - start
            cold, full = cold_item_ndcg(model, split), cold_item_ndcg(model, split, candidates="all")
            rows.setdefault(label, []).append((cold.mean, cold.chance, full.mean, full.chance, fit))
            print(f"  {label}: cold {cold.mean:.4f} (chance {cold.chance:.4f}), all {full.mean:.4f} "
                  f"(chance {full.chance:.4f}), fit {fit:.0f} s", flush=True)
    print(f"\nML-100K cold items ({args.fraction:.0%} of films held out), seeds {args.seeds}, NDCG@10 mean ± sd")
    print("| model | among cold films | × chance | among all films | × chance | fit s |")
    print("|---|---|---|---|---|---|")
    for label, r in sorted(rows.items(), key=lambda kv: -np.mean([x[0] for x in kv[1]])):
        a = np.array(r)
        print(f"| {label} | {a[:, 0].mean():.4f} ± {a[:, 0].std():.4f} | {a[:, 0].mean() / a[:, 1].mean():.1f} | "
              f"{a[:, 2].mean():.4f} ± {a[:, 2].std():.4f} | {a[:, 2].mean() / a[:, 3].mean():.1f} | {a[:, 4].mean():.0f} |")


if __name__ == "__main__":
    main()
