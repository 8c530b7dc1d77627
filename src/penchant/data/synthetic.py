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
from penchant.errors import ConfigError


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


def power_law_log(n_users: int, n_items: int, n_interactions: int, *, skew: float = 0.5, user_skew: float = 0.3,
                  seed: int = DEFAULT_SEED) -> Dataset:
    """A log shaped like the public ones at any size: item popularity and user activity follow
    power laws (the item of popularity rank r is drawn ∝ r^−skew, the user of activity rank r ∝
    r^−user_skew, ranks shuffled over the ids), every (user, item) pair at most once, ratings
    1–5 and timestamps over five years. The defaults give an ML-20M-like shape at 138k × 27k ×
    20M: the most popular item drawn by about 0.3% of the log (~60k users), the most active user
    by a few thousand items; steeper exponents saturate the head (an item cannot be drawn by
    more users than there are) and take more rounds to draw.

    Users are ``u0`` … and items ``i0`` …; ``n_interactions`` distinct pairs are drawn in batches
    (no Python loop per row), so 20 million take seconds. Users or items never drawn keep their
    place in the vocabularies and are counted in ``steps``.
    """
    if min(n_users, n_items, n_interactions) < 1:
        raise ConfigError("n_users, n_items and n_interactions must be at least 1")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, not {seed}")
    if n_interactions > 0.5 * n_users * n_items:
        raise ConfigError(f"{n_interactions:,} distinct pairs is more than half of the {n_users * n_items:,} possible "
                          "ones; a power-law draw would mostly repeat pairs (use more users or items)")
    rng = np.random.default_rng(seed)

    def ranks(n: int, exponent: float) -> np.ndarray:
        weight = np.arange(1, n + 1, dtype=np.float64) ** -exponent
        return np.cumsum(rng.permutation(weight / weight.sum()))

    user_cdf, item_cdf = ranks(n_users, user_skew), ranks(n_items, skew)
    keys = np.zeros(0, dtype=np.int64)
    fresh = 1.0  # share of the last round's draws that were new pairs: the next round draws need / fresh
    for _ in range(50):
        need = n_interactions - len(keys)
        if need <= 0:
            break
        m = int(need / max(fresh, 0.05) * 1.1) + 1000
        u = np.minimum(np.searchsorted(user_cdf, rng.random(m)), n_users - 1)
        i = np.minimum(np.searchsorted(item_cdf, rng.random(m)), n_items - 1)
        drawn = np.concatenate([keys, u.astype(np.int64) * n_items + i])
        _, first = np.unique(drawn, return_index=True)
        fresh = (len(first) - len(keys)) / m
        keys = drawn[np.sort(first)]  # first occurrences, in draw order
    else:
        raise ConfigError(f"could not draw {n_interactions:,} distinct pairs; lower the skew")
    keys = keys[:n_interactions]
    users, items = (keys // n_items).astype(np.int32), (keys % n_items).astype(np.int32)
    ratings = rng.integers(1, 6, n_interactions).astype(np.float32)
    timestamps = np.floor(1.2e9 + rng.random(n_interactions) * 5 * 365.25 * 86400)
    user_ids = np.char.add("u", np.arange(n_users).astype(str)).astype(object)
    item_ids = np.char.add("i", np.arange(n_items).astype(str)).astype(object)
    unused_u = n_users - len(np.unique(users))
    unused_i = n_items - len(np.unique(items))
    return Dataset(user_ids, item_ids, users, items, ratings=ratings, timestamps=timestamps,
                   steps=(Step("synthetic interactions", n_interactions,
                               f"{n_users:,} users, {n_items:,} items, skew {skew:g}, seed {seed}"),
                          Step("ids never drawn", unused_u + unused_i, f"{unused_u} users and {unused_i} items")),
                   name=f"synthetic-{n_interactions}")
