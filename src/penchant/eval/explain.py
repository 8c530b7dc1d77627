"""Which properties of a reply a person's choice follows: a logistic model of the choice on the
differences of interpretable reply features (``penchant prefs explain``).

For pair j with chosen reply c and rejected reply r, ``d_j = f(c) − f(r)`` over the features of
:mod:`penchant.eval.reply_features`. The model is P(c chosen over r) = σ(β·z_j), with
``z_j = d_j / s`` and ``s`` the root mean square of each feature's differences: the standard
deviation of the differences once every pair is also entered flipped (−d, not chosen), which makes
their mean exactly 0 and the model symmetric with no intercept (no side of a pair is favoured). The
flip adds no information, since the flipped row's likelihood equals the row's own, so the model is
fitted on the n pairs as written (``y = 1``, no intercept) and every count below is of pairs.

``β_k`` is feature k's effect: the change in the log-odds of choosing a reply when its advantage in
feature k over the other reply grows by one standard deviation, the other features held fixed;
``exp(β_k)`` is the odds ratio. β maximises the log-likelihood less a small ridge penalty
``penalty/2·|β|²`` (default 1, against a Hessian of about n/4 per coefficient, so it moves nothing
on real data but keeps β finite when a feature separates the pairs completely). The interval is
the percentile bootstrap over pairs (the features' scales held, ``n_boot`` refits); the Wald
standard error from the inverse Hessian at β is reported beside it. A feature whose differences are
all 0 has no effect to estimate and is reported without one.

Held-out accuracy is that of the same model fitted on k−1 folds of prompts (scale, β) and read on
the k-th, pooled over the folds (ties, margin 0, count ½), beside the length-only model: the same
fit on the ``words`` difference alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.eval.reply_features import FEATURES, reply_features


@dataclass(frozen=True)
class Explanation:
    """Per feature (k,) arrays, in the order of ``features``; effects are per standard deviation of
    the feature's difference (chosen − rejected), NaN for a feature whose differences are all 0."""

    features: tuple[str, ...]
    effect: np.ndarray
    interval: np.ndarray  # (k, 2) bootstrap percentile interval of the effect
    wald_se: np.ndarray
    sd_difference: np.ndarray  # the scale s of each feature's difference, in the feature's unit
    chosen_mean: np.ndarray
    rejected_mean: np.ndarray
    n_pairs: int
    accuracy: float
    length_accuracy: float
    level: float = 0.95
    folds: int = 5
    n_boot: int = 1000
    penalty: float = 1.0
    seconds: float = 0.0
    steps: tuple = field(default=())

    @property
    def odds_ratio(self) -> np.ndarray:
        return np.exp(self.effect)

    def to_json(self) -> dict:
        """The JSON written by ``penchant prefs explain --json``."""
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        rows = [{"feature": name, "definition": FEATURES[name][0], "unit": FEATURES[name][1],
                 "effect": num(self.effect[k]), "interval": [num(self.interval[k, 0]), num(self.interval[k, 1])],
                 "odds_ratio": num(self.odds_ratio[k]),
                 "odds_ratio_interval": [num(np.exp(self.interval[k, 0])), num(np.exp(self.interval[k, 1]))],
                 "wald_se": num(self.wald_se[k]), "sd_difference": num(self.sd_difference[k]),
                 "chosen_mean": num(self.chosen_mean[k]), "rejected_mean": num(self.rejected_mean[k])}
                for k, name in enumerate(self.features)]
        return {"n_pairs": self.n_pairs, "accuracy": self.accuracy, "length_only_accuracy": self.length_accuracy,
                "folds": self.folds, "interval": f"{self.level:.0%} percentile bootstrap over pairs, {self.n_boot} refits",
                "effect_unit": "log-odds of being chosen per standard deviation of the feature's difference",
                "penalty": self.penalty, "seconds": round(self.seconds, 2), "features": rows}


def fit_logistic(z: np.ndarray, penalty: float = 1.0, start: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """β maximising Σ_j w_j log σ(z_j·β) − penalty/2·|β|² (every pair's outcome is 1: the chosen
    side), by Newton's method with step halving; returns β (k,) and the Hessian (k, k) of the
    negative objective at β. ``z`` float64 (n, k); ``weights`` (n,) pair multiplicities (1 each)."""
    n, k = z.shape
    w = np.ones(n) if weights is None else weights
    beta = np.zeros(k) if start is None else start.astype(np.float64).copy()

    def loss(b: np.ndarray) -> float:
        return float(w @ np.logaddexp(0.0, -(z @ b)) + penalty / 2 * b @ b)

    current = loss(beta)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        grad = -(z.T @ (w * (1 - p))) + penalty * beta
        hess = (z.T * (w * p * (1 - p))) @ z + penalty * np.eye(k)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while (trial := loss(beta - size * step)) > current + 1e-12 and size > 1e-6:
            size /= 2
        beta, current = beta - size * step, trial
        if np.max(np.abs(size * step)) < 1e-9:
            break
    p = 1.0 / (1.0 + np.exp(-(z @ beta)))
    return beta, (z.T * (w * p * (1 - p))) @ z + penalty * np.eye(k)


def _scale(d: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(d ** 2, axis=0))


def _held_out(d: np.ndarray, group: np.ndarray, folds: int, penalty: float, seed: int) -> float:
    """Accuracy of the model fitted on the other folds of prompts, pooled over all pairs (ties ½)."""
    prompts = np.unique(group, return_inverse=True)[1]
    fold = np.random.default_rng(seed).permutation(prompts.max() + 1 if len(prompts) else 0)[prompts] % folds
    right = np.zeros(len(d))
    for f in range(folds):
        test, train = fold == f, fold != f
        if not test.any() or not train.any():
            continue
        s = _scale(d[train])
        ok = s > 0
        beta, _ = fit_logistic(d[train][:, ok] / s[ok], penalty)
        margin = d[test][:, ok] / s[ok] @ beta
        right[test] = (margin > 0) + 0.5 * (margin == 0)
    return float(right.mean())


def explain_pairs(pairs: PreferencePairs, *, n_boot: int = 1000, folds: int = 5, penalty: float = 1.0,
                  level: float = 0.95, seed: int = 0) -> Explanation:
    """The effects of :data:`~penchant.eval.reply_features.FEATURES` on the choices of ``pairs``
    (text comparisons: ``option_text`` holds the replies, ``option_context`` the prompts)."""
    started = time.perf_counter()
    if pairs.option_text is None:
        raise DataError(f"{pairs.name} has no reply text", expected="text comparisons (prompt?, chosen, rejected)")
    if n_boot < 2 or folds < 2:
        raise ConfigError(f"need at least 2 bootstrap refits and 2 folds, not {n_boot} and {folds}")
    if len(pairs) < 2 * folds:
        raise DataError(f"{len(pairs)} pairs are too few to explain", expected=f"at least {2 * folds} comparisons")
    contexts = None if pairs.option_context is None else pairs.option_context.astype(str)
    table = reply_features(pairs.option_text.astype(str), contexts)
    d = table[pairs.winner] - table[pairs.loser]
    names = tuple(FEATURES)
    s = _scale(d)
    ok = s > 0
    z = d[:, ok] / s[ok]
    beta, hess = fit_logistic(z, penalty)
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, int(ok.sum())))
    for b in range(n_boot):
        weights = np.bincount(rng.integers(0, len(z), len(z)), minlength=len(z)).astype(np.float64)
        boots[b] = fit_logistic(z, penalty, start=beta, weights=weights)[0]
    tail = (1 - level) / 2
    effect, interval, se = np.full(len(names), np.nan), np.full((len(names), 2), np.nan), np.full(len(names), np.nan)
    effect[ok] = beta
    interval[ok] = np.quantile(boots, [tail, 1 - tail], axis=0).T
    se[ok] = np.sqrt(np.diag(np.linalg.inv(hess)))
    words = names.index("words")
    return Explanation(
        names, effect, interval, se, s, table[pairs.winner].mean(0), table[pairs.loser].mean(0), len(pairs),
        _held_out(d, pairs.group, folds, penalty, seed), _held_out(d[:, [words]], pairs.group, folds, penalty, seed),
        level, folds, n_boot, penalty, time.perf_counter() - started, pairs.steps)
