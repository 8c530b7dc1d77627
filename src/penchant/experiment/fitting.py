"""Fit any registered ranking, rating or sequential model on a train set, selecting on validation."""

from __future__ import annotations

from typing import Any

from penchant.data import Dataset
from penchant.models.base import Recommender
from penchant.models.registry import create

#: the families :func:`fit_model` fits from interaction logs
LOG_FAMILIES = ("ranking", "rating", "sequential")


def fit_model(name: str, params: dict[str, Any], train: Dataset, valid: Dataset | None = None, *,
              metric: str = "ndcg@10") -> Recommender:
    """Model ``name`` with ``params`` (strings converted by the registry) fitted on ``train``.

    ``valid``, when given, drives the model's own selection and early stopping through ``metric``
    over the full catalogue, its events masked as in evaluation; its events are not added to the
    model (pass them to ``partial_fit`` or refit on train + valid for that).
    """
    from penchant.eval.evaluate import validator

    model = create(name, family=LOG_FAMILIES, **params)
    check = validator(train, valid, metric) if valid is not None and valid.n_interactions else None
    return model.fit(train, check)
