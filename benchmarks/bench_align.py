"""Preference fine-tuning of SASRec, every objective × negative sampler, over seeds.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_align.py [--seeds 3] [--json out.json]
    .venv/bin/python benchmarks/bench_align.py --synth 20000,5000,1000000 --seeds 1   # speed at scale

ML-100K, leave-last-one-out by time, full ranking (as bench_sequential.py). Per seed, one SASRec is
trained (early stopping on the validation item) and every fine-tuning run starts from a copy of it;
the validation items are then appended to the histories, as for the base model.

Figures per run:

* NDCG@10 on the test items;
* ranking accuracy on held-out pairs: after each user's whole history, their test item when they
  rated it ≥ 4 against every item they rated ≤ 2 (π(w|s) > π(l|s), ties ½);
* the idealised ranking accuracy those pairs permit given the reference model at the run's β (Chen et al. 2024),
  with α estimated from the log (:func:`penchant.eval.alignment.preference_shares`);
* KL(π ‖ π_ref) in nats, mean over the test histories;
* fine-tuning seconds.

With ``--synth U,I,N`` the log is ``penchant data synth``'s (random ratings: only the seconds mean
anything there).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np

from penchant.data import Dataset, PreferencePairs, load_movielens
from penchant.data.split import leave_last_out
from penchant.eval import evaluate, validator
from penchant.eval.evaluate import build_target
from penchant.models import create
from penchant.models.sequential.base import pad_left

#: (label, finetune params) of every run; the reference row is the trained model itself
OBJECTIVES = (("DPO", {"finetune": "dpo"}), ("robust DPO (ε 0.1)", {"finetune": "rdpo"}), ("IPO", {"finetune": "ipo"}),
              ("SPO (DPO + degree)", {"finetune": "dpo", "finetune_spo": 1.0}),
              ("SPO (IPO + degree)", {"finetune": "ipo", "finetune_spo": 1.0}),
              ("SFT on winners", {"finetune": "sft"}))
NEGATIVES = ("rated", "uniform", "popular", "on-policy")


def runs() -> list[tuple[str, dict]]:
    out = [(f"{label}, {neg}", {**params, "finetune_negatives": neg}) for label, params in OBJECTIVES
           for neg in NEGATIVES if not (params["finetune"] == "sft" and neg != "rated")]
    out += [(f"PPO β {beta:g}, RM on {neg}", {"finetune": "ppo", "finetune_negatives": neg, "finetune_beta": beta})
            for beta in (0.1, 1.0) for neg in ("rated", "on-policy")]
    return out


def held_out_pairs(full: Dataset, test: Dataset, model, liked: float = 4.0, disliked: float = 2.0) -> PreferencePairs:
    """Each user's test item rated ≥ ``liked`` against every item the user rated ≤ ``disliked``
    anywhere in the log, after their whole history (the model's, int64 (n, max_len))."""
    test_item = np.full(full.n_users, -1, np.int64)
    test_rating = np.zeros(full.n_users)
    test_item[test.users], test_rating[test.users] = test.items, test.ratings
    bad = full.ratings <= disliked
    u, losers = full.users[bad].astype(np.int64), full.items[bad].astype(np.int64)
    keep = (test_item[u] >= 0) & (test_rating[u] >= liked)
    u, losers = u[keep], losers[keep]
    seqs = pad_left(model.hist_ptr_, model.hist_items_, u, model.max_len, model.n_items_)
    return PreferencePairs(u, test_item[u], losers, u.copy(), full.user_ids, full.item_ids, history=seqs,
                           name=f"{full.name}/held-out-pairs")


def mean_interval(values: list[float]) -> str:
    """Mean ± the half-width of a 95% t-interval over seeds (no interval for one seed)."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return f"{v.mean():.4f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.4f} ± {half:.4f}"


def main() -> None:
    from penchant.eval.alignment import (
        idealised_ranking_accuracy,
        kl_from_reference,
        preference_shares,
        ranking_accuracy,
    )
    from penchant.models.sequential.alignment.finetune import finetune

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 … N−1")
    ap.add_argument("--seed", type=int, action="append", default=[], help="run only this seed (repeat); "
                    "run seeds in separate processes and join their --json files with --table")
    ap.add_argument("--table", nargs="+", default=[], help="print the table of these --json files (one per seed) and stop")
    ap.add_argument("--epochs", type=int, default=200, help="SASRec's maximum training epochs")
    ap.add_argument("--synth", default="", help="U,I,N: a synthetic log of U users, I items, N interactions")
    ap.add_argument("--only", action="append", default=[], help="run only labels containing this text (repeat: any of them)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.table:
        return print_table(join(args.table))
    if args.synth:
        from penchant.data.synthetic import power_law_log

        n_users, n_items, n = (int(x) for x in args.synth.split(","))
        data = power_law_log(n_users, n_items, n, seed=0)
    else:
        data = load_movielens("ml-100k")
    split = leave_last_out(data, n_test=1, n_valid=1)
    chosen = [r for r in runs() if not args.only or any(text in r[0] for text in args.only)]
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seed or range(args.seeds):
        start = time.perf_counter()
        base = create("sasrec", seed=seed, epochs=args.epochs).fit(split.train, validator(split.train, split.valid))
        print(f"seed {seed}: SASRec trained in {time.perf_counter() - start:.0f} s", flush=True)
        base.partial_fit(split.valid)
        target = build_target(split.train, split.test, (split.valid,))
        pairs = held_out_pairs(data, split.test, base)
        alpha = preference_shares(data, pairs)
        ideal = {beta: idealised_ranking_accuracy(base.net_, pairs, alpha, beta=beta, n_items=base.n_items_)
                 for beta in (0.1, 1.0)}
        test_seqs = pad_left(base.hist_ptr_, base.hist_items_, np.unique(split.test.users), base.max_len, base.n_items_)

        def measure(label: str, model, seconds: float, beta: float = 0.1) -> None:
            r = evaluate(model, split.train, split.test, ks=[10], target=target, beyond_accuracy=False)
            row = rows.setdefault(label, {})
            row.setdefault("seed", []).append(seed)
            for key, value in (("ndcg@10", r.metrics()["ndcg@10"]), ("ranking accuracy", ranking_accuracy(model, pairs)),
                               ("idealised", ideal[beta].accuracy), ("KL", kl_from_reference(model, base.net_, test_seqs)),
                               ("seconds", seconds)):
                row.setdefault(key, []).append(float(value))
            print(f"  seed {seed} {label}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in row.items() if k != "seed"),
                  flush=True)

        measure("SASRec (reference)", base, 0.0)
        for label, params in chosen:
            model = copy.deepcopy(base)
            for key, value in params.items():
                setattr(model, key, value)
            start = time.perf_counter()
            finetune(model, split.train)
            measure(label, model, time.perf_counter() - start, params.get("finetune_beta", 0.1))
    print(f"\n{len(pairs):,} held-out pairs; the idealised accuracy (at the run's β) over the {ideal[0.1].used:,} "
          f"with an α ({ideal[0.1].skipped:,} without: nobody rated both items)")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def join(paths: list[str]) -> dict[str, dict[str, list[float]]]:
    """The rows of several runs' --json files, each figure's values over all their seeds (a seed met
    twice for one run, e.g. the reference of two processes of one seed, counts once)."""
    rows: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        with open(path) as f:
            for label, row in json.load(f).items():
                into = rows.setdefault(label, {"seed": []})
                for n, seed in enumerate(row["seed"]):
                    if seed in into["seed"]:
                        continue
                    for key, values in row.items():
                        into.setdefault(key, []).append(values[n])
    return rows


#: paired comparisons each paper's claim turns on: (run, against)
COMPARISONS = (
    *((f"SPO ({loss} + degree), {neg}", f"{loss}, {neg}") for loss in ("DPO", "IPO") for neg in NEGATIVES),
    *(("DPO, on-policy", f"DPO, {neg}") for neg in ("rated", "uniform", "popular")),
    ("DPO, on-policy", "SFT on winners, rated"), ("DPO, rated", "SFT on winners, rated"),
    *((f"PPO β {beta:g}, RM on {neg}", f"DPO, {neg}") for beta in (0.1, 1.0) for neg in ("rated", "on-policy")),
)


def paired(rows: dict[str, dict[str, list[float]]], run: str, against: str, key: str) -> list[float]:
    """``key`` of ``run`` minus ``against`` on each seed both have."""
    a, b = rows[run], rows[against]
    at = {seed: value for seed, value in zip(b["seed"], b[key])}
    return [value - at[seed] for seed, value in zip(a["seed"], a[key]) if seed in at]


def print_table(rows: dict[str, dict[str, list[float]]]) -> None:
    keys = [k for k in next(iter(rows.values())) if k != "seed"]
    print("| run | seeds | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for label, row in rows.items():
        print(f"| {label} | {len(row['seed'])} | " + " | ".join(mean_interval(row[k]) for k in keys) + " |")
    print("\nPaired over seeds (run − against):\n")
    print("| run | against | seeds | Δ NDCG@10 | Δ ranking accuracy | Δ KL |")
    print("|---|---|---|---|---|---|")
    for run, against in COMPARISONS:
        if run in rows and against in rows:
            diffs = [paired(rows, run, against, key) for key in ("ndcg@10", "ranking accuracy", "KL")]
            print(f"| {run} | {against} | {len(diffs[0])} | " + " | ".join(mean_interval(d) for d in diffs) + " |")


if __name__ == "__main__":
    main()
