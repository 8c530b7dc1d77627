"""Rating-prediction metrics (RMSE, MAE) and the validator that early-stops rating models on RMSE."""

from __future__ import annotations

from typing import Any

import numpy as np

from penchant.data import Dataset
from penchant.data.split import rank_within_user
from penchant.errors import DataError
from penchant.models.rating import RatingModel


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """√(mean (r̂ − r)²)."""
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """mean |r̂ − r|."""
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - truth)))


def ndcg_of_rated(users: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int = 10) -> tuple[float, int]:
    """Mean NDCG@k of each user's rated test items ordered by predicted rating, gain ``2^r − 1`` of
    the true rating r (the exponential gain of graded relevance, Burges et al. 2005), and the number
    of users it averages over (those with at least two test ratings).

    Ties in the prediction are scored by their expected gain under a random order (McSherry &
    Najork 2008): each tied group's positions share the group's mean gain. So a constant predictor
    gets the NDCG of a random order, not the order the items happen to be stored in.
    users: int (n,); truth, pred: (n,) ratings.
    """
    users = np.asarray(users, np.int64)
    truth = np.asarray(truth, np.float64)
    gain = np.exp2(truth) - 1.0
    pred = np.asarray(pred, np.float64)
    if len(users) == 0:
        return float("nan"), 0

    def positions(order: np.ndarray) -> np.ndarray:  # 0-based place in its user's list, in ``order``
        return rank_within_user(users, order, int(users.max()) + 1)[0][order]

    discount = lambda pos: np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)  # noqa: E731
    by_pred = np.lexsort((-pred, users))
    u, p, g = users[by_pred], pred[by_pred], gain[by_pred]
    group = np.cumsum(np.r_[True, (np.diff(u) != 0) | (np.diff(p) != 0)]) - 1
    mean_gain = np.bincount(group, g) / np.bincount(group)
    dcg = np.bincount(u, mean_gain[group] * discount(positions(by_pred)))
    by_truth = np.lexsort((-truth, users))
    idcg = np.bincount(users[by_truth], gain[by_truth] * discount(positions(by_truth)))
    counts = np.bincount(users)
    scored = (counts >= 2) & (idcg > 0)
    if not scored.any():
        return float("nan"), 0
    return float(np.mean(dcg[scored] / idcg[scored])), int(scored.sum())


def evaluate_ratings(model: RatingModel, test: Dataset, clip: tuple[float, float] | None = None,
                     k: int | None = None) -> dict[str, Any]:
    """RMSE and MAE of ``model`` on ``test``'s ratings, predictions clipped to the rating scale;
    with ``k``, also the NDCG@k of each user's test items ranked by prediction (:func:`ndcg_of_rated`)."""
    if test.ratings is None:
        raise DataError(f"{test.name} has no ratings", expected="a rating column")
    pred = model.predict(test.users, test.items)
    if clip is not None:
        pred = np.clip(pred, *clip)
    out: dict[str, Any] = {"rmse": rmse(pred, test.ratings), "mae": mae(pred, test.ratings), "ratings": int(len(pred)),
                           "users": int(len(np.unique(test.users)))}
    if k is not None:
        out[f"ndcg@{k}"], out["ndcg_users"] = ndcg_of_rated(test.users, test.ratings, pred, k)
    return out


def rating_validator(valid: Dataset, clip: tuple[float, float] | None = None):  # -> Validator
    """Validation score for selection and early stopping: minus the RMSE (higher is better)."""
    return lambda model: -evaluate_ratings(model, valid, clip)["rmse"]
