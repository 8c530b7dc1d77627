"""Preference strength from an ensemble of heads, to flag and down-weight doubtful labels
("Secrets of RLHF in Large Language Models Part II: Reward Modeling", Wang et al. 2024).

Each of H heads is the same model fitted on a seeded random half of the training contexts
(groups); a pair's *strength* is the mean margin, over the heads that never saw it, in the
direction of its label, and its *agreement* the mean probability those heads give the label. A
flexible head would have memorised the labels it was trained on, so only out-of-bag heads judge a
pair (the paper's heads are fitted on everything; the out-of-bag rule is our adaptation for models
that can memorise). Pairs with negative strength are the ones the ensemble thinks mislabelled; the
final model is fitted with each pair weighted by its agreement, so they count for little.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError


@dataclass(frozen=True)
class Strength:
    """Out-of-bag ensemble judgement of each training pair.

    Attributes:
        mean, std: float64 (n,) mean and spread of the heads' margins for the labelled winner.
        agreement: float64 (n,) mean P(label) over those heads, in (0, 1): the weights.
        heads_seen: int64 (n,) out-of-bag heads per pair (pairs no head left out use all heads).
    """

    mean: np.ndarray
    std: np.ndarray
    agreement: np.ndarray
    heads_seen: np.ndarray

    @property
    def doubtful(self) -> np.ndarray:
        """bool (n,): the ensemble prefers the loser (negative strength)."""
        return self.mean < 0


def preference_strength(make: Callable[[int], object], train: PreferencePairs, valid: PreferencePairs | None,
                        heads: int, seed: int = DEFAULT_SEED) -> Strength:
    """Fit ``heads`` models ``make(h)`` on random halves of ``train``'s groups and judge every pair
    by the heads that did not see it."""
    if heads < 2:
        raise ConfigError("an ensemble needs at least 2 heads")
    rng = np.random.default_rng(seed)
    groups = np.unique(train.group, return_inverse=True)[1]
    margins = np.empty((heads, len(train)))
    inside = np.empty((heads, len(train)), dtype=bool)
    for h in range(heads):
        half = rng.random(groups.max() + 1) < 0.5
        inside[h] = half[groups]
        head = make(h).fit(train.subset(inside[h]), valid)
        margins[h] = head.margin(train.user, train.winner, train.loser)
    out = ~inside
    none = ~out.any(0)
    out[:, none] = True
    n = out.sum(0)
    mean = (margins * out).sum(0) / n
    std = np.sqrt(((margins - mean) ** 2 * out).sum(0) / n)
    agreement = ((1.0 / (1.0 + np.exp(-margins))) * out).sum(0) / n
    return Strength(mean, std, agreement, n.astype(np.int64))
