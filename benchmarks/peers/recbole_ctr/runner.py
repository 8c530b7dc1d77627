"""RecBole 1.2.1's context-aware DeepFM and DCN-V2 on ML-100K as a CTR task (runs in RecBole's own venv).

    .peers/recbole/bin/python benchmarks/peers/recbole_ctr/runner.py --data DIR --out FILE.json
        [--models DeepFM,DCNV2] [--seed 2026] [--threads 1]

DIR is the folder holding ``ml-100k/ml-100k.{inter,user,item}`` (RecBole atomic files). The data
set keeps RecBole's own name, ``ml-100k``, so RecBole applies its bundled context-aware settings for
it unchanged (``properties/quick_start_config/context-aware.yaml`` and
``context-aware_ml-100k.yaml``): label = rating >= 4 (``threshold: {rating: 4}``), fields user_id,
item_id, age, gender, occupation (user file), release_year, class (genres, a token sequence; item
file); the timestamp is loaded but, being a float not in ``numerical_features``, not a feature; rows
split at random 80/10/10 (``RS``, ``order: RO``, no grouping, ``mode: labeled``), no negative
sampling, AUC as the early-stopping metric, AUC and LogLoss reported. Each model keeps its RecBole
defaults (DeepFM: 10-d embeddings, MLP 128-128-128, dropout 0.2; DCNV2: 16-d, 3 stacked full-rank
cross layers, MLP 768-768, reg_weight 2) and RecBole's training defaults (Adam, lr 1e-3, batch 2048,
up to 300 epochs, stop after 10 epochs without a better validation AUC, best checkpoint restored).

``seed`` drives RecBole's ``init_seed``, hence both the split and the initialisation; every model
in one call sees the same split (checked). The JSON holds, per split part, the external
(user_id, item_id) pairs of its rows (ML-100K has one rating per pair, so they identify rows) and,
per model, RecBole's test AUC/LogLoss, its best validation AUC, fit seconds, epochs run, and its
test predictions in test-row order, so the caller can score them with its own metric code.

Patches (applied here, never in site-packages): ``np.long`` (gone from NumPy 1.24-1.26, used by
RecBole's embedding offsets) is set to ``np.int64``; ``torch.load`` gets ``weights_only=False``,
since RecBole reloads its own checkpoints, which hold config objects that torch >= 2.6 refuses.
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

if "long" not in np.__dict__:
    np.long = np.int64  # type: ignore[attr-defined]
torch.load = functools.partial(torch.load, weights_only=False)

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

DATASET = "ml-100k"


def pairs(dataset) -> list[list[str]]:
    """The external (user_id, item_id) of every row of one split part, in RecBole's row order."""
    uf, itf = dataset.uid_field, dataset.iid_field
    users = dataset.id2token(uf, dataset.inter_feat[uf].numpy())
    items = dataset.id2token(itf, dataset.inter_feat[itf].numpy())
    return [[str(u), str(i)] for u, i in zip(users, items)]


@torch.no_grad()
def predict(model, dataset, batch: int = 4096) -> list[float]:
    """Click probabilities for every row of ``dataset`` (a split part), in its row order."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch):
        rows = np.arange(start, min(start + batch, len(dataset)))
        out.append(model.predict(dataset[rows].to(model.device)).float().cpu().numpy())
    return np.concatenate(out).astype(float).tolist()


def run(model_name: str, data: Path, out_dir: Path, seed: int) -> tuple[dict, dict]:
    """Train one model on RecBole's split for ``seed``; returns (split pairs, result row)."""
    cfg = Config(model=model_name, dataset=DATASET, config_dict={
        "data_path": str(data), "seed": seed, "show_progress": False, "device": "cpu", "use_gpu": False,
        "checkpoint_dir": str(out_dir / "recbole-saved"), "state": "WARNING",
    })
    init_seed(cfg["seed"], cfg["reproducibility"])
    dataset = create_dataset(cfg)
    train, valid, test = data_preparation(cfg, dataset)
    split = {"train": pairs(train._dataset), "valid": pairs(valid._dataset), "test": pairs(test._dataset)}
    init_seed(cfg["seed"], cfg["reproducibility"])
    model = get_model(cfg["model"])(cfg, train._dataset).to(cfg["device"])
    trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, model)
    start = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    seconds = time.perf_counter() - start
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    epochs = len(trainer.train_loss_dict)
    row = {"auc": float(result["auc"]), "log_loss": float(result["logloss"]), "valid_auc": float(best_valid),
           "fit_seconds": seconds, "epochs": epochs, "best_epoch": epochs - 1 - trainer.cur_step,
           "test_prob": predict(model, test._dataset), "config": {
               k: cfg[k] for k in ("embedding_size", "learning_rate", "train_batch_size", "epochs", "stopping_step",
                                   "weight_decay", "mlp_hidden_size", "dropout_prob", "learner")}}
    return split, row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding ml-100k/ml-100k.{inter,user,item}")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--models", default="DeepFM,DCNV2")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out = args.out.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = args.out.parent / f"recbole-work-{args.seed}"
    work.mkdir(exist_ok=True)
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working directory
    split, models = None, {}
    for name in args.models.split(","):
        this, row = run(name, args.data.resolve(), work.resolve(), args.seed)
        if split is not None and this != split:
            raise SystemExit(f"RecBole gave {name} another split than the previous model for seed {args.seed}")
        split, models[name] = this, row
        print(f"RecBole {name}: test AUC {row['auc']:.4f} log loss {row['log_loss']:.4f} "
              f"({row['fit_seconds']:.1f} s)", flush=True)
    import recbole

    args.out.write_text(json.dumps({"recbole": recbole.__version__, "torch": torch.__version__, "seed": args.seed,
                                    "split": split, "models": models}))


if __name__ == "__main__":
    main()
