"""Run RecBole models on penchant's split files and write their top-K lists (runs in RecBole's own venv).

    python recbole_runner.py --data DIR --name NAME --out DIR [--models BPR,LightGCN,...] [--k 50]

DIR holds NAME.train.inter, NAME.valid.inter, NAME.test.inter (``penchant split --format inter``,
renamed to NAME). Each model gets RecBole's documented defaults; valid serves its early stopping.
The closed-form and neighbourhood models (EASE, ItemKNN), which penchant tunes on the validation
split, also get a grid of 27 settings (penchant's largest validation grid, DLAE's); the setting with
RecBole's best validation NDCG@10 writes the test lists. The trained models (BPR, MultiVAE,
LightGCN) keep RecBole's defaults with early stopping, as penchant's do. Lists exclude each user's
train and valid items (RecBole's full-sort history masking).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

# RecBole 1.2.1 reloads its own checkpoints, which hold config objects; torch ≥ 2.6 refuses those by default.
torch.load = functools.partial(torch.load, weights_only=False)

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # noqa: E402
from recbole.utils.case_study import full_sort_topk  # noqa: E402

GRIDS = {
    "EASE": [{"reg_weight": float(v)} for v in np.geomspace(10, 10000, 27)],
    "ItemKNN": [{"k": k, "shrink": s} for k in (10, 20, 50, 100, 200, 400, 800, 1600, 3200) for s in (0.0, 10.0, 100.0)],
}


def fit(model_name: str, data: Path, name: str, out: Path, seed: int, overrides: dict) -> tuple:
    """Train one RecBole model; returns (validation NDCG@10, fit seconds, model, dataset, test data)."""
    cfg = Config(model=model_name, dataset=name, config_dict={**overrides,
        "data_path": str(data.parent), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["NDCG", "Recall"], "topk": [10], "valid_metric": "NDCG@10", "seed": seed,
        "show_progress": False, "device": "cpu", "use_gpu": False, "checkpoint_dir": str(out / "recbole-saved"),
    })
    init_seed(cfg["seed"], cfg["reproducibility"])
    dataset = create_dataset(cfg)
    train, valid, test = data_preparation(cfg, dataset)
    model = get_model(cfg["model"])(cfg, train.dataset).to(cfg["device"])
    trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, model)
    start = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - start
    trainer.evaluate(test, load_best_model=True, show_progress=False)  # loads the best checkpoint into model
    return float(best_valid), fit_seconds, model, dataset, test


def run(model_name: str, data: Path, name: str, out: Path, k: int, seed: int, defaults_only: bool) -> None:
    settings = [{}] + ([] if defaults_only else GRIDS.get(model_name, []))
    start = time.perf_counter()
    best = None
    for overrides in settings:
        result = fit(model_name, data, name, out, seed, overrides)
        if best is None or result[0] > best[0][0]:
            best = (result, overrides)
    tuning_seconds = time.perf_counter() - start
    (valid_score, fit_seconds, model, dataset, test), chosen = best
    test_users = sorted({line.split("\t")[0] for line in (data / f"{name}.test.inter").read_text().splitlines()[1:]})
    known = [u for u in test_users if u in dataset.field2token_id[dataset.uid_field]]
    uids = dataset.token2id(dataset.uid_field, known)
    rows = []
    model.eval()
    for s in range(0, len(uids), 256):
        _, iids = full_sort_topk(uids[s:s + 256], model, test, k=k, device="cpu")
        items = dataset.id2token(dataset.iid_field, iids.cpu().numpy())
        for user, ranked in zip(known[s:s + 256], items):
            rows.extend(f"{user}\t{item}\t{r}" for r, item in enumerate(ranked, start=1))
    stem = out / f"recbole-{model_name}"
    stem.with_suffix(".tsv").write_text("user\titem\trank\n" + "\n".join(rows) + "\n")
    stem.with_suffix(".json").write_text(json.dumps({
        "library": "RecBole 1.2.1", "model": model_name, "fit_seconds": fit_seconds, "tuning_seconds": tuning_seconds,
        "valid_ndcg@10": valid_score, "trials": len(settings), "params": chosen or "RecBole defaults"}))
    print(f"recbole {model_name}: fit {fit_seconds:.1f} s, {len(settings)} trials, chose {chosen or 'defaults'}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="Pop,ItemKNN,EASE,BPR,MultiVAE,LightGCN")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--defaults-only", action="store_true", help="skip the validation grids")
    args = ap.parse_args()
    args.data, args.out = args.data.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.chdir(args.out)  # RecBole writes its logs and tensorboard files into the working folder
    for m in args.models.split(","):
        run(m, args.data, args.name, args.out, args.k, args.seed, args.defaults_only)


if __name__ == "__main__":
    main()
