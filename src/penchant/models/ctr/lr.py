"""Logistic regression on the one-hot features: the CTR baseline every ranking paper starts from.

P(click | x) = σ(b + Σ_j w_j x_j) over the row's feature ids (one-hot; each value of a multi-valued
field counts 1) and its standardised numbers. Fitted by L-BFGS (scipy) on the mean log loss plus
``l2``/2·‖w‖² (the bias not penalised); with validation rows, the weights of the iteration with the
lowest validation log loss are kept, and fitting stops after ``patience`` iterations without a new
lowest.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data.ctr import CTRData
from penchant.errors import ConfigError
from penchant.models.ctr.base import CTRModel, mean_log_loss
from penchant.models.registry import register
from penchant.models.search import Float


def design_matrix(data: CTRData) -> sp.csr_matrix:
    """CSR float64 (n, n_features + D): a 1 per feature id of a row (padding dropped), then the
    row's standardised numbers."""
    n, slots = data.codes.shape
    rows = np.repeat(np.arange(n), slots)
    cols = data.codes.ravel()
    keep = cols < data.n_features
    onehot = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, data.n_features))
    if data.dense.shape[1]:
        onehot = sp.hstack([onehot, sp.csr_matrix(data.dense.astype(np.float64))], format="csr")
    return onehot


class _Stop(Exception):
    pass


@register
class LogisticRegression(CTRModel):
    """Logistic regression on one-hot features and standardised numbers (L2, L-BFGS).

    Args:
        l2: L2 strength on the weights (per row: the objective is the mean log loss + l2/2·‖w‖²).
        max_iter: most L-BFGS iterations.
        patience: with validation rows, iterations without a lower validation log loss before stopping.
    """

    name = "lr"
    aliases = ("logistic",)
    summary = "Logistic regression on one-hot features (L2, L-BFGS)"
    search_space = {"l2": Float(1e-7, 1e-2, log=True)}

    def __init__(self, *, l2: float = 1e-5, max_iter: int = 300, patience: int = 10) -> None:
        if l2 < 0 or max_iter < 1 or patience < 1:
            raise ConfigError(f"model 'lr': l2 must be >= 0, max_iter and patience >= 1 (got {l2}, {max_iter}, {patience})")
        self.l2, self.max_iter, self.patience = l2, max_iter, patience
        self.weights_: np.ndarray | None = None
        self.bias_ = 0.0

    def _fit(self, train: CTRData, valid: CTRData | None) -> None:
        from scipy.optimize import minimize  # not at import: every registry look-up imports this module

        X, y = design_matrix(train), train.label.astype(np.float64)
        Xv = design_matrix(valid) if valid is not None else None
        n = len(y)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = X @ theta[1:] + theta[0]
            p = 0.5 * (1.0 + np.tanh(0.5 * z))
            loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * self.l2 * theta[1:] @ theta[1:]
            r = (p - y) / n
            return float(loss), np.concatenate([[r.sum()], X.T @ r + self.l2 * theta[1:]])

        best = {"loss": np.inf, "theta": None, "iteration": 0, "bad": 0, "it": 0}

        def watch(theta: np.ndarray) -> None:
            best["it"] += 1
            value = mean_log_loss(valid.label, Xv @ theta[1:] + theta[0])
            if value < best["loss"]:
                best.update(loss=value, theta=theta.copy(), iteration=best["it"], bad=0)
            else:
                best["bad"] += 1
                if best["bad"] >= self.patience:
                    raise StopIteration

        theta0 = np.zeros(X.shape[1] + 1)
        theta0[0] = np.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))  # start at the base rate
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                          callback=watch if Xv is not None else None, options={"maxiter": self.max_iter, "ftol": 1e-12, "gtol": 1e-7})
        theta = best["theta"] if best["theta"] is not None else result.x
        if best["theta"] is not None:
            self.best_epoch_, self.valid_log_loss_ = best["iteration"], float(best["loss"])
        self.bias_, self.weights_ = float(theta[0]), theta[1:].copy()

    def _predict_logits(self, data: CTRData) -> np.ndarray:
        assert self.weights_ is not None
        return design_matrix(data) @ self.weights_ + self.bias_

    def selected(self) -> dict:
        return {} if self.best_epoch_ is None else {"iteration": self.best_epoch_}

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        return {"weights": self.weights_, "bias": np.array([self.bias_])}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.array(arrays["weights"], dtype=np.float64)
        self.bias_ = float(arrays["bias"][0])
