"""Off-policy evaluation: the value of a target policy, estimated from another policy's logs.

The estimand is the expected total reward of one round (one served list, summed over its slots)
under the target policy π, from rounds logged under μ. For one-item lists every estimator below
is the textbook one (and equals Open Bandit Pipeline's, which a test checks). Per logged row
(round i, slot l, item a_il) the importance weight is ``w_il = π(a_il | i, l) / μ(a_il | i, l)``:

* ``ips``  (standard slate IPS): mean_i W_i R_i with W_i = Π_l w_il (or π's slate probability over
  ``slate_propensity`` when the log has it) and R_i = Σ_l r_il. Unbiased with no assumption on the
  reward; its variance grows with the slate length.
* ``snips``: Σ_i W_i R_i / Σ_i W_i (self-normalised; biased, bounded by the largest reward).
* ``dm`` (direct method): mean_i Σ_l Σ_a π(a | i, l) q̂(u_i, a, l), with q̂ a reward model
  (:mod:`penchant.eval.reward_models`).
* ``dr`` (doubly robust, per slot): dm + mean_i Σ_l w_il (r_il − q̂(u_i, a_il, l)).
* ``switch-dr``: as dr, but the correction only where w_il ≤ τ (Wang et al., ICML 2017).
* ``iips`` (independent IPS, Li et al. 2018): mean_i Σ_l w_il r_il; unbiased when a slot's reward
  depends only on the item in it.
* ``pi`` (pseudo-inverse, Swaminathan et al., NeurIPS 2017): mean_i (Σ_l w_il − L_i + 1) R_i;
  unbiased when the slate reward is additive over slots and μ fills slots independently (the
  closed form of Γ† for such a μ); it needs only the slate's total reward.

An estimate stands on the rounds where the target agrees with the logger at all (support: the whole
logged list has π > 0 for ips/snips, some logged item has for the others); ``supported_rounds`` counts
them. With none, ips, iips and pi still compute a number (0 for ips) that says nothing about the target
and snips is 0/0: ``estimate(..., require_support=True)`` (what ``penchant ope`` asks) refuses all four
alike, naming the share. dm, dr and switch-dr answer through the reward model whatever the overlap.

Intervals are percentile bootstrap intervals over rounds; a resample refits the reward model, so
the interval of dm/dr carries the model's own variance. ``effective_sample_size`` is Kish's
(Σw)²/Σw² over the weights an estimator uses (round weights for ips/snips/pi, slot weights for
iips/dr/switch-dr; the number of rounds for dm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from penchant.data.bandit_logs import BanditLog, Target
from penchant.errors import DataError
from penchant.eval.reward_models import REWARD_MODELS, CellMeans

ESTIMATORS = ("ips", "snips", "dm", "dr", "switch-dr", "iips", "pi")
MODEL_BASED = ("dm", "dr", "switch-dr")
#: estimators that read the rewards only through importance weights: nothing to say without support
WEIGHT_ONLY = ("ips", "snips", "iips", "pi")
#: Open Bandit Pipeline defaults τ to 1, which for a deterministic target (w ≥ 1 wherever π and μ
#: agree) drops every correction and leaves dm; 10 keeps the correction except on rare slots
DEFAULT_TAU = 10.0
#: float64 entries one bootstrap chunk may hold per array
CHUNK_ENTRIES = 4_000_000


@dataclass(frozen=True)
class OPEResult:
    """One estimate: ``value`` with its bootstrap interval ``ci`` = (low, high), from ``rounds`` logged
    lists of which ``supported_rounds`` have support under the target (see the module's notes)."""

    estimator: str
    value: float
    ci: tuple[float, float]
    rounds: int
    effective_sample_size: float
    supported_rounds: int

    @property
    def support(self) -> float:
        """The share of logged lists with support, in [0, 1]."""
        return self.supported_rounds / self.rounds if self.rounds else 0.0

    def to_json(self) -> dict:
        """The ``penchant ope --json`` contract."""
        return {"estimator": self.estimator, "value": self.value, "ci": [self.ci[0], self.ci[1]],
                "rounds": self.rounds, "effective_sample_size": self.effective_sample_size}


def estimate(log: BanditLog, target: Target, estimators: tuple[str, ...] | str = "dr", *, reward_model: str = "item",
             n_bootstrap: int = 1000, confidence: float = 0.95, tau: float = DEFAULT_TAU,
             seed: int = 0, require_support: bool = False) -> dict[str, OPEResult]:
    """Estimate the target's value with each of ``estimators`` (sharing one set of resamples).

    Args:
        log: the logged rounds; target: π's probabilities on the log's slots.
        reward_model: a name of :data:`~penchant.eval.reward_models.REWARD_MODELS` (dm, dr, switch-dr).
        n_bootstrap: resamples of the rounds for the interval; confidence: its coverage, in (0, 1).
        tau: the switch-dr threshold on the slot weight.
        seed: seeds the resampling.
        require_support: refuse (DataError) an estimator of :data:`WEIGHT_ONLY` when no logged list has
            support; snips is refused so always (its estimate is 0/0).
    """
    names = (estimators,) if isinstance(estimators, str) else tuple(estimators)
    for name in names:
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    if reward_model not in REWARD_MODELS:
        raise ValueError(f"unknown reward model {reward_model!r}; choose one of {', '.join(REWARD_MODELS)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    parts = _Parts(log, target, tau, reward_model if set(names) & set(MODEL_BASED) else None)
    for name in names:
        if name in WEIGHT_ONLY and parts.supported(name) == 0 and (require_support or name == "snips"):
            what = ("is undefined" if name == "snips" else "is not informative")
            unit = "list" if name in ("ips", "snips") else "item"
            raise DataError(f"{name} {what}: the target gives probability 0 to every logged {unit} (0 of "
                            f"{log.n_rounds:,} lists (0%) have support; all weights are 0), so the estimate says "
                            "nothing about the target", file=log.source,
                            expected="logs where the target would show some logged list; or use dm")
    rng = np.random.default_rng(seed)
    n_rounds, cost = log.n_rounds, 3 * max(len(log), log.n_rounds)
    chunk = max(1, CHUNK_ENTRIES // cost)
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    done = -1  # the first "resample" is the log itself: the point estimate
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        counts = _resample_counts(rng, n_rounds, b)
        if done < 0:
            counts[0] = 1.0
        for name, v in parts.values(names, counts).items():
            values[name].append(v)
        done += b
    alpha = (1.0 - confidence) / 2.0
    results = {}
    for name in names:
        v = np.concatenate(values[name])
        low, high = np.quantile(v[1:], [alpha, 1.0 - alpha])
        results[name] = OPEResult(name, float(v[0]), (float(low), float(high)), n_rounds, parts.ess(name),
                                  parts.supported(name))
    return results


def _resample_counts(rng: np.random.Generator, n_rounds: int, b: int) -> np.ndarray:
    """float64 (b, R): how often each round is drawn in each of b resamples of R rounds."""
    draws = rng.integers(0, n_rounds, size=(b, n_rounds)) + (np.arange(b) * n_rounds)[:, None]
    return np.bincount(draws.ravel(), minlength=b * n_rounds).reshape(b, n_rounds).astype(np.float64)


class _Parts:
    """What the estimators share: weights per slot and per round, and the reward model's inputs."""

    def __init__(self, log: BanditLog, target: Target, tau: float, reward_model: str | None) -> None:
        n = len(log)
        self.rounds, self.reward, self.tau = log.rounds, log.reward, float(tau)
        match = target.item == log.items[target.row]
        pi_logged = np.bincount(target.row[match], target.prob[match], minlength=n)
        self.w = pi_logged / log.propensity
        self.starts = starts = np.r_[0, np.flatnonzero(np.diff(log.rounds)) + 1]
        slate_mu = (log.slate_propensity if log.slate_propensity is not None
                    else np.multiply.reduceat(log.propensity, starts))
        self.W = np.multiply.reduceat(pi_logged, starts) / slate_mu
        self.R = np.add.reduceat(log.reward, starts)
        self.iips = np.add.reduceat(self.w * log.reward, starts)
        self.pi_weight = np.add.reduceat(self.w, starts) - np.diff(np.r_[starts, n]) + 1.0
        self.model: CellMeans | None = None
        if reward_model is not None:
            users = log.users[target.row]
            self.model = CellMeans(log.users, log.items, log.position, log.reward,
                                   np.concatenate([log.users, users]), np.concatenate([log.items, target.item]),
                                   np.concatenate([log.position, log.position[target.row]]), reward_model)
            cells = self.model.query_index
            self.logged_cell = cells[:n]
            # (q, n): sums each target entry's π·q̂ into its slot
            self.spread = sp.csr_matrix((target.prob, (cells[n:], target.row)), shape=(int(cells.max()) + 1, n))

    def values(self, names: tuple[str, ...], counts: np.ndarray) -> dict[str, np.ndarray]:
        """float64 (b,) per estimator, under round counts (b, R)."""
        n_rounds = counts.shape[1]
        out: dict[str, np.ndarray] = {}
        for name, per_round in (("ips", self.W * self.R), ("iips", self.iips), ("pi", self.pi_weight * self.R)):
            if name in names:
                out[name] = counts @ per_round / n_rounds
        if "snips" in names:
            mass = counts @ self.W
            out["snips"] = np.divide(counts @ (self.W * self.R), mass, out=np.full(len(mass), np.nan), where=mass > 0)
        if self.model is not None and set(names) & set(MODEL_BASED):
            row_counts = counts[:, self.rounds]
            q = self.model.predict(row_counts)
            q_logged = q[:, self.logged_cell]
            dm_slot = np.asarray(self.spread.T @ q.T).T  # (b, n): Σ_a π(a) q̂(a) per slot
            residual = self.w * (self.reward - q_logged)
            for name, slot in (("dm", dm_slot), ("dr", dm_slot + residual),
                               ("switch-dr", dm_slot + np.where(self.w <= self.tau, residual, 0.0))):
                if name in names:
                    out[name] = (row_counts * slot).sum(axis=1) / n_rounds
        return out

    def supported(self, name: str) -> int:
        """Rounds with support for ``name``: the whole logged list has π > 0 (ips, snips), or some
        logged item has (the others)."""
        if name in ("ips", "snips"):
            return int(np.count_nonzero(self.W > 0))
        return int(np.count_nonzero(np.maximum.reduceat(self.w, self.starts) > 0))

    def ess(self, name: str) -> float:
        weights = {"ips": self.W, "snips": self.W, "pi": self.pi_weight, "iips": self.w, "dr": self.w,
                   "switch-dr": np.where(self.w <= self.tau, self.w, 0.0)}.get(name)
        if weights is None:  # dm weighs every round alike
            return float(len(self.R))
        square = float(np.sum(weights ** 2))
        return float(np.sum(weights) ** 2 / square) if square > 0 else 0.0
