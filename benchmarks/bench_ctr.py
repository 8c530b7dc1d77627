"""Every registered click-through model on ML-100K made a CTR task the RecBole way and on the synthetic
CTR world with a known click probability, over seeds.

    PENCHANT_DATA=../shared/data .venv/bin/python benchmarks/bench_ctr.py [--seeds 3] [--models lr,deepfm]
        [--skip-ml100k] [--skip-synthetic]

ML-100K: :class:`~penchant.experiment.ctr_task.CTRTask`'s reading and split of the folder (label =
rating >= 4; user, item, age band, gender, occupation, zip prefix, genres, year band, hour, weekday;
the user's 50 latest earlier positives as history; rows split 80/10/10 at random by ``seed``).
Synthetic: :func:`~penchant.data.ctr.synthetic_ctr` (400 users × 50 impressions, a planted
segment × category cross and a history term) built from ``seed``, rows split 80/10/10 by ``seed``.

Every model at its registered defaults (device cpu), fitted on train with early stopping on the
validation rows. Reported per data set: test AUC, log loss, group AUC (per user), fit seconds,
each as the mean with a 95% t-interval over seeds; on the synthetic world also the AUC of the true
click probability and each model's mean |p̂ − p| from it. Models run one after another in one process
with one thread (PENCHANT_THREADS=1 unless set), so seconds compare within a run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PENCHANT_THREADS", "1")

from penchant.data.ctr import synthetic_ctr
from penchant.eval.ctr import auc, ctr_metrics
from penchant.experiment.ctr_task import CTRTask
from penchant.models.registry import create, entry, model_names, params_class

#: the one setting that differs from the registered defaults, for models that take it
DEVICE = {"device": "cpu"}


#: paired AUC differences printed under each table: AW-MoE's claim (against the feature-gated MoE
#: and the single networks) and each standard model against logistic regression
PAIRS = (("awmoe", "moe"), ("awmoe", "deepfm"), ("awmoe", "dcnv2"), ("deepfm", "lr"), ("dcnv2", "lr"), ("lambdarank", "lr"))


def interval(values) -> str:
    """Mean and 95% t-interval, as text."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return f"{v.mean():.4f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.4f} ({v.mean() - half:.4f}–{v.mean() + half:.4f})"


def build(name: str):
    fields = params_class(entry(name).cls).model_fields
    return create(name, **{k: v for k, v in DEVICE.items() if k in fields})


def run(models: list[str], train, valid, test, truth=None) -> dict[str, dict]:
    out = {}
    for name in models:
        start = time.perf_counter()
        model = build(name).fit(train, valid)
        seconds = time.perf_counter() - start
        prob = model.predict(test)
        row = ctr_metrics(test.label, prob, test.group) | {"seconds": seconds}
        if truth is not None:
            row["gap"] = float(np.abs(prob - truth).mean())
        out[name] = row
        print(f"  {name}: auc {row['auc']:.4f} log loss {row['log_loss']:.4f} gauc {row['gauc']:.4f} "
              f"{seconds:.1f} s" + (f" |p̂-p| {row['gap']:.4f}" if truth is not None else ""), flush=True)
    return out


def table(title: str, runs: list[dict[str, dict]], models: list[str], extra: dict[str, list[float]] | None = None) -> None:
    gap = "gap" in next(iter(runs[0].values()))
    print(f"\n{title} (mean, 95% t-interval over {len(runs)} seeds)\n")
    print("| model | AUC | log loss | GAUC | fit s |" + (" mean abs(p̂ − p) |" if gap else ""))
    print("|---|---|---|---|---|" + ("---|" if gap else ""))
    for name in models:
        cells = [interval([r[name][k] for r in runs]) for k in ("auc", "log_loss", "gauc")]
        cells.append(interval([r[name]["seconds"] for r in runs]).split(" ")[0])
        if gap:
            cells.append(interval([r[name]["gap"] for r in runs]))
        print(f"| {name} | " + " | ".join(cells) + " |")
    for label, values in (extra or {}).items():
        print(f"\n{label}: {interval(values)}")
    for a, b in PAIRS:
        if a in models and b in models:
            print(f"AUC {a} − {b}, paired by seed: {interval([r[a]['auc'] - r[b]['auc'] for r in runs])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default="", help="comma-separated (default: every registered ctr model)")
    parser.add_argument("--data", default=os.environ.get("PENCHANT_DATA", "../shared/data"))
    parser.add_argument("--skip-ml100k", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    models = args.models.split(",") if args.models else model_names("ctr")
    print(f"models: {', '.join(models)}")
    if not args.skip_synthetic:
        runs, truth_auc = [], []
        for seed in range(args.seeds):
            data, p = synthetic_ctr(seed=seed)
            rows = np.random.default_rng(seed).permutation(data.n)
            cuts = np.round(np.array([0.8, 0.9]) * data.n).astype(int)
            train, valid, test = (data.subset(np.sort(r)) for r in np.split(rows, cuts))
            truth = p[np.sort(np.split(rows, cuts)[2])]
            truth_auc.append(auc(test.label, truth))
            print(f"synthetic seed {seed}: {data.describe()}", flush=True)
            runs.append(run(models, train, valid, test, truth))
        table("Synthetic CTR world (synthetic_ctr defaults)", runs, models, {"AUC of the true click probability": truth_auc})
    if not args.skip_ml100k:
        runs = []
        folder = Path(args.data) / "ml-100k"
        for seed in range(args.seeds):
            parts = CTRTask().read(folder, seed=seed)
            print(f"ml-100k seed {seed}: {parts.train.describe()}", flush=True)
            runs.append(run(models, parts.train, parts.valid, parts.test))
        table("ML-100K as CTR (rating >= 4; random 80/10/10 rows)", runs, models)


if __name__ == "__main__":
    main()
