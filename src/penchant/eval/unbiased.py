"""Unbiased offline validation on missing-not-at-random clicks (Saito et al., WSDM 2020, §4).

Held-out clicks are themselves exposure-biased: a plain NDCG on them rewards a model for ranking
what was shown often, which is exactly the bias an unbiased learner removes. The estimator here
weights each held-out click of item ``i`` by ``1/θ_i``, the inverse of its exposure propensity:

    DCG_IPS@K = (1/|U|) Σ_u Σ_{i ∈ clicks_u} 1[rank_u(i) ≤ K] / (θ_i · log2(rank_u(i) + 1))

which, when θ is right, has the expectation of the DCG on true relevance. Model selection on a
biased log should use it instead of the plain metric.
"""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.errors import DataError
from penchant.eval.evaluate import Target, build_target
from penchant.models.base import Recommender, Validator
from penchant.models.ranking import chunk_size, top_k


def ips_dcg(model: Recommender, train: Dataset, valid: Dataset, propensity: np.ndarray, k: int = 10) -> float:
    """DCG_IPS@K of a fitted model (see the module docstring); propensity is float (n_items,) in (0, 1]."""
    return ips_validator(train, valid, propensity, k)(model)


def ips_validator(train: Dataset, valid: Dataset, propensity: np.ndarray, k: int = 10) -> Validator:
    """A validator (model -> float, higher is better) scoring DCG_IPS@K on the validation clicks;
    the target (who is scored, what is masked) is built once, not at every call."""
    propensity = np.asarray(propensity, dtype=np.float64)
    if propensity.shape != (train.n_items,) or not np.all((propensity > 0) & (propensity <= 1)):
        raise DataError(f"propensity must be {train.n_items} values in (0, 1]")
    target = build_target(train, valid)
    return lambda model: _ips_dcg(model, target, 1.0 / propensity, train.n_items, k)


def _ips_dcg(model: Recommender, target: Target, inverse: np.ndarray, n_items: int, k: int) -> float:
    users = target.users
    if not len(users):
        return float("nan")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    step = chunk_size(n_items, bytes_per_cell=16)
    for s in range(0, len(users), step):
        chunk = users[s:s + step]
        top, _ = top_k(model.score(chunk).astype(np.float32, copy=False), k, target.exclude[chunk])
        rel = target.relevant[chunk]
        dense = np.zeros((len(chunk), n_items), dtype=bool)
        dense[np.repeat(np.arange(len(chunk)), np.diff(rel.indptr)), rel.indices] = True
        hits = np.take_along_axis(dense, top, axis=1)
        total += float(((hits * inverse[top]) @ discount).sum())
    return total / len(users)

