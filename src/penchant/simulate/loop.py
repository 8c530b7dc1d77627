"""Running a slate policy in a :class:`~penchant.simulate.slate_world.SlateWorld`: regret curves and logs.

Both functions serve ``batch`` arriving users per step with the policy as it stands, then let a
learning policy update on what that batch earned (batch = 1 is the fully sequential bandit). Any
:class:`~penchant.models.protocols.SlatePolicy` runs; the registry's ``slate`` family names the
built ones (``create("linucb", world)``: :mod:`penchant.simulate.policies`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.data.bandit_logs import BanditLog, Target, bandit_log
from penchant.models.protocols import LearningPolicy, SlatePolicy, StochasticPolicy
from penchant.simulate.slate_world import SlateWorld


@dataclass(frozen=True)
class Run:
    """What a policy earned, round by round (float64 (rounds,) each).

    Attributes:
        reward: clicks earned; expected: the shown list's expected clicks; best: the best list's.
    """

    reward: np.ndarray
    expected: np.ndarray
    best: np.ndarray

    @property
    def regret(self) -> np.ndarray:
        """Cumulative expected regret after each round, float64 (rounds,)."""
        return np.cumsum(self.best - self.expected)

    def regret_slope(self, start: float = 0.1) -> float:
        """The slope of log cumulative regret against log rounds, fitted from ``start`` (a share of the
        run) to the end: 1 is linear regret (no learning), below 1 sublinear."""
        t = np.arange(1, len(self.expected) + 1)
        keep = (t >= max(2, int(start * len(t)))) & (self.regret > 0)
        return float(np.polyfit(np.log(t[keep]), np.log(self.regret[keep]), 1)[0])


def run_policy(world: SlateWorld, policy: SlatePolicy, rounds: int, *, batch: int = 1, seed: int = 0) -> Run:
    """Serve ``rounds`` arriving users (``batch`` per step), learning as it goes when the policy can."""
    rng = np.random.default_rng(seed)
    world.reset(seed=seed)
    reward, expected, best = (np.empty(rounds) for _ in range(3))
    for start in range(0, rounds, batch):
        stop = min(rounds, start + batch)
        users = world.arrivals(stop - start)
        slates, _ = policy.act(users, world.slate_size, rng)
        clicks = world.respond(users, slates)
        reward[start:stop] = clicks.sum(axis=1)
        expected[start:stop] = world.click_probabilities(users, slates).sum(axis=1)
        best[start:stop] = world.best_value(users)
        if isinstance(policy, LearningPolicy):
            policy.update(users, slates, clicks)
    return Run(reward, expected, best)


def log_rounds(world: SlateWorld, policy: SlatePolicy, rounds: int, *, seed: int = 0) -> BanditLog:
    """Logged bandit feedback of a fixed logging policy: one row per shown item with its propensity."""
    rng = np.random.default_rng(seed)
    world.reset(seed=seed)
    users = world.arrivals(rounds)
    slates, propensity = policy.act(users, world.slate_size, rng)
    if not np.isfinite(propensity).all():
        raise ValueError("the logging policy gave no propensities (set propensity_draws for a Thompson sampler)")
    clicks = world.respond(users, slates)
    k = world.slate_size
    return bandit_log(np.repeat(np.arange(rounds), k), np.repeat(users, k), slates.ravel(), np.tile(np.arange(k), rounds),
                      clicks.ravel(), propensity.ravel(), source="<simulated>")


def policy_target(log: BanditLog, policy: StochasticPolicy) -> Target:
    """A world policy's per-slot distributions on the slots of ``log`` (whose ids are world indices
    written as strings, as :func:`log_rounds` writes them), for off-policy estimators."""
    k = int(log.position.max()) + 1
    users, inverse = np.unique(log.user_ids[log.users].astype(np.int64), return_inverse=True)
    probs = policy.slot_probabilities(users, k)[inverse, log.position]  # (n, n_items)
    row, item = np.nonzero(probs)
    known = {str(v): i for i, v in enumerate(log.item_ids)}
    names = [str(i) for i in range(probs.shape[1])]
    codes = np.array([known.setdefault(name, len(known)) for name in names], dtype=np.int64)
    return Target(row.astype(np.int64), np.array(list(known), dtype=object), codes[item], probs[row, item])
