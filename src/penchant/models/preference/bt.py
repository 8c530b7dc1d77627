"""Bradley–Terry: one strength per option, P(a ≻ b) = σ(θ_a − θ_b), for everybody alike.

Fitted by L-BFGS on the penalised negative log-likelihood

    Σ_pairs log(1 + exp(−(θ_w − θ_l))) + alpha · ‖θ‖²

(the objective and ``alpha`` convention of ``choix.opt_pairwise``). With ``features="text"``
the strength is linear in the option's frozen sentence embedding, θ = F w, and the penalty is on
w: a linear reward model (logistic regression on embedding differences).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from penchant.data.preferences import PreferencePairs
from penchant.models.preference.base import PreferenceModel, register_preference
from penchant.models.preference.features import option_features


def _bt_objective(winner: np.ndarray, loser: np.ndarray, n: int, alpha: float):
    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[winner] - theta[loser]
        value = float(np.sum(np.logaddexp(0.0, -d))) + alpha * float(theta @ theta)
        z = 0.5 * (1.0 - np.tanh(d / 2.0))  # σ(−d), overflow-free
        grad = 2.0 * alpha * theta + np.bincount(loser, z, minlength=n) - np.bincount(winner, z, minlength=n)
        return value, grad
    return f


class Strengths(PreferenceModel):
    """A model whose whole state is one strength per option, ``theta_`` (float64 (n_options,))."""

    def _score(self, users: np.ndarray, options: np.ndarray) -> np.ndarray:
        return self.theta_[options]

    def _state(self) -> dict[str, np.ndarray]:
        return {"theta": self.theta_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.theta_ = arrays["theta"]


@register_preference
class BradleyTerry(Strengths):
    """Global Bradley–Terry strengths (ids) or a linear reward on text embeddings.

    Args:
        alpha: L2 penalty (choix's convention: ``alpha·‖θ‖²``).
        features: ``id`` or ``text``.
        tol: L-BFGS gradient tolerance.
    """

    name = "bt"

    def __init__(self, *, alpha: float = 1e-2, features: str = "id", text_model: str = "all-MiniLM-L6-v2",
                 tol: float = 1e-8) -> None:
        if alpha < 0:
            raise ValueError("alpha must be ≥ 0")
        self.alpha, self.features, self.text_model, self.tol = alpha, features, text_model, tol

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None) -> None:
        x = option_features(train, self.features, self.text_model)
        if x is None:
            f = _bt_objective(train.winner, train.loser, train.n_options, self.alpha)
            res = minimize(f, np.zeros(train.n_options), jac=True, method="L-BFGS-B",
                           options={"gtol": self.tol, "maxiter": 10_000})
            self.theta_ = res.x
        else:
            diff = (x[train.winner] - x[train.loser]).astype(np.float64)

            def g(w: np.ndarray) -> tuple[float, np.ndarray]:
                d = diff @ w
                z = 0.5 * (1.0 - np.tanh(d / 2.0))
                return (float(np.sum(np.logaddexp(0.0, -d))) + self.alpha * float(w @ w),
                        2.0 * self.alpha * w - diff.T @ z)

            res = minimize(g, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": self.tol, "maxiter": 10_000})
            self.theta_ = x.astype(np.float64) @ res.x
        self.converged_ = bool(res.success)


@register_preference
class WinRate(Strengths):
    """The majority baseline: each option's smoothed share of training wins,
    (wins + 1) / (comparisons + 2); the option that won more often is predicted to win."""

    name = "winrate"

    def __init__(self) -> None:
        pass

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None) -> None:
        wins = np.bincount(train.winner, minlength=train.n_options)
        games = wins + np.bincount(train.loser, minlength=train.n_options)
        rate = (wins + 1.0) / (games + 2.0)
        self.theta_ = np.log(rate) - np.log1p(-rate)  # log-odds, so margins are comparable to BT's

