"""Synthetic comparison worlds whose true preference probabilities are known, so a learner's
held-out accuracy can be stated as a fraction of the best possible (the Bayes-optimal accuracy:
always choosing the option that is truly more likely to win, mean max(p, 1 − p)).

* :func:`plural_world`: users from a few latent taste groups, each group with its own ideal point
  among the items (preferences differ by group, so no single model fits everyone);
* :func:`cyclic_world`: options in rock–paper–scissors triples on top of global strengths, so some
  preferences are intransitive and no scalar score can get more than 2 of a 3-cycle's edges right;
* :func:`directional_world`: options with known attribute scores, each user a unit direction
  over them (what Directional Preference Alignment assumes), the directions planted;
* :func:`flip_labels`: flip noise on the labels of a part (e.g. training only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.dataset import Step
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError


@dataclass(frozen=True)
class PreferenceWorld:
    """Comparisons drawn from a known model.

    Attributes:
        pairs: the drawn comparisons (winner = the option that won the draw).
        p_true: float64 (n,) the true probability that each listed winner beats its loser.
        on_cycle: bool (n,) pairs on an intransitive cycle (cyclic world), else all False.
        group: int64 (n_users,) each user's taste group (plural world), else empty.
        direction: float64 (n_users, m) each user's planted unit direction (directional world).
    """

    pairs: PreferencePairs
    p_true: np.ndarray
    on_cycle: np.ndarray
    group: np.ndarray
    direction: np.ndarray | None = None

    def bayes_accuracy(self, index: np.ndarray | None = None) -> float:
        """Mean max(p, 1 − p) over the pairs ``index`` (all by default): the best expected accuracy."""
        p = self.p_true if index is None else self.p_true[index]
        return float(np.mean(np.maximum(p, 1 - p)))

    def by_group(self, pairs: PreferencePairs) -> PreferencePairs:
        """``pairs`` (drawn from this world) with each user replaced by their planted taste group:
        the users of an oracle that knows the groups (plural world only)."""
        if not len(self.group):
            raise DataError("this world plants no taste groups")
        names = np.array([f"g{g}" for g in range(int(self.group.max()) + 1)], dtype=object)
        return replace(pairs, user=self.group[pairs.user], user_ids=names)


def _draw(rng: np.random.Generator, user: np.ndarray, a: np.ndarray, b: np.ndarray, margin: np.ndarray, n_users: int,
          n_options: int, name: str, detail: str) -> tuple[PreferencePairs, np.ndarray]:
    p_a = 1.0 / (1.0 + np.exp(-margin))
    a_wins = rng.random(len(a)) < p_a
    winner, loser = np.where(a_wins, a, b), np.where(a_wins, b, a)
    pairs = PreferencePairs(user.astype(np.int64), winner.astype(np.int64), loser.astype(np.int64),
                            np.arange(len(a), dtype=np.int64), np.array([f"u{i}" for i in range(n_users)], dtype=object),
                            np.array([f"o{i}" for i in range(n_options)], dtype=object),
                            steps=(Step("synthetic comparisons", len(a), detail),), name=name)
    return pairs, np.where(a_wins, p_a, 1 - p_a)


def _distinct_pairs(rng: np.random.Generator, n: int, n_options: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, n_options, n)
    b = (a + 1 + rng.integers(0, n_options - 1, n)) % n_options
    return a, b


def plural_world(n_users: int = 600, n_items: int = 60, groups: int = 3, *, dim: int = 4, pairs_per_user: int = 60,
                 sharpness: float = 1.0, seed: int = DEFAULT_SEED) -> PreferenceWorld:
    """Users in ``groups`` taste groups; user u of group g scores item i by −sharpness·‖x_i − c_g‖².

    Items x_i ~ N(0, I_dim), group ideal points c_g ~ N(0, I_dim); each user compares
    ``pairs_per_user`` random item pairs.
    """
    if groups < 1 or n_items < 2:
        raise ConfigError("need ≥ 1 group and ≥ 2 items")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_items, dim))
    ideal = rng.normal(size=(groups, dim))
    group = rng.integers(0, groups, n_users)
    utility = -sharpness * ((x[None, :, :] - ideal[group][:, None, :]) ** 2).sum(-1)  # (n_users, n_items)
    user = np.repeat(np.arange(n_users), pairs_per_user)
    a, b = _distinct_pairs(rng, len(user), n_items)
    pairs, p = _draw(rng, user, a, b, utility[user, a] - utility[user, b], n_users, n_items, f"plural-{groups}",
                     f"{groups} taste groups, {pairs_per_user} pairs per user, seed {seed}")
    return PreferenceWorld(pairs, p, np.zeros(len(p), bool), group.astype(np.int64))


def cyclic_world(n_triples: int = 20, n_pairs: int = 20_000, *, cycle: float = 2.5, spread: float = 1.0,
                 cycle_share: float = 0.5, seed: int = DEFAULT_SEED) -> PreferenceWorld:
    """Options in triples (3t, 3t+1, 3t+2) that beat each other in a cycle, 3t ≻ 3t+1 ≻ 3t+2 ≻ 3t,
    with log-odds ``cycle``; every triple has one global strength ~ N(0, spread²), and pairs across
    triples follow Bradley–Terry on those strengths. A share ``cycle_share`` of the pairs lies
    within triples (on a cycle). No user is named (user −1).
    """
    rng = np.random.default_rng(seed)
    n_options = 3 * n_triples
    strength = np.repeat(rng.normal(0, spread, n_triples), 3)
    n_cycle = round(n_pairs * cycle_share)
    t = rng.integers(0, n_triples, n_cycle)
    first = rng.integers(0, 3, n_cycle)
    forward = rng.random(n_cycle) < 0.5  # which way round the pair is listed
    a_c = 3 * t + np.where(forward, first, (first + 1) % 3)
    b_c = 3 * t + np.where(forward, (first + 1) % 3, first)
    m_c = np.where(forward, cycle, -cycle)  # position k beats position k+1 (mod 3)
    a_x, b_x = _distinct_pairs(rng, n_pairs - n_cycle, n_options)
    same = a_x // 3 == b_x // 3
    b_x = np.where(same, (b_x + 3) % n_options, b_x)  # across triples only
    m_x = strength[a_x] - strength[b_x]
    a, b = np.concatenate([a_c, a_x]), np.concatenate([b_c, b_x])
    pairs, p = _draw(rng, np.full(n_pairs, -1), a, b, np.concatenate([m_c, m_x]), 0, n_options, "cyclic",
                     f"{n_triples} 3-cycles of log-odds {cycle:g}, seed {seed}")
    on_cycle = np.zeros(n_pairs, dtype=bool)
    on_cycle[:n_cycle] = True
    return PreferenceWorld(pairs, p, on_cycle, np.zeros(0, np.int64))


def directional_world(n_users: int = 300, n_items: int = 80, attributes: int = 2, *, pairs_per_user: int = 40,
                      sharpness: float = 3.0, seed: int = DEFAULT_SEED) -> PreferenceWorld:
    """Items with attribute scores a_i ~ N(0, I_m) (carried as ``option_attributes``); user u has a
    unit direction v_u with non-negative entries (uniform on that part of the sphere) and scores
    item i by sharpness · v_uᵀ a_i."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_items, attributes))
    v = np.abs(rng.normal(size=(n_users, attributes)))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    user = np.repeat(np.arange(n_users), pairs_per_user)
    i, j = _distinct_pairs(rng, len(user), n_items)
    margin = sharpness * ((v[user] * (a[i] - a[j])).sum(1))
    pairs, p = _draw(rng, user, i, j, margin, n_users, n_items, f"directional-{attributes}",
                     f"{attributes} attributes, {pairs_per_user} pairs per user, seed {seed}")
    pairs = replace(pairs, option_attributes=a.astype(np.float32),
                    attribute_names=np.array([f"attribute {k}" for k in range(attributes)], dtype=object))
    return PreferenceWorld(pairs, p, np.zeros(len(p), bool), np.zeros(0, np.int64), v)


def flip_labels(pairs: PreferencePairs, rate: float, seed: int = DEFAULT_SEED) -> PreferencePairs:
    """``pairs`` with winner and loser swapped on a seeded fraction ``rate`` of them (counted)."""
    if not 0 <= rate < 0.5:
        raise ConfigError("rate must be in [0, 0.5)")
    flip = np.random.default_rng(seed).random(len(pairs)) < rate
    return replace(pairs, winner=np.where(flip, pairs.loser, pairs.winner), loser=np.where(flip, pairs.winner, pairs.loser),
                   steps=pairs.steps + (Step("labels flipped", int(flip.sum()), f"rate {rate:g}, seed {seed}"),))
