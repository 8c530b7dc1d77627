"""SANSA: EASE through a sparse approximate inverse (Spišák, Bartyzal & Schwarz, "Scalable
Approximate NonSymmetric Autoencoder for Collaborative Filtering", RecSys 2023).

EASE's weights are ``B = I − P · diag(1/diag(P))`` with ``P = (XᵀX + λI)⁻¹`` (see
:mod:`penchant.models.linear`); SANSA never forms the dense ``P``. With a fill-reducing symmetric
ordering Π, ``Π(XᵀX + λI)Πᵀ ≈ L D Lᵀ`` (L unit lower-triangular, D diagonal), and
``K ≈ L⁻¹``, ``P ≈ Wᵀ D⁻¹ W`` for ``W = K Π`` (n_items × n_items, sparse). So a user's row ``x``
(1 × n_items) is scored

    s = x + (x Wᵀ) · (D⁻¹ W diag(−1 / diag(Wᵀ D⁻¹ W)))

by two sparse products (the first factor ``Wᵀ``, the second ``D⁻¹ W diag(−1/p)``, both stored),
and the model's size is set by a density budget instead of n_items². The steps, as the paper's:

1. **Factor.** The sparse LDLᵀ of ``XᵀX + λI`` with a fill-reducing ordering, then the factor's
   smallest entries (the Cholesky factor ``L D^{1/2}``'s, by magnitude, over the whole matrix) are
   dropped until it has ``density · n_items²`` entries (the paper's CHOLMOD route: exact
   factorisation, then sparsification).
2. **Invert.** ``K ≈ L⁻¹`` by the paper's Uniform Minimal Residual iteration (:func:`umr_inverse`):
   a start from one Schultz step ``K₀ = 2I − L``, ``scans`` passes over blocks of columns and
   ``finetune_steps`` passes over the worst columns, each column moving along its residual
   ``r_j = e_j − L k_j`` by the minimal-residual step ``⟨r_j, L r_j⟩ / ‖L r_j‖²``, and the whole
   ``K`` cut back to the density budget after every update (global magnitude threshold).
3. **Weights.** ``diag(P)`` is read from the factors; the scores above.

What differs from the paper's code (glami/sansa): the factorisation is SciPy's SuperLU in
symmetric mode (minimum-degree ordering on ``A + Aᵀ``, diagonal pivots only, so ``LU = L D Lᵀ``)
instead of CHOLMOD with COLAMD, and only the "exact factor, then sparsify" route is here: the
incomplete Cholesky (ICF) route that the paper uses for its lowest densities is not, so the fill of
the exact factor (for a dense co-occurrence matrix up to n_items²/2 entries) bounds the catalogue
this fits. With ``density = 1`` nothing is dropped and, once the residual vanishes, the weights are
EASE's exactly (tested).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import HistoryScored, Validator, _sparse_from, _sparse_parts
from penchant.models.linear import LAMBDA_GRID
from penchant.models.registry import register
from penchant.models.search import Float, Int


def sparsify(m: sp.csc_matrix, density: float, keep: sp.csc_matrix | None = None) -> sp.csc_matrix:
    """``m`` with its smallest-magnitude entries dropped until at most ``density · rows · cols``
    remain (a global magnitude threshold, ties dropped together). CSC, a new matrix."""
    m = m.tocsc(copy=True)
    budget = int(density * m.shape[0] * m.shape[1])
    if m.nnz > budget:
        tol = np.quantile(np.abs(m.data), 1.0 - budget / m.nnz)
        m.data[np.abs(m.data) <= tol] = 0.0
        m.eliminate_zeros()
    return m


def ldl_factor(a: sp.csc_matrix) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """Sparse ``LDLᵀ`` of a symmetric positive-definite ``a`` (n, n) with a fill-reducing ordering:
    ``a[perm][:, perm] = L diag(d) Lᵀ``. Returns L (CSC, unit lower-triangular, float64), d
    (float64 (n,)) and perm (int64 (n,))."""
    lu = spla.splu(sp.csc_matrix(a), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    if not np.array_equal(lu.perm_r, lu.perm_c):  # pragma: no cover - SuperLU kept to diagonal pivots
        raise ConfigError("sansa: the symmetric factorisation pivoted off the diagonal (is λ positive?)")
    d = lu.U.diagonal().copy()
    if (d <= 0).any():
        raise ConfigError("sansa: the Gram matrix plus λI is not positive definite; raise lam")
    return lu.L.tocsc(), d, np.argsort(lu.perm_c).astype(np.int64)


def residual(lower: sp.csc_matrix, inverse: sp.csc_matrix) -> sp.csc_matrix:
    """``I − lower · inverse`` (n, n) CSC."""
    return (sp.identity(lower.shape[0], format="csc") - lower @ inverse).tocsc()


def _column_sq_norms(m: sp.csc_matrix) -> np.ndarray:
    return np.asarray(m.multiply(m).sum(axis=0)).ravel()


def _mr_update(lower: sp.csc_matrix, inverse: sp.csc_matrix, res: sp.csc_matrix, cols: np.ndarray,
               density: float) -> sp.csc_matrix:
    """Move columns ``cols`` of ``inverse`` by their minimal-residual steps, then cut to ``density``."""
    n = lower.shape[0]
    r = res[:, cols]
    p = (lower @ r).tocsc()
    sq = _column_sq_norms(p)
    step = np.where(sq > 0, np.asarray(r.multiply(p).sum(axis=0)).ravel() / np.where(sq > 0, sq, 1.0), 0.0)
    place = sp.csr_matrix((step, (np.arange(len(cols)), cols)), shape=(len(cols), n))
    return sparsify(inverse + r @ place, density)


def umr_inverse(lower: sp.csc_matrix, density: float, scans: int = 1, finetune_steps: int = 10,
                log_threshold: float = -7.0) -> sp.csc_matrix:
    """Sparse approximate inverse of a unit lower-triangular ``lower`` (n, n) by the Uniform Minimal
    Residual iteration of SANSA (see the module), at most ``density · n²`` entries. CSC float64.

    Columns are updated ``ceil(n · density)`` at a time; a scan skips columns whose residual norm
    per √n is already below ``10^max(−scan−1, log_threshold)``; a fine-tuning step updates the
    ``ceil(n · density)`` columns with the largest residual norms per √(n − j) (column j of a
    triangular inverse has n − j unknowns)."""
    n = lower.shape[0]
    inverse = sparsify((2.0 * sp.identity(n, format="csc") - lower).tocsc(), density)  # one Schultz step
    width = max(1, int(np.ceil(n * density)))
    for scan in range(1, scans + 1):
        res = residual(lower, inverse)
        norms = np.sqrt(_column_sq_norms(res)) / np.sqrt(n)
        large = norms > 10.0 ** max(-scan - 1, log_threshold)
        for start in range(0, n, width):
            cols = np.flatnonzero(large[start:start + width]) + start
            if len(cols):
                inverse = _mr_update(lower, inverse, res, cols, density)
    for _ in range(finetune_steps):
        res = residual(lower, inverse)
        norms = np.sqrt(_column_sq_norms(res)) / np.sqrt(np.arange(n, 0, -1))
        cols = np.sort(np.argpartition(-norms, min(width, n) - 1)[:width])
        inverse = _mr_update(lower, inverse, res, cols, density)
    return inverse


def sansa_factors(x: sp.csr_matrix, lam: float, density: float, scans: int, finetune_steps: int,
                  ) -> tuple[sp.csr_matrix, sp.csr_matrix, float]:
    """SANSA's two sparse factors for binary user × item CSR ``x``: ``first = Wᵀ`` and
    ``second = D⁻¹ W diag(−1/diag(Wᵀ D⁻¹ W))``, CSR float32 (n_items, n_items) each, and the relative
    Frobenius residual ``‖I − L K‖² / n`` of the inverse."""
    x = (x > 0).astype(np.float64).tocsr()
    n = x.shape[1]
    gram = (x.T @ x).tocsc() + lam * sp.identity(n, format="csc")
    lower, d, perm = ldl_factor(gram)
    del gram
    root = np.sqrt(d)
    cholesky = sparsify((lower @ sp.diags(root)).tocsc(), density)  # prune the Cholesky factor, as the paper
    lower = (cholesky @ sp.diags(1.0 / root)).tocsc()
    lower.setdiag(1.0)
    inverse = umr_inverse(lower, density, scans, finetune_steps)
    loss = float(_column_sq_norms(residual(lower, inverse)).mean())
    w = inverse[:, np.argsort(perm)].tocsc()  # W = K Π: column j belongs to item j
    inv_d = 1.0 / d
    p_diag = np.asarray(w.multiply(w).T @ inv_d).ravel()
    second = (sp.diags(inv_d) @ w @ sp.diags(-1.0 / p_diag)).tocsr()
    return w.T.tocsr().astype(np.float32), second.astype(np.float32), loss


@register
class SANSA(HistoryScored):
    """SANSA: EASE's weights through a sparse LDLᵀ and a sparse approximate inverse (two sparse
    factors within a density budget); see :mod:`penchant.models.sansa`.

    Args:
        lam: L2 weight λ (EASE's units). None picks it from EASE's grid (25 … 3200) on validation
            data, else uses 400.
        density: share of n_items² entries each factor (L and its approximate inverse) may keep.
        scans: passes of the minimal-residual iteration over every column.
        finetune_steps: further steps on the columns with the largest residuals.
    """

    name = "sansa"
    summary = "SANSA: sparse approximate-inverse EASE (sparse LDLᵀ + minimal-residual inverse; density budget)"
    search_space = {"lam": Float(5.0, 10000.0, log=True), "density": Float(0.001, 0.5, log=True),
                    "finetune_steps": Int(0, 30)}

    def __init__(self, *, lam: float | None = None, density: float = 0.05, scans: int = 1,
                 finetune_steps: int = 10) -> None:
        if lam is not None and lam <= 0:
            raise ConfigError("lam must be positive")
        if not 0 < density <= 1:
            raise ConfigError("density must be in (0, 1]")
        if scans < 0 or finetune_steps < 0:
            raise ConfigError("scans and finetune_steps must be non-negative")
        self.lam, self.density, self.scans, self.finetune_steps = lam, density, scans, finetune_steps

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        density = max(self.density, 2.0 / max(train.n_items, 1))  # the diagonal and one more per column
        lams = [self.lam] if self.lam is not None else (list(LAMBDA_GRID) if valid is not None else [400.0])
        self.selection_ = [] if len(lams) > 1 else None
        best = (float("-inf"), 0.0, None)
        for lam in lams:
            self.first_, self.second_, self.residual_ = sansa_factors(train.csr, lam, density, self.scans,
                                                                      self.finetune_steps)
            if len(lams) == 1:
                self.lam_ = lam
                return
            value = valid(self)  # type: ignore[misc]
            self.selection_.append({"lam": lam, "valid": value})  # type: ignore[union-attr]
            if value > best[0]:
                best = (value, lam, (self.first_, self.second_, self.residual_))
        self.lam_ = best[1]
        self.first_, self.second_, self.residual_ = best[2]  # type: ignore[misc]

    def selected(self) -> dict[str, float]:
        return {} if self.lam is not None else {"lam": self.lam_}

    def fit_note(self) -> str:
        nnz = self.first_.nnz + self.second_.nnz
        return f"{nnz:,} weights ({nnz / (2 * self.n_items_ ** 2):.1%} of two dense factors), inverse residual {self.residual_:.1e}"

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        rows = rows.astype(np.float32)
        return np.asarray((rows @ self.first_ @ self.second_).toarray() + rows.toarray(), dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {**_sparse_parts("first", self.first_), **_sparse_parts("second", self.second_),
                "fit": np.array([self.lam_, self.residual_])}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.first_, self.second_ = _sparse_from(arrays, "first"), _sparse_from(arrays, "second")
        self.lam_, self.residual_ = (float(v) for v in arrays["fit"])
