"""Rating-prediction metrics (RMSE, MAE) and the validator that early-stops rating models on RMSE."""

from __future__ import annotations

from typing import Any

import numpy as np

from penchant.data import Dataset
from penchant.errors import DataError
from penchant.models.rating import RatingModel


def rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """√(mean (r̂ − r)²)."""
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """mean |r̂ − r|."""
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - truth)))


def evaluate_ratings(model: RatingModel, test: Dataset, clip: tuple[float, float] | None = None) -> dict[str, Any]:
    """RMSE and MAE of ``model`` on ``test``'s ratings, predictions clipped to the rating scale."""
    if test.ratings is None:
        raise DataError(f"{test.name} has no ratings", expected="a rating column")
    pred = model.predict(test.users, test.items)
    if clip is not None:
        pred = np.clip(pred, *clip)
    return {"rmse": rmse(pred, test.ratings), "mae": mae(pred, test.ratings), "ratings": int(len(pred))}


def rating_validator(valid: Dataset, clip: tuple[float, float] | None = None):  # -> Validator
    """Validation score for selection and early stopping: minus the RMSE (higher is better)."""
    return lambda model: -evaluate_ratings(model, valid, clip)["rmse"]
