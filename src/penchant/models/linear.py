"""Closed-form linear item-item autoencoders: EASE (Steck, WWW 2019) and EDLAE (Steck, NeurIPS 2020).

Both solve ``min ‖X − XB‖² + Σ_j Λ_j ‖B_j‖²`` subject to ``diag(B) = 0``, whose solution is
``B = I − P · diag(1/diag(P))`` with ``P = (XᵀX + diag(Λ))⁻¹``. EASE uses ``Λ = λ``; EDLAE, the
emphasised denoising autoencoder with dropout probability ``p``, adds ``p/(1−p) · diag(XᵀX)``,
which penalises popular items' weights more, as dropout would.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.linalg

from penchant.data import Dataset
from penchant.models.base import Recommender, Validator
from penchant.models.registry import register
from penchant.models.search import Float


def zero_diagonal_weights(gram: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """B = I − P·diag(1/diag(P)), P = (G + diag(penalty))⁻¹, so diag(B) = 0. (n_items, n_items) float32."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += penalty
    p = scipy.linalg.inv(g, overwrite_a=True, check_finite=False)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


class _LinearAutoencoder(Recommender):
    """Shared fitting: a penalty per candidate setting; the best on validation data is kept."""

    weights_: np.ndarray | None = None

    def _candidates(self) -> list[dict[str, float]]:
        raise NotImplementedError

    def _penalty(self, gram_diag: np.ndarray, setting: dict[str, float]) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        x = train.csr.astype(np.float64)
        gram = np.asarray((x.T @ x).todense())
        diag = np.diag(gram).copy()
        candidates = self._candidates()
        if valid is None or len(candidates) == 1:
            self.chosen_ = self._default() if len(candidates) > 1 else candidates[0]
            self.weights_ = zero_diagonal_weights(gram, self._penalty(diag, self.chosen_))
            return
        self.selection_ = []
        best = (-np.inf, None, None)
        for setting in candidates:
            self.weights_ = zero_diagonal_weights(gram, self._penalty(diag, setting))
            value = valid(self)
            self.selection_.append({**setting, "valid": value})
            if value > best[0]:
                best = (value, setting, self.weights_)
        _, self.chosen_, self.weights_ = best

    def _default(self) -> dict[str, float]:
        raise NotImplementedError

    def selected(self) -> dict[str, float]:
        fixed = {k: v for k, v in self.params().items() if v is not None}
        return {k: v for k, v in getattr(self, "chosen_", {}).items() if k not in fixed}

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.train_ is not None and self.weights_ is not None
        return np.asarray(self.train_[users] @ self.weights_, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        return {"weights": self.weights_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]


LAMBDA_GRID = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


@register
class EASE(_LinearAutoencoder):
    """Embarrassingly shallow autoencoder: min ‖X − XB‖² + λ‖B‖² subject to diag(B) = 0.

    Args:
        lam: L2 regularisation λ. None picks it from a grid (25 … 3200) by the validator's
            score when validation data is given, else uses 400.
    """

    name = "ease"
    summary = "EASE closed-form linear autoencoder (λ chosen on validation data)"
    search_space = {"lam": Float(5.0, 10000.0, log=True)}

    def __init__(self, *, lam: float | None = None) -> None:
        if lam is not None and lam <= 0:
            raise ValueError("lam must be positive")
        self.lam = lam

    def _candidates(self) -> list[dict[str, float]]:
        return [{"lam": self.lam}] if self.lam is not None else [{"lam": v} for v in LAMBDA_GRID]

    def _default(self) -> dict[str, float]:
        return {"lam": 400.0}

    def _penalty(self, gram_diag: np.ndarray, setting: dict[str, float]) -> np.ndarray:
        return np.full_like(gram_diag, setting["lam"])


@register
class EDLAE(_LinearAutoencoder):
    """Emphasised denoising linear autoencoder, full rank, with a zero diagonal.

    Args:
        dropout: dropout probability p of the denoising objective; penalty p/(1−p)·diag(XᵀX).
            None picks it (0.25 … 0.8) on validation data, else 0.5.
        lam: extra L2 weight λ. None picks it (10 … 300) on validation data, else 100.
    """

    name = "edlae"
    summary = "EDLAE: emphasised denoising linear autoencoder (closed form, zero diagonal)"
    search_space = {"dropout": Float(0.05, 0.9), "lam": Float(1.0, 1000.0, log=True)}

    def __init__(self, *, dropout: float | None = None, lam: float | None = None) -> None:
        if dropout is not None and not 0 <= dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if lam is not None and lam < 0:
            raise ValueError("lam must be non-negative")
        self.dropout, self.lam = dropout, lam

    def _candidates(self) -> list[dict[str, float]]:
        ps = [self.dropout] if self.dropout is not None else [0.25, 0.5, 0.67, 0.8]
        lams = [self.lam] if self.lam is not None else [10.0, 100.0, 300.0]
        return [{"dropout": p, "lam": lam} for p, lam in itertools.product(ps, lams)]

    def _default(self) -> dict[str, float]:
        return {"dropout": 0.5 if self.dropout is None else self.dropout, "lam": 100.0 if self.lam is None else self.lam}

    def _penalty(self, gram_diag: np.ndarray, setting: dict[str, float]) -> np.ndarray:
        p = setting["dropout"]
        return setting["lam"] + p / (1 - p) * gram_diag
