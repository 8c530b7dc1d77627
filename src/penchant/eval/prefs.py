"""Judging pairwise preference models on held-out comparisons.

Each test pair lists the observed winner first, so a model's prediction is p = P(winner ≻ loser):

* accuracy: p > 0.5 counts 1, p = 0.5 (a tie) counts ½; the number of ties is reported;
* log-loss −mean log p; Brier mean (1 − p)²;
* expected calibration error over 10 equal-width bins of confidence max(p, 1 − p):
  ECE = Σ_bins (n_bin / n) |accuracy_bin − confidence_bin|, before and after temperature scaling
  (one T > 0 dividing every margin, fitted by log-loss on the validation pairs);
* per-user accuracy: the macro mean over users, and the mean over the worst-scoring tenth of users
  (users with at least ``min_user_pairs`` test pairs);
* 95% bootstrap intervals by resampling users (pairs of one user move together).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.eval.significance import bootstrap_ci


def pair_accuracy(p: np.ndarray) -> np.ndarray:
    """Per-pair credit: 1 if p > ½, ½ if p = ½, else 0."""
    return np.where(p > 0.5, 1.0, np.where(p == 0.5, 0.5, 0.0))


def expected_calibration_error(p: np.ndarray, bins: int = 10) -> float:
    """ECE of confidence max(p, 1−p) against correctness, ``bins`` equal-width bins on [½, 1]."""
    if not len(p):
        return float("nan")
    conf = np.maximum(p, 1 - p)
    correct = (p > 0.5).astype(np.float64) + 0.5 * (p == 0.5)
    idx = np.minimum(((conf - 0.5) * 2 * bins).astype(np.int64), bins - 1)
    n = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, correct, bins) - np.bincount(idx, conf, bins))
    return float(gap.sum() / len(p)) if n.sum() else float("nan")


def fit_temperature(margins: np.ndarray) -> float:
    """T > 0 minimising the mean log-loss of σ(m / T) over winner-first margins."""
    if not len(margins):
        return 1.0
    res = minimize_scalar(lambda log_t: float(np.mean(np.logaddexp(0.0, -margins / np.exp(log_t)))),
                          bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(res.x))


def user_bootstrap(values: np.ndarray, users: np.ndarray, *, n_boot: int = 1000, seed: int = DEFAULT_SEED,
                   alpha: float = 0.05) -> tuple[float, float]:
    """Percentile interval of the pair-weighted mean of ``values`` when users are resampled
    (:func:`penchant.eval.significance.bootstrap_ci` with ``groups=users``)."""
    return bootstrap_ci(values, groups=users, n_boot=n_boot, seed=seed, alpha=alpha)


@dataclass
class PairReport:
    """What one model scored on one set of held-out pairs."""

    label: str
    pairs: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    ties: int
    log_loss: float
    brier: float
    ece: float
    temperature: float
    ece_scaled: float
    user_macro: float
    worst_decile: float
    per_pair: np.ndarray = field(repr=False)

    def row(self) -> dict[str, object]:
        """The figures as a JSON-ready dict (rounded; undefined values, e.g. per-user figures
        without users, as None)."""
        def num(x: float, digits: int = 4) -> float | None:
            return None if np.isnan(x) else round(float(x), digits)

        return {"model": self.label, "pairs": self.pairs, "accuracy": num(self.accuracy),
                "ci_low": num(self.accuracy_ci[0]), "ci_high": num(self.accuracy_ci[1]), "ties": self.ties,
                "log_loss": num(self.log_loss), "brier": num(self.brier), "ece": num(self.ece),
                "temperature": num(self.temperature, 3), "ece_scaled": num(self.ece_scaled),
                "user_macro": num(self.user_macro), "worst_decile": num(self.worst_decile)}


def evaluate_pairs(model, test: PreferencePairs, valid: PreferencePairs | None = None, *, label: str | None = None,
                   n_boot: int = 1000, seed: int = DEFAULT_SEED, min_user_pairs: int = 5, resample: str = "users") -> PairReport:
    """Score ``model`` (a pairwise model: ``margin(users, a, b)`` and a ``name``, or give ``label``) on ``test``.

    ``resample``: what the bootstrap interval resamples, ``users`` (pairs without a user are then
    resampled one by one) or ``pairs`` (when there are too few users for a user-level interval).
    """
    if resample not in ("users", "pairs"):
        raise ConfigError("resample must be 'users' or 'pairs'")
    m = np.clip(model.margin(test.user, test.winner, test.loser), -50, 50)
    p = 1.0 / (1.0 + np.exp(-m))
    credit = pair_accuracy(p)
    t = fit_temperature(np.clip(model.margin(valid.user, valid.winner, valid.loser), -50, 50)) if valid is not None else 1.0
    users = np.where(test.user >= 0, test.user, -1 - np.arange(len(test))) if resample == "users" else np.arange(len(test))
    per_user_n = np.bincount(test.user[test.user >= 0], minlength=test.n_users)
    per_user = np.bincount(test.user[test.user >= 0], credit[test.user >= 0], test.n_users)
    keep = per_user_n >= min_user_pairs
    acc_u = per_user[keep] / per_user_n[keep] if keep.any() else np.array([np.nan])
    worst = np.sort(acc_u)[: max(1, len(acc_u) // 10)]
    return PairReport(label or model.name, len(test), float(credit.mean()),
                      user_bootstrap(credit, users, n_boot=n_boot, seed=seed), int((p == 0.5).sum()),
                      float(np.mean(np.logaddexp(0.0, -m))), float(np.mean((1 - p) ** 2)),
                      expected_calibration_error(p), t, expected_calibration_error(1.0 / (1.0 + np.exp(-m / t))),
                      float(np.mean(acc_u)), float(np.mean(worst)), credit)


def paired_difference(a: PairReport, b: PairReport, users: np.ndarray, *, n_boot: int = 2000,
                      seed: int = DEFAULT_SEED) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus ``b`` on the same pairs, with a 95% user-level bootstrap interval."""
    diff = a.per_pair - b.per_pair
    lo, hi = user_bootstrap(diff, users, n_boot=n_boot, seed=seed)
    return float(diff.mean()), lo, hi


def few_shot_curve(model, test: PreferencePairs, shots: tuple[int, ...] = (2, 5, 10, 20, 50), *,
                   seed: int = DEFAULT_SEED) -> dict[int, float]:
    """Accuracy on unseen users after fitting each from ``n`` of their comparisons, for n in ``shots``.

    Users with at least ``max(shots)`` + 10 test pairs take part; each user's pairs are shuffled
    (seeded), the first ``max(shots)`` are the pool the context is taken from (its first n), and
    the rest are scored, so every n is judged on the same pairs. ``model`` (already fitted on other
    users) is copied for each n and adapted with :meth:`adapt`; n = 0 is the population model.
    """
    import copy

    pool = max(shots)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(test)), test.user))
    user_sorted = test.user[order]
    rank = np.empty(len(test), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.searchsorted(user_sorted, user_sorted)
    counts = np.bincount(test.user[test.user >= 0], minlength=test.n_users)
    eligible = (test.user >= 0) & (counts[np.maximum(test.user, 0)] >= pool + 10)
    held = test.subset(eligible & (rank >= pool))
    out = {0: float(np.mean(pair_accuracy(model.prob(held.user, held.winner, held.loser))))}
    for n in shots:
        adapted = copy.deepcopy(model).adapt(test.subset(eligible & (rank < n)))
        out[n] = float(np.mean(pair_accuracy(adapted.prob(held.user, held.winner, held.loser))))
    return out
