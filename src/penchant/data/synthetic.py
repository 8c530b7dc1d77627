"""Synthetic worlds with known ground truth, for tests that can say how close a learner gets.

:func:`exposure_biased_world` is the missing-not-at-random setting in which unbiased learners
are judged (like Yahoo! R3 and Coat): every user has a true preference for every item, users
only see the items a popularity-favouring exposure process shows them, and a click is
"exposed and liked". A separate test set exposes items uniformly at random, so its labels are
free of the exposure bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data.dataset import Dataset, Step


@dataclass(frozen=True)
class ExposureWorld:
    """A world with exposure bias.

    Attributes:
        train: observed clicks (exposed ∧ liked) under biased exposure.
        valid: further biased clicks, held out for model selection (as a real log would give).
        test: liked items among each user's randomly exposed test items.
        test_candidates: CSR (n_users, n_items): the randomly exposed test items per user; a
            model is judged by how it ranks these.
        relevance: float (n_users, n_items) true probability that a user likes an item.
        propensity: float (n_users, n_items) probability that an item is shown to a user.
    """

    train: Dataset
    valid: Dataset
    test: Dataset
    test_candidates: sp.csr_matrix
    relevance: np.ndarray
    propensity: np.ndarray


def exposure_biased_world(n_users: int = 600, n_items: int = 400, dim: int = 8, *, exposure_power: float = 1.5,
                          mean_exposure: float = 0.15, popularity_bias: float = 1.0, test_exposures: int = 20,
                          valid_fraction: float = 0.1, seed: int = DEFAULT_SEED) -> ExposureWorld:
    """Draw a world: true preferences, biased exposure, clicks, and a random-exposure test.

    Args:
        n_users, n_items: sizes.
        dim: dimensions of the true taste vectors.
        exposure_power: how steeply exposure favours popular items (0: uniform exposure).
        mean_exposure: the average exposure probability.
        popularity_bias: how strongly an item's exposure follows its appeal (its mean relevance)
            rather than chance; at 1 popular items are both liked and shown more, the
            confounded case in which naive learners over-rank popular items.
        test_exposures: items each user is shown at random for the test.
        valid_fraction: share of the biased clicks held out for validation.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 1, (n_users, dim)) / np.sqrt(dim)
    items = rng.normal(0, 1, (n_items, dim))
    appeal = rng.normal(0, 1, n_items)
    logits = 2.5 * users @ items.T + 0.8 * appeal[None, :] - 1.5
    relevance = 1 / (1 + np.exp(-logits))
    visibility = popularity_bias * appeal + (1 - popularity_bias) * rng.normal(0, 1, n_items) + 0.5 * rng.normal(0, 1, n_items)
    ranked = np.argsort(np.argsort(-visibility))
    raw = (1.0 / (1 + ranked)) ** (exposure_power / 3) if exposure_power > 0 else np.ones(n_items)
    theta_item = np.clip(raw / raw.mean() * mean_exposure, 0.01, 1.0)
    propensity = np.broadcast_to(theta_item, (n_users, n_items)).copy()
    liked = rng.random((n_users, n_items)) < relevance
    exposed = rng.random((n_users, n_items)) < propensity
    clicks = liked & exposed
    u, i = np.nonzero(clicks)
    in_valid = rng.random(len(u)) < valid_fraction
    # random-exposure test: items not clicked in the log, shown uniformly at random
    keys = rng.random((n_users, n_items))
    keys[clicks] = np.inf
    shown = np.argpartition(keys, test_exposures - 1, axis=1)[:, :test_exposures]
    rows = np.repeat(np.arange(n_users), test_exposures)
    candidates = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, shown.ravel())), shape=(n_users, n_items))
    test_mask = liked[rows, shown.ravel()]
    ids = lambda n, p: np.array([f"{p}{k}" for k in range(n)], dtype=object)  # noqa: E731

    def make(uu: np.ndarray, ii: np.ndarray, name: str) -> Dataset:
        return Dataset(ids(n_users, "u"), ids(n_items, "i"), uu.astype(np.int32), ii.astype(np.int32),
                       steps=(Step("synthetic", len(uu), name),), name=name)

    return ExposureWorld(
        train=make(u[~in_valid], i[~in_valid], "biased clicks (train)"),
        valid=make(u[in_valid], i[in_valid], "biased clicks (valid)"),
        test=make(rows[test_mask], shown.ravel()[test_mask], "liked among random exposures (test)"),
        test_candidates=candidates, relevance=relevance, propensity=propensity,
    )
