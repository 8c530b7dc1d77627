"""The torch learners trained data-parallel on a Ray cluster (``penchant fit --backend ray``) against
local fits of the same seeds and epochs: full-ranking NDCG@10 on MovieLens-100K (per-user 80/10/10,
split seed 2026, valid masked), the local seed-to-seed spread, and the seconds of each fit.

Start a two-node cluster on this machine first (a head and a second node, one CPU each), then:

    RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled .venv/bin/ray start --head --node-ip-address 127.0.0.1 \\
        --port 6390 --num-cpus 1 --include-dashboard false
    RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled .venv/bin/ray start --address 127.0.0.1:6390 \\
        --node-ip-address 127.0.0.1 --num-cpus 1
    RAY_AUTH_MODE=disabled PENCHANT_DATA=../shared/data nice -n 5 .venv/bin/python benchmarks/bench_ray_train.py \\
        --address 127.0.0.1:6390 [--models bpr,lightgcn,multvae,sasrec] [--seeds 1,2,3] [--ray-seeds 1,2] [--json out.json]

``--als`` instead fits ALS three ways on that split: `implicit` (the local fit), penchant's
block solves in this process, and the same block solves as Ray tasks (``fit --model als --backend
ray``): NDCG@10, seconds, and the largest difference between the two block fits' factors.

``--test-spread`` instead fits, in this process only, the settings of tests/backends/test_ray_train.py
over seeds 1–4 on the test's split (``penchant split ml-100k --ratios 0.8,0.1,0.1 --seed 2026``
into ``--split DIR``) and prints each one's seed-to-seed range: the tolerance the test allows.

Every fit runs a fixed number of epochs without validation (``epochs`` below; early stopping would
let the two fits stop at different epochs). A model's verdict: ``within`` when every Ray fit's
NDCG@10 lies inside the range of the local fits over ``--seeds`` widened by nothing, else how far
outside, in units of that range.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

#: fixed epochs (and a few settings) per model: enough to be near each model's plateau on ML-100K
MODELS = {
    "bpr": {"epochs": 40},
    "lightgcn": {"epochs": 30},
    "multvae": {"epochs": 40},
    "sasrec": {"epochs": 10},
}


def _fit(name: str, params: dict, train, report=None):
    from penchant.models import create

    return create(name, **params).fit(train, report)


#: the test's settings (tests/backends/test_ray_train.py) and whether they validate on valid
TEST_SETTINGS = {
    "bpr": ({"factors": 32, "epochs": 10, "eval_every": 100}, False),
    "sasrec": ({"factors": 32, "max_len": 20, "blocks": 1, "dropout": 0.0, "epochs": 2, "eval_every": 1}, True),
}


def test_spread(folder: str) -> None:
    """The local seed-to-seed range of NDCG@10 of the test's settings (seeds 1–4)."""
    from penchant.data import load_triple
    from penchant.eval import evaluate, validator

    train, valid, test = load_triple(*(f"{folder}/{p}.tsv" for p in ("train", "valid", "test")))
    for name, (params, validated) in TEST_SETTINGS.items():
        values = [evaluate(_fit(name, {**params, "seed": seed}, train, validator(train, valid) if validated else None),
                           train, test, ks=[10], also_exclude=(valid,), beyond_accuracy=False).metrics()["ndcg@10"]
                  for seed in (1, 2, 3, 4)]
        print(f"{name}: NDCG@10 over seeds 1-4 {', '.join(f'{v:.4f}' for v in values)}; range {max(values) - min(values):.4f}",
              flush=True)


def als(address: str, split) -> None:
    """ALS by `implicit`, by block solves here, by block solves as Ray tasks (see the module)."""
    import numpy as np

    from penchant.backends import LOCAL, resolve
    from penchant.eval import evaluate
    from penchant.models import create
    from penchant.models.distributed import solves_on

    fits = {}
    for how, runner in (("implicit", None), ("blocks here", LOCAL.map), ("blocks on ray", resolve("ray", address).map)):
        start = time.perf_counter()
        if runner is None:
            model = create("als").fit(split.train)
        else:
            with solves_on(runner):
                model = create("als").fit(split.train)
        seconds = time.perf_counter() - start
        fits[how] = model
        value = evaluate(model, split.train, split.test, ks=[10], also_exclude=(split.valid,),
                         beyond_accuracy=False).metrics()["ndcg@10"]
        print(f"als {how}: NDCG@10 {value:.4f} ({seconds:.1f} s)", flush=True)
    a, b = fits["blocks here"], fits["blocks on ray"]
    print(f"als blocks here vs on ray: max |Δ| user factors {np.abs(a.user_factors_ - b.user_factors_).max():.2e}, "
          f"item factors {np.abs(a.item_factors_ - b.item_factors_).max():.2e}", flush=True)


def main() -> None:
    from penchant.backends.ray_train import fit_on_ray
    from penchant.data import load_movielens
    from penchant.data.split import random_holdout
    from penchant.eval import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", help="the Ray cluster's HOST:PORT")
    ap.add_argument("--als", action="store_true", help="only ALS: implicit, block solves here and on Ray")
    ap.add_argument("--test-spread", action="store_true", help="only the local spread of the test's settings")
    ap.add_argument("--split", default="split", help="with --test-spread: the folder of the test's split")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="1,2,3", help="seeds of the local fits (their spread)")
    ap.add_argument("--ray-seeds", default="1,2", help="seeds of the Ray fits (each also among --seeds)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.test_spread:
        test_spread(args.split)
        return
    if not args.address:
        ap.error("give --address (or --test-spread)")
    split = random_holdout(load_movielens("ml-100k"), (0.8, 0.1, 0.1), seed=2026)
    if args.als:
        als(args.address, split)
        return

    def ndcg(model) -> float:
        return evaluate(model, split.train, split.test, ks=[10], also_exclude=(split.valid,),
                        beyond_accuracy=False).metrics()["ndcg@10"]

    rows = []
    for name in args.models.split(","):
        local, ray, seconds = {}, {}, {"local": [], "ray": []}
        for seed in map(int, args.seeds.split(",")):
            start = time.perf_counter()
            local[seed] = ndcg(_fit(name, {**MODELS[name], "seed": seed}, split.train))
            seconds["local"].append(time.perf_counter() - start)
            print(f"{name} local seed {seed}: NDCG@10 {local[seed]:.4f} ({seconds['local'][-1]:.1f} s)", flush=True)
        for seed in map(int, args.ray_seeds.split(",")):
            start = time.perf_counter()
            model = fit_on_ray(partial(_fit, name, {**MODELS[name], "seed": seed}, split.train), None,
                               address=args.address, workers=args.workers)
            ray[seed] = ndcg(model)
            seconds["ray"].append(time.perf_counter() - start)
            ranks = model.ray_ranks_
            print(f"{name} ray seed {seed}: NDCG@10 {ray[seed]:.4f} ({seconds['ray'][-1]:.1f} s; examples per rank "
                  f"{[r['examples'] for r in ranks]}, nodes {len({r['node'] for r in ranks})}, "
                  f"equal parameters {len({r['checksum'] for r in ranks}) == 1})", flush=True)
        lo, hi = min(local.values()), max(local.values())
        width = max(hi - lo, 1e-12)
        outside = max(max(lo - v, v - hi, 0.0) for v in ray.values()) / width
        verdict = "within" if outside == 0 else f"outside by {outside:.2f}× the local range"
        same_seed = {s: ray[s] - local[s] for s in ray if s in local}
        print(f"{name}: local {lo:.4f}–{hi:.4f} over seeds {sorted(local)}; ray {', '.join(f'{v:.4f}' for v in ray.values())}"
              f"; ray − local at the same seed {', '.join(f'{d:+.4f}' for d in same_seed.values())}; {verdict}", flush=True)
        rows.append({"model": name, "params": MODELS[name], "local": local, "ray": ray, "verdict": verdict,
                     "ray_minus_local_same_seed": same_seed, "seconds": seconds})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
