"""Closed-form linear item-item autoencoders: EASE (Steck, WWW 2019), EDLAE (Steck, NeurIPS 2020)
and DLAE with data-adaptive normalisation (Park et al., SIGIR 2025).

EASE and EDLAE solve ``min ‖X − XB‖² + Σ_j Λ_j ‖B_j‖²`` subject to ``diag(B) = 0``, whose solution
is ``B = I − P · diag(1/diag(P))`` with ``P = (XᵀX + diag(Λ))⁻¹``. EASE uses ``Λ = λ``; EDLAE, the
emphasised denoising autoencoder with dropout probability ``p``, adds ``p/(1−p) · diag(XᵀX)``,
which penalises popular items' weights more, as dropout would. DLAE drops the diagonal constraint
(``B = I − P · diag(Λ)``, the closed form of the dropout objective) and learns from a Gram matrix
in which each user is down-weighted by their activity, ``Xᵀ D_U^{−β} X``.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import HistoryScored, Validator
from penchant.models.registry import register
from penchant.models.search import Float, select_on_validation

#: bytes per item × item cell at the peak of a fit: the float64 Gram, its Cholesky factor and the
#: float64 inverse; when several settings are tried on validation data, also a working copy of the
#: Gram and the current and best float32 weights
CELL_BYTES_ONE, CELL_BYTES_SELECTING = 24, 40
GRAM_BLOCK = 2048


def gram_matrix(left: sp.csr_matrix, right: sp.csr_matrix) -> np.ndarray:
    """Dense ``leftᵀ right``, float64 (n_items, n_items), built a block of columns at a time so that
    the sparse product never holds more than one block (a full sparse co-occurrence matrix can be
    larger than the dense one)."""
    n = left.shape[1]
    out = np.empty((n, n), dtype=np.float64)
    lt = left.T.tocsr()
    right = right.tocsc()
    for start in range(0, n, GRAM_BLOCK):
        stop = min(n, start + GRAM_BLOCK)
        out[:, start:stop] = (lt @ right[:, start:stop]).toarray()
    return out


def spd_inverse(g: np.ndarray) -> np.ndarray:
    """(g)⁻¹, float64, for a symmetric positive-definite float64 ``g``, by Cholesky through torch's
    LAPACK (MKL): half the work of an LU inverse. The OpenBLAS that numpy and scipy bundle crashed
    (segfault) inverting 17,000 × 17,000 (scipy) and 26,744 × 26,744 (numpy) matrices on this
    machine; MKL did not. Callers drop their own reference to ``g`` to free it early."""
    import torch

    factor = torch.linalg.cholesky(torch.from_numpy(g))
    return torch.cholesky_inverse(factor).numpy()


def zero_diagonal_weights(gram: np.ndarray, penalty: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """B = I − P·diag(1/diag(P)), P = (G + diag(penalty))⁻¹, so diag(B) = 0. (n_items, n_items) float32.
    ``overwrite``: add the penalty to ``gram`` itself (it is changed) instead of a copy."""
    g = gram if overwrite else gram.copy()
    g[np.diag_indices_from(g)] += penalty
    p = spd_inverse(g)
    del g, gram  # when overwriting, the caller holds no other reference: the Gram is freed here
    p /= -np.diag(p)
    p[np.diag_indices_from(p)] = 0.0
    # row-major: LAPACK hands back a column-major inverse, and a CSR × column-major product makes
    # scipy copy the whole matrix on every call (21 ms instead of 0.2 ms per user on ML-100K)
    return p.astype(np.float32, order="C")


class _LinearAutoencoder(HistoryScored):
    """Shared fitting: a penalty per candidate setting; the best on validation data is kept."""

    weights_: np.ndarray | None = None

    def _candidates(self) -> list[dict[str, float]]:
        raise NotImplementedError

    def _penalty(self, gram_diag: np.ndarray, setting: dict[str, float]) -> np.ndarray:
        raise NotImplementedError

    def _gram_key(self, setting: dict[str, float]) -> float:
        """Settings with equal keys share one Gram matrix."""
        return 0.0

    def _gram(self, x: sp.csr_matrix, setting: dict[str, float]) -> np.ndarray:
        return gram_matrix(x, x)

    def _weights(self, gram: np.ndarray, setting: dict[str, float], overwrite: bool) -> np.ndarray:
        return zero_diagonal_weights(gram, self._penalty(np.diag(gram).copy(), setting), overwrite=overwrite)

    def memory_need(self, train: Dataset, valid: Validator | None) -> tuple[int, str, tuple[str, ...]]:
        selecting = valid is not None and len(self._candidates()) > 1
        cells = train.n_items ** 2
        what = (f"a dense {train.n_items:,} × {train.n_items:,} item matrix (the float64 Gram matrix, its Cholesky "
                f"factor and inverse, then float32 weights{'; with the kept Gram and the best weights while settings are tried' if selecting else ''})")
        return cells * (CELL_BYTES_SELECTING if selecting else CELL_BYTES_ONE) + (256 << 20), what, ("als", "fsslim", "itemknn", "rp3beta")

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        x = train.csr.astype(np.float64)
        cache: dict[float, np.ndarray] = {}
        candidates = self._candidates()
        one = valid is None or len(candidates) == 1

        def weights(setting: dict[str, float]) -> np.ndarray:
            key = self._gram_key(setting)
            if key not in cache:
                cache.clear()  # candidates come grouped by key; one dense Gram at a time
                cache[key] = self._gram(x, setting)
            return self._weights(cache.pop(key) if one else cache[key], setting, overwrite=one)

        if one:
            self.chosen_ = self._default() if len(candidates) > 1 else candidates[0]
            self.weights_ = weights(self.chosen_)
            return
        self.chosen_ = select_on_validation(self, candidates, weights, valid)

    def _default(self) -> dict[str, float]:
        raise NotImplementedError

    def selected(self) -> dict[str, float]:
        fixed = {k: v for k, v in self.params().items() if v is not None}
        return {k: v for k, v in getattr(self, "chosen_", {}).items() if k not in fixed}

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        assert self.weights_ is not None
        return np.asarray(rows @ self.weights_, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        return {"weights": self.weights_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.ascontiguousarray(arrays["weights"])  # an artefact saved column-major: one copy now


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
            raise ConfigError("lam must be positive")
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
            raise ConfigError("dropout must be in [0, 1)")
        if lam is not None and lam < 0:
            raise ConfigError("lam must be non-negative")
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


@register
class DLAE(_LinearAutoencoder):
    """Denoising linear autoencoder with data-adaptive normalisation (DAN, Park et al. SIGIR 2025).

    With user activity ``n_u`` and item counts ``c_j`` (training interactions), the Gram matrix is
    ``G_β = Xᵀ diag(n_u^{−β}) X`` (active users' co-occurrences count less, which curbs the pull of
    local item neighbourhoods), the penalty ``Λ = s·λ + p/(1−p)·diag(G_β)`` (dropout on the
    normalised input; ``s = mean diag(G_β) / mean diag(XᵀX)`` keeps λ in EASE's units for every β),
    ``B = I − (G_β + diag(Λ))⁻¹ diag(Λ)``, and the item-side normalisation
    ``W_ij = B_ij · (c_i / c_j)^γ`` (γ > 0 demotes popular targets). The diagonal of ``W`` is set to
    zero: it only scores items the user already has. Unset parameters are chosen on validation data
    from β ∈ {0.25, 0.5, 0.75}, p ∈ {0.1, 0.25, 0.5}, λ ∈ {200, 400, 800} (γ = 0 unless given).

    Args:
        user_norm: β, the exponent of the user-activity normalisation (0 = none).
        dropout: p, the dropout probability of the denoising objective.
        lam: λ, an L2 weight added to every item's penalty.
        item_norm: γ, the exponent of the item-popularity normalisation (0 = none).
    """

    name = "dlae"
    summary = "DLAE with data-adaptive user/item normalisation (closed form; DAN)"
    search_space = {"user_norm": Float(0.0, 1.0), "dropout": Float(0.0, 0.8),
                    "lam": Float(10.0, 5000.0, log=True), "item_norm": Float(-0.3, 0.3)}

    def __init__(self, *, user_norm: float | None = None, dropout: float | None = None,
                 lam: float | None = None, item_norm: float = 0.0) -> None:
        if user_norm is not None and not 0 <= user_norm <= 2:
            raise ConfigError("user_norm must be in [0, 2]")
        if dropout is not None and not 0 <= dropout < 1:
            raise ConfigError("dropout must be in [0, 1)")
        if lam is not None and lam <= 0:
            raise ConfigError("lam must be positive")
        self.user_norm, self.dropout, self.lam, self.item_norm = user_norm, dropout, lam, float(item_norm)

    def _candidates(self) -> list[dict[str, float]]:
        betas = [self.user_norm] if self.user_norm is not None else [0.25, 0.5, 0.75]
        ps = [self.dropout] if self.dropout is not None else [0.1, 0.25, 0.5]
        lams = [self.lam] if self.lam is not None else [200.0, 400.0, 800.0]
        return [{"user_norm": b, "dropout": p, "lam": lam, "item_norm": self.item_norm}
                for b, p, lam in itertools.product(betas, ps, lams)]

    def _default(self) -> dict[str, float]:
        pick = lambda given, fallback: fallback if given is None else given  # noqa: E731
        return {"user_norm": pick(self.user_norm, 0.5), "dropout": pick(self.dropout, 0.25),
                "lam": pick(self.lam, 400.0), "item_norm": self.item_norm}

    def _gram_key(self, setting: dict[str, float]) -> float:
        return setting["user_norm"]

    def _gram(self, x: sp.csr_matrix, setting: dict[str, float]) -> np.ndarray:
        activity = np.maximum(np.diff(x.indptr), 1).astype(np.float64)
        weighted = (sp.diags(activity ** -setting["user_norm"]) @ x).tocsr()
        gram = gram_matrix(weighted, x)
        self.counts_ = np.asarray(x.sum(axis=0)).ravel()
        self.scale_ = float(np.diag(gram).mean() / max(self.counts_.mean(), 1e-12))
        return gram

    def _weights(self, gram: np.ndarray, setting: dict[str, float], overwrite: bool) -> np.ndarray:
        p = setting["dropout"]
        penalty = self.scale_ * setting["lam"] + p / (1 - p) * np.diag(gram)
        g = gram if overwrite else gram.copy()
        g[np.diag_indices_from(g)] += penalty
        w = spd_inverse(g)
        del g, gram
        w *= -penalty[None, :]
        gamma = setting["item_norm"]
        if gamma:
            pop = np.maximum(self.counts_, 1.0) ** gamma
            w *= pop[:, None] / pop[None, :]
        w[np.diag_indices_from(w)] = 0.0  # I − PΛ off the diagonal; the diagonal only scores seen items
        return w.astype(np.float32)
