"""Bradley–Terry: one strength per option, P(a ≻ b) = σ(θ_a − θ_b), for everybody alike.

Fitted by L-BFGS on the penalised negative log-likelihood

    Σ_pairs log(1 + exp(−(θ_w − θ_l))) + alpha · ‖θ‖²

(the objective and ``alpha`` convention of ``choix.opt_pairwise``). With ``features="text"``
the strength is linear in the option's frozen sentence embedding, θ = F w, and the penalty is on
w: a linear reward model (logistic regression on embedding differences).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference.base import PreferenceModel
from penchant.models.preference.train import check_loss, pair_loss_np
from penchant.models.registry import register
from penchant.models.search import Float


def _bt_objective(winner: np.ndarray, loser: np.ndarray, n: int, alpha: float, loss: str = "plain",
                  epsilon: float = 0.0, weight: np.ndarray | None = None):
    """(value, gradient) of Σ_j weight_j ℓ(θ_w − θ_l) + alpha‖θ‖² over θ (n,)."""
    wt = np.ones(len(winner)) if weight is None else np.asarray(weight, np.float64)

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, slope = pair_loss_np(theta[winner] - theta[loser], loss, epsilon)
        slope = slope * wt
        grad = 2.0 * alpha * theta + np.bincount(winner, slope, minlength=n) - np.bincount(loser, slope, minlength=n)
        return float(wt @ value) + alpha * float(theta @ theta), grad
    return f


class Strengths(PreferenceModel):
    """A model whose whole state is one strength per option, ``theta_`` (float64 (n_options,))."""

    def _score(self, users: np.ndarray, options: np.ndarray) -> np.ndarray:
        return self.theta_[options]

    def _state(self) -> dict[str, np.ndarray]:
        return {"theta": self.theta_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.theta_ = arrays["theta"]


@register
class BradleyTerry(Strengths):
    """Global Bradley–Terry strengths (ids) or a linear reward on text embeddings.

    Args:
        alpha: L2 penalty (choix's convention: ``alpha·‖θ‖²``).
        features: ``id``, ``text``, ``layers``, ``length`` or ``bow`` (see :mod:`.features`).
        tol: L-BFGS gradient tolerance.
        loss, epsilon: the pair loss (``plain``, ``smooth``, ``robust``, ``forward``; see :mod:`.train`).
        strength_heads: H > 0 weights each training pair by an H-head ensemble's agreement with it.
    """

    name = "bt"
    search_space = {"alpha": Float(1e-3, 100.0, log=True)}

    def __init__(self, *, alpha: float = 1e-2, features: str = "id", text_model: str = "all-MiniLM-L6-v2",
                 tol: float = 1e-8, loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0) -> None:
        if alpha < 0:
            raise ConfigError("alpha must be ≥ 0")
        if strength_heads < 0 or strength_heads == 1:
            raise ConfigError("strength_heads must be 0 (off) or at least 2")
        check_loss(loss, epsilon)
        self.alpha, self.features, self.text_model, self.tol = alpha, features, text_model, tol
        self.loss, self.epsilon, self.strength_heads = loss, epsilon, strength_heads

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        from scipy.optimize import minimize  # here: the service imports this module at start, and seldom fits

        x = self._fit_features(train)
        if x is None:
            f = _bt_objective(train.winner, train.loser, train.n_options, self.alpha, self.loss, self.epsilon, weight)
            res = minimize(f, np.zeros(train.n_options), jac=True, method="L-BFGS-B",
                           options={"gtol": self.tol, "maxiter": 10_000})
            self.theta_ = res.x
        else:
            diff = (x[train.winner] - x[train.loser]).astype(np.float64)
            wt = np.ones(len(train)) if weight is None else weight

            def g(w: np.ndarray) -> tuple[float, np.ndarray]:
                value, slope = pair_loss_np(diff @ w, self.loss, self.epsilon)
                return float(wt @ value) + self.alpha * float(w @ w), 2.0 * self.alpha * w + diff.T @ (wt * slope)

            res = minimize(g, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": self.tol, "maxiter": 10_000})
            self.weights_ = res.x
            self.theta_ = x.astype(np.float64) @ res.x
        self.converged_ = bool(res.success)

    @contextmanager
    def _options_added(self, x: np.ndarray) -> Iterator[int]:
        theta, start = self.theta_, len(self.theta_)
        self.theta_ = np.concatenate([theta, x.astype(np.float64) @ self.weights_])
        try:
            yield start
        finally:
            self.theta_ = theta

    def score_text(self, texts: np.ndarray | list[str], contexts: np.ndarray | list[str] | None = None) -> np.ndarray:
        """Reward of options given as text, never seen or not: float64 (len(texts),), the linear
        reward on the fitted feature pipeline (``features`` other than ``id``)."""
        if self.features_ is None:
            raise ConfigError(f"this {self.name} model was fitted on option ids (features=id); "
                              "fit it with features=text, layers, bow or length to score new text")
        return self.features_.transform(texts, contexts).astype(np.float64) @ self.weights_

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), **({"weights": self.weights_} if self.features_ is not None else {})}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_state(arrays)
        self.weights_ = arrays.get("weights")


@register
class WinRate(Strengths):
    """The majority baseline: each option's smoothed share of training wins,
    (wins + 1) / (comparisons + 2); the option that won more often is predicted to win."""

    name = "winrate"

    def __init__(self) -> None:
        pass

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        wins = np.bincount(train.winner, weight, minlength=train.n_options)
        games = wins + np.bincount(train.loser, weight, minlength=train.n_options)
        rate = (wins + 1.0) / (games + 2.0)
        self.theta_ = np.log(rate) - np.log1p(-rate)  # log-odds, so margins are comparable to BT's

