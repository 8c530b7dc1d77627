"""K-fold cross-validation of rating models (RMSE, MAE), each fold's early stopping on its own
held-out training ratings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.data.split import kfold, rank_within_user
from penchant.errors import DataError
from penchant.eval.rating import evaluate_ratings, rating_validator
from penchant.models.registry import create


def cross_validate(name: str, params: dict[str, Any], ds: Dataset, k: int = 5, seed: int = DEFAULT_SEED,
                   valid_fraction: float = 0.05, *, users: int | None = None, test_per_user: int | None = None,
                   ndcg_k: int = 10, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """K-fold RMSE/MAE (and NDCG@``ndcg_k`` of each user's test items ranked by prediction) of model
    ``name``; each fold holds out ``valid_fraction`` of its training ratings for early stopping, so
    the test fold is never used for any choice.

    ``users`` evaluates a seeded sample of that many users, ``test_per_user`` at most that many of a
    user's test ratings per fold (seeded): for models that cost a request per prediction. The same
    ``seed`` gives every model the same folds, users and test ratings. ``progress(fold)`` after each fold.
    """
    if ds.ratings is None:
        raise DataError(f"{ds.name} has no ratings", expected="a rating column")
    scale = (float(ds.ratings.min()), float(ds.ratings.max()))
    sample = None
    if users is not None:
        rated = np.unique(ds.users)
        sample = np.sort(np.random.default_rng(seed).choice(rated, min(users, len(rated)), replace=False))
    folds = []
    for split in kfold(ds, k, seed):
        rng = np.random.default_rng(seed + len(folds))
        inner = rng.random(split.train.n_interactions) < valid_fraction
        fit_part, valid_part = split.train.subset(~inner), split.train.subset(inner)
        test = split.test.subset(_evaluated(split.test, sample, test_per_user, seed + 1000 + len(folds)))
        model = create(name, **params)
        start = time.perf_counter()
        model.fit(fit_part, rating_validator(valid_part, scale))
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = evaluate_ratings(model, test, scale, k=ndcg_k)
        folds.append({**scores, "fit_seconds": seconds, "predict_seconds": time.perf_counter() - start,
                      **model.selected(), **model.diagnostics()})
        if progress:
            progress(len(folds))
    out: dict[str, Any] = {"model": name, "params": params, "folds": folds,
                           "users_sampled": None if sample is None else int(len(sample)),
                           "users_total": int(ds.n_users), "test_per_user": test_per_user,
                           "ratings_evaluated": int(sum(f["ratings"] for f in folds))}
    for key in ("rmse", "mae", f"ndcg@{ndcg_k}"):
        values = np.array([f[key] for f in folds], np.float64)
        out[key] = float(np.nanmean(values))
        out[f"{key}_std"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0
    return out


def _evaluated(test: Dataset, sample: np.ndarray | None, per_user: int | None, seed: int) -> np.ndarray:
    """Mask (n,) of the test ratings evaluated: the sampled users', at most ``per_user`` of each (random)."""
    keep = np.ones(test.n_interactions, bool) if sample is None else np.isin(test.users, sample)
    if per_user is not None:
        order = np.lexsort((np.random.default_rng(seed).random(test.n_interactions), test.users))
        keep &= rank_within_user(test.users, order, test.n_users)[0] < per_user
    return keep
