"""EASE: a closed-form item-item linear autoencoder with a zero diagonal (Steck, WWW 2019)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from penchant.data import Dataset
from penchant.models.base import Recommender, Validator
from penchant.models.registry import register

DEFAULT_LAMBDA = 400.0
LAMBDA_GRID = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """B = I − P·diag(1/diag(P)) with P = (G + λI)⁻¹, so diag(B) = 0. Shapes (n_items, n_items)."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += lam
    p = scipy.linalg.inv(g, overwrite_a=True, check_finite=False)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


@register
class EASE(Recommender):
    """Embarrassingly shallow autoencoder: min ‖X − XB‖² + λ‖B‖² subject to diag(B) = 0.

    Args:
        lam: L2 regularisation λ. None picks it from a grid (25 … 3200) by the validator's
            score when validation data is given, else uses 400.
    """

    name = "ease"
    summary = "EASE closed-form linear autoencoder (λ chosen on validation data)"

    def __init__(self, *, lam: float | None = None) -> None:
        if lam is not None and lam <= 0:
            raise ValueError("lam must be positive")
        self.lam = lam
        self.lam_: float | None = None
        self.weights_: np.ndarray | None = None
        self.selection_: dict[float, float] = {}

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        x = train.csr.astype(np.float64)
        gram = np.asarray((x.T @ x).todense())
        if self.lam is not None or valid is None:
            self.lam_ = self.lam if self.lam is not None else DEFAULT_LAMBDA
            self.weights_ = ease_weights(gram, self.lam_)
            return
        best = (-np.inf, None, None)
        for lam in LAMBDA_GRID:
            self.weights_ = ease_weights(gram, lam)
            value = valid(self)
            self.selection_[lam] = value
            if value > best[0]:
                best = (value, lam, self.weights_)
        self.lam_, self.weights_ = best[1], best[2]

    def selected(self) -> dict[str, float]:
        return {} if self.lam is not None or self.lam_ is None else {"lam": self.lam_}

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.train_ is not None and self.weights_ is not None
        return np.asarray(self.train_[users] @ self.weights_, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        return {"weights": self.weights_, "lam_": np.array(self.lam_)}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]
        self.lam_ = float(arrays["lam_"])
