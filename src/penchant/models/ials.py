"""iALS as tuned in Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of iALS on Item
Recommendation Benchmarks" (RecSys 2022).

The loss over user factors W (n_users, d) and item factors H (n_items, d) is

    Σ_{(u,i) observed} (w_u·h_i − 1)²  +  α₀ Σ_u Σ_i (w_u·h_i)²
    + λ Σ_u (|I_u| + α₀|I|)^ν ‖w_u‖²  +  λ Σ_i (|U_i| + α₀|U|)^ν ‖h_i‖²

(α₀ ``unobserved_weight``: every user-item pair, observed or not, is pulled towards 0 with that
weight; ν ``reg_exponent``: ν = 1 scales each row's regulariser with the number of terms its loss
has, ν = 0 is plain L2). Each half-epoch solves every user's (then every item's) least-squares
problem with the other side fixed:

    w_u = (H_{I_u}ᵀ H_{I_u} + α₀ HᵀH + λ_u I)⁻¹ H_{I_u}ᵀ 1,    λ_u = λ (|I_u| + α₀|I|)^ν

exactly (``solver="exact"``, the paper's ``ials_main``: rows bucketed by history length, padded and
solved in batches by ``numpy.linalg.solve``; a row shorter than d through Woodbury's identity, an
|I_u| × |I_u| system in the eigenbasis of HᵀH, instead of the d × d one, see :func:`solve_exact`) or by ``cg_steps`` steps of
conjugate gradient warm-started from the previous factors, run for all rows at once through sparse
products (``solver="cg"``; a cheaper step for large ``factors``; the paper's iALS++ subspace blocks are
not implemented). Factors start N(0, (σ/√d)²). Epochs are fixed (no early stopping), as in the paper.

The paper's tuning protocol (section 4): start from a large dimension, tune α₀ and λ on validation
(ν = 1 fixed), then ν, on a log grid refined around the best point, epochs fixed. Here that is two
``penchant tune`` runs over :attr:`IALS.search_space` (log-uniform ranges: Optuna's TPE plays the
coarse-to-fine grid), the first with ``--param factors=D --param reg_exponent=1``, the second with the
found α₀ fixed, searching ν together with λ, whose scale moves with ν (docs/models.md has the commands).
``benchmarks/bench_splits.py ials`` runs the protocol as a grid instead (α₀ × λ at d = 64 refined, ν
with λ rescaled, then d = 128 and 256), on each split's valid part, every trial recorded.

The defaults are stage 1's choice on ML-100K (per-user 80/10/10, seed 2026, 30 trials at d = 128,
ν = 1): α₀ = 0.24, λ = 0.013 (validation NDCG@10 0.2678). The paper's ML-20M setting is α₀ = 0.1,
λ = 0.003, ν = 1, d up to 2048, 16 epochs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.factors import FactorModel
from penchant.models.registry import register
from penchant.models.search import Float
from penchant.models.weighted_solve import solve_cg  # the CG solve ALS shares

SOLVERS = ("exact", "cg")
#: floats of one exact-solve batch (its padded gathers and its systems, see ``_batches``): 16 MB, which
#: measured faster than 64 MB (ML-100K, d = 128: 4.8 against 7.0 CPU s a fit; the batch stays in cache)
_BATCH_FLOATS = 2_000_000


def row_regularization(counts: np.ndarray, n_other: int, reg: float, unobserved_weight: float,
                       exponent: float) -> np.ndarray:
    """λ·(count + α₀·n_other)^ν per row, float64 (len(counts),): the paper's frequency-scaled L2."""
    return reg * (np.asarray(counts, np.float64) + unobserved_weight * n_other) ** exponent


def _batches(lengths: np.ndarray, order: np.ndarray, d: int) -> Iterator[tuple[np.ndarray, int, bool]]:
    """``(rows, span, woodbury)`` batches of ``order`` (row indices sorted by history length).

    Rows shorter than ``d`` take the Woodbury path (a batch holds rows × span × (2d + span) floats: the
    gather, its scaled copy and the span × span systems), the others the direct path (rows × (span + d)
    × d: the gather and the d × d systems); each batch stays under ``_BATCH_FLOATS`` (one row at least).
    ``span`` is the batch's longest history (at least 1).
    """
    sorted_len = np.maximum(lengths[order], 1)
    cut = int(np.searchsorted(sorted_len, d, side="left"))  # sorted_len[:cut] < d
    for lo, hi, woodbury in ((0, cut, True), (cut, len(order), False)):
        start = lo
        while start < hi:
            span = sorted_len[start:hi]
            per_row = span * (2 * d + span) if woodbury else (span + d) * d
            cost = np.arange(1, hi - start + 1) * per_row  # sorted: the last row's span is the batch's
            stop = start + max(1, int(np.searchsorted(cost, _BATCH_FLOATS, side="right")))
            yield order[start:stop], int(sorted_len[stop - 1]), woodbury
            start = stop


def solve_exact(x: sp.csr_matrix, other: np.ndarray, unobserved_weight: float, reg: np.ndarray) -> np.ndarray:
    """Every row's exact least-squares solution against fixed ``other`` factors.

    ``x``: binary CSR (n_rows, n_other); ``other``: (n_other, d); ``reg``: λ_r per row, (n_rows,).
    Returns float64 (n_rows, d): w_r = (O_{I_r}ᵀO_{I_r} + α₀ OᵀO + λ_r I)⁻¹ O_{I_r}ᵀ 1.

    OᵀO = V diag(s) Vᵀ is diagonalised once, so in the basis Ô = O V every row's system is
    Ĝ_rᵀĜ_r + diag(m_r), m_r = α₀ s + λ_r (Ĝ_r = Ô_{I_r}, the row's |I_r| × d gather), and
    w_r = V ŵ_r. A row with |I_r| ≥ d solves that d × d system (|I_r|·d² + d³ work). A shorter row
    uses Woodbury's identity with D_r = diag(m_r)⁻¹: ŵ_r = D_r Ĝ_rᵀ z_r where
    (I + Ĝ_r D_r Ĝ_rᵀ) z_r = 1, an |I_r| × |I_r| system (|I_r|²·d + |I_r|³ work); on ML-100K at
    d = 128 most rows are such. Rows are sorted by history length and solved in padded batches (a zero
    row of Ô pads; it adds nothing to either path), so no Python loop runs per row. An empty row's
    solution is 0.
    """
    n_rows, d = x.shape[0], other.shape[1]
    o = np.asarray(other, dtype=np.float64)
    s, v = np.linalg.eigh(o.T @ o)
    rotated = np.vstack([o @ v, np.zeros((1, d))])
    lengths = np.diff(x.indptr)
    out = np.zeros((n_rows, d))
    diag = np.arange(d)
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]  # an empty history's solution is 0 (b_r = 0), even where λ_r = 0
    for rows, span, woodbury in _batches(lengths, order, d):
        idx = np.full((len(rows), span), x.shape[1], dtype=np.int64)  # the zero row
        sub = x[rows]
        pos = np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], np.diff(sub.indptr))
        idx[np.repeat(np.arange(len(rows)), np.diff(sub.indptr)), pos] = sub.indices
        g = rotated[idx]  # (batch, span, d)
        m = unobserved_weight * s + reg[rows][:, None]  # (batch, d)
        if woodbury:
            gd = g / m[:, None, :]  # Ĝ D, (batch, span, d)
            k = np.matmul(gd, g.transpose(0, 2, 1))  # (batch, span, span)
            k[:, np.arange(span), np.arange(span)] += 1.0
            z = np.linalg.solve(k, np.ones((len(rows), span, 1)))
            out[rows] = np.matmul(gd.transpose(0, 2, 1), z)[..., 0]
        else:
            a = np.matmul(g.transpose(0, 2, 1), g)
            a[:, diag, diag] += m
            out[rows] = np.linalg.solve(a, g.sum(1)[..., None])[..., 0]
    return out @ v.T


@register
class IALS(FactorModel):
    """iALS with all-pairs unobserved weight and frequency-scaled regularisation (Rendle et al. 2022).

    Args:
        factors: latent dimensions d (the paper: as large as the budget allows, then tune the rest).
        unobserved_weight: α₀, the weight of every pair's (w_u·h_i)² term.
        regularization: λ, scaled per row by (|I_u| + α₀|I|)^ν (items: (|U_i| + α₀|U|)^ν).
        reg_exponent: ν; 1 = the paper's frequency scaling, 0 = plain L2.
        epochs: fixed number of alternating sweeps (users, then items).
        init_std: σ; factors start N(0, (σ/√d)²).
        solver: exact (per-row Cholesky-equivalent solves, batched) or cg (conjugate gradient).
        cg_steps: conjugate-gradient steps per half-epoch when solver=cg.
        seed: seed of the initialisation.
    """

    name = "ials"
    summary = "iALS (Rendle et al. 2022): all-pairs unobserved weight, frequency-scaled L2, batched exact/CG solves"
    search_space = {"unobserved_weight": Float(1e-3, 1.0, log=True), "regularization": Float(1e-4, 1.0, log=True),
                    "reg_exponent": Float(0.0, 1.0)}

    def __init__(self, *, factors: int = 128, unobserved_weight: float = 0.24, regularization: float = 0.013,
                 reg_exponent: float = 1.0, epochs: int = 16, init_std: float = 0.1, solver: str = "exact",
                 cg_steps: int = 3, seed: int = DEFAULT_SEED) -> None:
        if factors < 1 or epochs < 1 or cg_steps < 1:
            raise ConfigError("factors, epochs and cg_steps must be at least 1")
        if regularization <= 0 or unobserved_weight < 0 or init_std < 0:
            raise ConfigError("regularization must be > 0, unobserved_weight and init_std ≥ 0")
        if solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
        self.factors, self.unobserved_weight, self.regularization = factors, unobserved_weight, regularization
        self.reg_exponent, self.epochs, self.init_std = reg_exponent, epochs, init_std
        self.solver, self.cg_steps, self.seed = solver, cg_steps, seed

    def _solve(self, x: sp.csr_matrix, other: np.ndarray, current: np.ndarray) -> np.ndarray:
        reg = row_regularization(np.diff(x.indptr), x.shape[1], self.regularization, self.unobserved_weight,
                                 self.reg_exponent)
        if self.solver == "cg":
            return solve_cg(x, other, self.unobserved_weight, reg, current, self.cg_steps)
        return solve_exact(x, other, self.unobserved_weight, reg)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        x = (train.csr > 0).astype(np.float64).tocsr()
        xt = x.T.tocsr()
        rng = np.random.default_rng(self.seed)
        std = self.init_std / np.sqrt(self.factors)
        w = rng.normal(0.0, std, (x.shape[0], self.factors))
        h = rng.normal(0.0, std, (x.shape[1], self.factors))
        with threadpool_limits(1, "blas"):  # many small solves: one BLAS thread is fastest on a shared machine
            for _ in range(self.epochs):
                w = self._solve(x, h, w)
                h = self._solve(xt, w, h)
        self._set_factors(w, h)

    def fold_in(self, items: np.ndarray) -> np.ndarray:
        """A user vector for a history of item indices, item factors fixed (the training's user step,
        solved exactly); float32 (factors,). The model is unchanged."""
        self._check_fitted()
        assert self.item_factors_ is not None
        items = np.unique(np.asarray(items, dtype=np.int64))
        row = sp.csr_matrix((np.ones(len(items)), items, [0, len(items)]), shape=(1, self.n_items_))
        reg = row_regularization(np.array([len(items)]), self.n_items_, self.regularization, self.unobserved_weight,
                                 self.reg_exponent)
        return solve_exact(row, self.item_factors_, self.unobserved_weight, reg)[0].astype(np.float32)

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item, float32 (n_items,), for a user known only by ``items`` (indices; values
        are not used: feedback is binary), by :meth:`fold_in`; the model is unchanged."""
        assert self.item_factors_ is not None
        return self.item_factors_ @ self.fold_in(items)

    def partial_fit(self, events: Dataset) -> IALS:
        """Add ``events`` to their users' histories (new users included) and re-solve those users'
        factors exactly from the whole history, item factors fixed (:meth:`fold_in`, batched)."""
        ev = self._on_vocabulary(events)
        assert self.user_factors_ is not None and self.item_factors_ is not None
        self._add_seen(ev)
        users = np.unique(ev.users)
        x = self.seen_items()[users]
        reg = row_regularization(np.diff(x.indptr), self.n_items_, self.regularization, self.unobserved_weight,
                                 self.reg_exponent)
        self.user_factors_ = self.user_factors_.copy()  # loaded state may be a read-only map
        self.user_factors_[users] = solve_exact(x, self.item_factors_, self.unobserved_weight, reg)
        return self

    def _grow_users(self, n: int) -> None:
        super()._grow_users(n)
        assert self.user_factors_ is not None
        self.user_factors_ = np.vstack([self.user_factors_, np.zeros((n, self.factors), np.float32)])
