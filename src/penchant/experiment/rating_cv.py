"""K-fold cross-validation of rating models (RMSE, MAE), each fold's early stopping on its own
held-out training ratings."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.data.split import kfold
from penchant.errors import DataError
from penchant.eval.rating import evaluate_ratings, rating_validator
from penchant.models.registry import create


def cross_validate(name: str, params: dict[str, Any], ds: Dataset, k: int = 5, seed: int = DEFAULT_SEED,
                   valid_fraction: float = 0.05) -> dict[str, Any]:
    """K-fold RMSE/MAE of model ``name``; each fold holds out ``valid_fraction`` of its training
    ratings for early stopping, so the test fold is never used for any choice."""
    if ds.ratings is None:
        raise DataError(f"{ds.name} has no ratings", expected="a rating column")
    scale = (float(ds.ratings.min()), float(ds.ratings.max()))
    folds = []
    for split in kfold(ds, k, seed):
        rng = np.random.default_rng(seed + len(folds))
        inner = rng.random(split.train.n_interactions) < valid_fraction
        fit_part, valid_part = split.train.subset(~inner), split.train.subset(inner)
        model = create(name, **params)
        start = time.perf_counter()
        model.fit(fit_part, rating_validator(valid_part, scale))
        seconds = time.perf_counter() - start
        folds.append({**evaluate_ratings(model, split.test, scale), "fit_seconds": seconds, **model.selected()})
    out = {"model": name, "params": params, "folds": folds}
    for key in ("rmse", "mae"):
        values = np.array([f[key] for f in folds])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1))
    return out
