"""Served-list logs from the slate world, as a platform would record them.

A platform's recommender scores items with a model that is right only up to error
(score = utility + N(0, ``score_noise``), fixed per user and item), shows its top ``slate_size``
with ε-greedy exploration (the service's rule, :mod:`penchant.serve.impressions`: each slot
independently, with probability ε, shows a random item from outside the greedy list, drawn without
replacement across the list's explored slots; propensity 1 − ε for a greedy item at its slot, ε / M
for an explored one, M the items outside the greedy list), and the :class:`SlateWorld` user clicks.
What comes back is a :class:`~penchant.data.bandit_logs.BanditLog`: round, user, item, slot,
click and propensity, nothing of the world's utilities, so whatever learns from it sees only what a
platform logs.
"""

from __future__ import annotations

import numpy as np

from penchant.data.bandit_logs import BanditLog, bandit_log
from penchant.simulate.slate_world import SlateWorld


def slate_world_log(world: SlateWorld, rounds: int, *, epsilon: float = 0.2, score_noise: float = 1.0,
                    seed: int = 0) -> BanditLog:
    """``rounds`` served lists of ``world`` under the ε-greedy platform of the module (seeded).

    Returns the log, rows (rounds · slate_size) sorted by (round, slot); reward = click (0/1).
    """
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"epsilon must be in [0, 1), got {epsilon!r}")
    rng = np.random.default_rng(seed)
    n_items, k = world.n_items, world.slate_size
    if n_items <= k:
        raise ValueError(f"the world needs more items than slots to explore ({n_items} items, {k} slots)")
    score = world.utility + score_noise * rng.normal(size=world.utility.shape)
    users = world.arrivals(rounds)
    greedy = np.argsort(-score[users], axis=1, kind="stable")[:, :k]  # (R, k)
    keys = rng.random((rounds, n_items))
    np.put_along_axis(keys, greedy, np.inf, axis=1)  # never explore onto the greedy list
    pool = np.argsort(keys, axis=1)[:, :k]  # (R, k) distinct random items outside it
    explored = rng.random((rounds, k)) < epsilon
    slates = np.where(explored, pool, greedy)
    propensity = np.where(explored, epsilon / (n_items - k), 1.0 - epsilon)
    clicks = world.respond(users, slates)
    round_ids = np.repeat(np.arange(rounds), k)
    return bandit_log(round_ids, np.repeat(users, k), slates.ravel(), np.tile(np.arange(k), rounds), clicks.ravel(),
                      propensity.ravel(), source=f"slate world ({world.n_users} users × {n_items} items, ε = {epsilon})")
