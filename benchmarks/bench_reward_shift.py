"""Reward models under a shifted distribution: HH-RLHF harmless-base → helpful-base (the reward-model
half of "Secrets of RLHF in Large Language Models Part II", Wang et al. 2024: contrastive learning
of the reward's representation, and MetaRM's meta-learning towards a shifted distribution).

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_reward_shift.py [--seeds 3] [--shots 0,16,64,256]

Data: relabeled-both-test.jsonl.gz, its 4,041 pairs (two with identical replies dropped) labelled by
the crowd's original choice (``original_label``; not the VPL relabeling), ``data_subset`` telling
harmless-base (2,056) from helpful-base (1,985). Features: frozen MiniLM ``text`` (reply and
prompt ⊙ reply, 768-d; cached by content hash, the first run embeds every reply and prompt).

Per seed: harmless prompts split 70/15/15 (train / early-stopping validation / in-distribution
test); helpful prompts split 50/50 into a pool and a test half. Every model is the same reward
network (``crm``: one hidden layer of 64, dropout 0.1) trained on harmless train:

* BT: the Bradley–Terry loss alone (contrastive = 0);
* BT + SimCSE: plus ``--contrastive`` × SimCSE on the pair's difference representation;
* MetaRM: trained by the meta-process with the pool's replies (unlabelled) as the shifted set;
* MetaRM θ': the same, scored after one inner step (ascent of the difference objective) on the pool.

k-shot (k > 0): each model is then fine-tuned (:meth:`ContrastiveReward.tune`, fixed settings, no
selection on helpful labels) on the first k pool pairs of a seeded draw (nested across k). Reported:
helpful test accuracy, mean and 95% t-interval over seeds, and each model's paired difference from BT
at the same k; harmless test accuracy (in-distribution); the in-domain ceiling (the network trained
on the whole labelled pool). Labels are the original crowd choices.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from penchant.data import read_text_comparisons
from penchant.data.preferences import split_pairs
from penchant.models.preference import create_preference
from penchant.models.preference.features import TextFeatures

NET = {"features": "text", "hidden": 64, "dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-4, "epochs": 40,
       "patience": 4, "batch_size": 64}
TUNE = {"steps": 100, "lr": 1e-3, "pull": 0.0}


def crowd_pairs(folder: Path):
    """The relabeled file with the crowd's original labels, user = data_subset."""
    with gzip.open(folder / "relabeled-both-test.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hh-crowd.jsonl"
        with open(path, "w") as f:
            for r in rows:
                k = int(r["original_label"])
                f.write(json.dumps({"prompt": r["prompt"], "chosen": r["responses"][k],
                                    "rejected": r["responses"][1 - k], "user": r["data_subset"]}) + "\n")
        return read_text_comparisons(path)


def accuracy(model, pairs) -> float:
    return float((model.margin(pairs.user, pairs.winner, pairs.loser) > 0).mean())


def interval(values) -> str:
    from scipy import stats

    v = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return f"{v.mean():.4f} ({v.mean() - half:.4f}–{v.mean() + half:.4f})"


def diff_interval(values) -> str:
    from scipy import stats

    v = np.asarray(values, float) * 100
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return f"{v.mean():+.2f} ({v.mean() - half:+.2f}…{v.mean() + half:+.2f})"


def run_seed(pairs, seed: int, shots: list[int], contrastive: float, meta_lr: float) -> dict:
    users = list(pairs.user_ids.astype(str))
    harmless = pairs.subset(pairs.user == users.index("harmless"))
    helpful = pairs.subset(pairs.user == users.index("helpful"))
    hs = split_pairs(harmless, (0.7, 0.15, 0.15), by="group", seed=seed)
    ps = split_pairs(helpful, (0.5, 0.0, 0.5), by="group", seed=seed)
    pool, test = ps.train, ps.test
    draw = np.random.default_rng(seed).permutation(len(pool))
    out: dict = {"helpful": {}, "harmless": {}, "time": {}}
    variants = {"BT": ({"contrastive": 0.0}, None), f"BT + SimCSE (β={contrastive})": ({"contrastive": contrastive}, None),
                "MetaRM": ({"contrastive": 0.0, "meta_lr": meta_lr}, pool)}
    for label, (params, shifted) in variants.items():
        start = time.perf_counter()
        model = create_preference("crm", **NET, **params, seed=seed).fit(hs.train, hs.valid, shifted=shifted)
        out["time"][label] = time.perf_counter() - start
        out["harmless"][label] = accuracy(model, hs.test)
        fitted = {label: model}
        if shifted is not None:
            fitted[f"{label} θ' (inner step on the pool)"] = copy.deepcopy(model).shift(pool)
        for name, m in fitted.items():
            for k in shots:
                tuned = copy.deepcopy(m).tune(pool.subset(draw[:k]), **TUNE) if k else m
                out["helpful"][(name, k)] = accuracy(tuned, test)
    ceiling = create_preference("crm", **NET, contrastive=0.0, seed=seed).fit(pool, hs.valid)
    out["ceiling"] = accuracy(ceiling, test)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shots", default="0,16,64,256")
    ap.add_argument("--contrastive", type=float, default=0.1)
    ap.add_argument("--meta-lr", type=float, default=1.0)
    args = ap.parse_args()
    shots = [int(s) for s in args.shots.split(",")]
    folder = Path(os.environ.get("PENCHANT_DATA", "../shared/data")) / "hh-rlhf"
    pairs = crowd_pairs(folder)
    start = time.perf_counter()
    TextFeatures("text").fit_transform(pairs)  # fills the embedding cache once (every model reads it)
    print(f"HH-RLHF crowd labels: {len(pairs):,} pairs, {pairs.n_options:,} replies; MiniLM text features "
          f"in {time.perf_counter() - start:.0f} s", flush=True)
    runs = []
    for seed in range(args.seeds):
        start = time.perf_counter()
        runs.append(run_seed(pairs, seed, shots, args.contrastive, args.meta_lr))
        print(f"  seed {seed}: {time.perf_counter() - start:.0f} s; fit times "
              + ", ".join(f"{k} {v:.1f} s" for k, v in runs[-1]["time"].items()), flush=True)
    names = list(dict.fromkeys(name for name, _ in runs[0]["helpful"]))
    print(f"\nHelpful-base test accuracy (crowd labels), trained on harmless-base, k labelled helpful pairs for "
          f"fine-tuning; mean (95% t-interval) over {args.seeds} seeds")
    print("| reward model | " + " | ".join(f"k = {k}" for k in shots) + " |")
    print("|---|" + "---|" * len(shots))
    for name in names:
        print(f"| {name} | " + " | ".join(interval([r["helpful"][(name, k)] for r in runs]) for k in shots) + " |")
    print("\nPaired difference from BT at the same k (points; mean (95% t-interval) over seeds)")
    print("| reward model | " + " | ".join(f"k = {k}" for k in shots) + " |")
    print("|---|" + "---|" * len(shots))
    for name in names[1:]:
        print(f"| {name} | " + " | ".join(diff_interval([r["helpful"][(name, k)] - r["helpful"][("BT", k)] for r in runs])
                                          for k in shots) + " |")
    print("\nIn-distribution (harmless-base test) accuracy")
    print("| reward model | accuracy | vs BT (points) |")
    print("|---|---|---|")
    for name in runs[0]["harmless"]:
        print(f"| {name} | {interval([r['harmless'][name] for r in runs])} | "
              f"{diff_interval([r['harmless'][name] - r['harmless']['BT'] for r in runs])} |")
    print(f"\nIn-domain ceiling (trained on the whole labelled helpful pool): {interval([r['ceiling'] for r in runs])}")


if __name__ == "__main__":
    main()
