"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the `implicit` library, with fold-in.

The confidence of an observed pair is ``alpha · r`` (r = 1 for binary feedback; `implicit` scales
the matrix it is given by alpha and reads the entries as confidences); unobserved pairs have
confidence 1 and preference 0. Fitting is `implicit`'s conjugate-gradient solver;
:meth:`ALS.partial_fit` solves a user's least-squares problem exactly against the fixed item factors,
so a new or changed user is served without refitting.

Inside :func:`penchant.models.distributed.solves_on` (``penchant fit --model als --backend ray``)
the fit is penchant's own instead: each half-step solves every user's (then every item's)
normal equations, A_u x_u = b_u with A_u = YᵀY + λI + Σ (c_i − 1) y_i y_iᵀ and b_u = Σ c_i y_i,
by `implicit`'s own method (three conjugate-gradient steps from the previous factors, A_u never
formed; the solver is :func:`penchant.models.weighted_solve.solve_cg`, iALS's too), in blocks of
rows (:func:`solve_rows`) sent through the given map (one Ray task per block; the matrix and the
other side's factors put into the object store once a half-step).
Factors start uniform in [0, 0.01) from ``seed`` (numpy's generator, not `implicit`'s), users are
solved first, as `implicit` does: the same algorithm, other random numbers.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.distributed import block_solves
from penchant.models.factors import FactorModel
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.weighted_solve import solve_cg

#: blocks a half-step is cut into (at least; each at least MIN_BLOCK_ROWS rows)
BLOCKS, MIN_BLOCK_ROWS = 64, 128
#: conjugate-gradient steps per row and half-step, from the row's previous factors (`implicit`'s default)
CG_STEPS = 3


def solve_rows(shared: tuple, block: tuple[int, int]) -> np.ndarray:
    """The ALS half-step for rows ``start..stop`` of ``x``: float64 (stop − start, f).

    ``shared`` is (``x`` CSR (n, m) of values r, ``y`` float64 (m, f) the other side's factors,
    ``gram`` = yᵀy (f, f), λ, α, ``previous`` float64 (n, f) the rows' factors so far). Each row u
    moves towards the solution of A_u x = b_u, A_u = yᵀy + λI + Σ_i (α r_i − 1) y_i y_iᵀ,
    b_u = Σ_i α r_i y_i over its stored entries i, by :data:`CG_STEPS` conjugate-gradient steps from
    its previous factors, as `implicit`'s CPU solver does, through the solve iALS shares
    (:func:`penchant.models.weighted_solve.solve_cg` with x_ui = c_ui = α r_ui, w_ui = c_ui − 1, α₀ = 1)."""
    x, y, gram, reg, alpha, previous = shared
    start, stop = block
    rows = x[start:stop]
    c = alpha * rows.data.astype(np.float64)
    confidence = sp.csr_matrix((c, rows.indices, rows.indptr), shape=rows.shape)
    return solve_cg(confidence, y, 1.0, reg, previous[start:stop], CG_STEPS, weights=c - 1.0, gram=gram)


def _half_step(run, x, y: np.ndarray, previous: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Every row of ``x`` moved against ``y`` (:func:`solve_rows`), in blocks through ``run``."""
    n = x.shape[0]
    size = max(MIN_BLOCK_ROWS, -(-n // BLOCKS))
    blocks = [(s, min(n, s + size)) for s in range(0, n, size)]
    return np.vstack(run(solve_rows, blocks, (x, y, y.T @ y, reg, alpha, previous)))


def _implicit_als(factors: int, regularization: float, alpha: float, iterations: int, seed: int):
    """implicit's CPU solver; call under ``threadpool_limits(1, "blas")`` (it parallelises itself)."""
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                   iterations=iterations, random_state=seed, calculate_training_loss=False)


@register
class ALS(FactorModel):
    """Weighted matrix factorisation for implicit feedback, solved by alternating least squares.

    Args:
        factors: latent dimensions.
        regularization: L2 weight λ on user and item factors.
        alpha: confidence scale: an observed pair weighs alpha · r (unobserved pairs weigh 1).
        iterations: ALS sweeps.
        seed: seed of the factor initialisation.
        values: use the data's values (ratings, or the service's feedback weights) as r in the
            confidence alpha·r; False: every observed pair has r = 1.
    """

    name = "als"
    summary = "implicit-feedback ALS (confidence-weighted MF, via the implicit library) with fold-in"
    search_space = {"factors": Int(8, 256, log=True), "regularization": Float(0.01, 100.0, log=True), "alpha": Float(0.1, 20.0, log=True)}

    def __init__(self, *, factors: int = 64, regularization: float = 20.0, alpha: float = 2.0,
                 iterations: int = 15, seed: int = DEFAULT_SEED, values: bool = False) -> None:
        if factors < 1 or iterations < 1:
            raise ConfigError("factors and iterations must be at least 1")
        if regularization < 0 or alpha < 0:
            raise ConfigError("regularization and alpha must be non-negative")
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.values = iterations, seed, values

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        run = block_solves()
        if run is not None:  # per-row solves in blocks, e.g. as Ray tasks (see the module)
            x = (train.matrix("rating") if self.values and train.ratings is not None else train.csr).astype(np.float64)
            xt = x.T.tocsr()
            rng = np.random.default_rng(self.seed)
            u, y = (rng.random((n, self.factors)) * 0.01 for n in x.shape)
            for _ in range(self.iterations):
                u = _half_step(run, x, y, u, self.alpha, self.regularization)
                y = _half_step(run, xt, u, y, self.alpha, self.regularization)
            self._set_factors(u.astype(np.float32), y.astype(np.float32))
            if self.values and train.ratings is not None:
                self.train_ = train.matrix("rating")
            return
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads slow it
            engine = _implicit_als(self.factors, self.regularization, self.alpha, self.iterations, self.seed)
            engine.fit(train.matrix("rating") if self.values and train.ratings is not None else train.csr,
                       show_progress=False)
        self._set_factors(engine.user_factors, engine.item_factors)
        if self.values and train.ratings is not None:  # the seen matrix keeps values, for fold-in
            self.train_ = train.matrix("rating")

    def fold_in(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """A user vector for a history of item indices (with values r_i, default 1), leaving the
        model unchanged (safe to call from many threads): the ALS user step
        x = (YᵀY + λI + Σ (α r_i − 1) y_i y_iᵀ)⁻¹ Σ α r_i y_i, the system `implicit` solves with
        confidence c_i = α r_i. float32 (factors,); score items by
        ``item_factors_ @ x``."""
        a, b = self._user_system(items, values)
        return np.linalg.solve(a, b).astype(np.float32)

    def _user_system(self, items: np.ndarray, values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The ALS user step's normal equations for a history, with `implicit`'s confidence c_i = α r_i:
        A = YᵀY + λI + Σ (c_i − 1) y_i y_iᵀ (= YᵀC_uY + λI), float64 (factors, factors), and
        b = Σ c_i y_i (= YᵀC_u p_u), (factors,)."""
        self._check_fitted()
        y = self.item_factors_.astype(np.float64)
        cached = getattr(self, "_gram", None)
        if cached is None or cached[0] is not self.item_factors_:  # refitted since: recompute
            cached = self._gram = (self.item_factors_, y.T @ y)
        items = np.asarray(items, dtype=np.int64)
        r = np.ones(len(items)) if values is None else np.asarray(values, dtype=np.float64)
        uniq, where = np.unique(items, return_inverse=True)
        r = np.bincount(where, r, len(uniq))  # repeated items add up, as in a sparse matrix
        history = y[uniq]
        c = self.alpha * r
        a = cached[1] + self.regularization * np.eye(self.factors) + (history.T * (c - 1.0)) @ history
        return a, (c[:, None] * history).sum(0)

    def sample_user_vectors(self, n: int, rng: np.random.Generator, *, noise: float = 1.0, user: int = -1,
                            items: np.ndarray | None = None, values: np.ndarray | None = None) -> np.ndarray:
        """``n`` draws, float64 (n, factors), of a user's vector from its posterior given the fixed
        item factors Y (the model read as Gaussian: p_ui ~ N(xᵀy_i, σ²/c_ui), prior x ~ N(0, σ²/λ I),
        whose negative log-posterior is the ALS user loss over 2σ²):

            x | Y, p_u  ~  N(x̂, σ² A⁻¹),   A = YᵀC_uY + λI,  b = YᵀC_u p_u  (:meth:`_user_system`),

        centred, as a Laplace approximation, on the model's point estimate of the user's vector: the
        fitted ``user_factors_[user]`` for ``user`` (an index the model was fitted on; their training
        row is the history C_u), else the ALS user step A⁻¹b (:meth:`fold_in`) on the history
        ``items`` (indices) with ``values`` (r_i, read when the model uses values). At an exact ALS
        fixed point the two coincide; `implicit` fits by a few conjugate-gradient steps, so a fitted
        user's factor is close to, not equal to, A⁻¹b: the fitted factor is kept as the centre so
        that σ² → 0 gives the greedy list. ``noise`` is σ², in the units of the
        preferences p (0/1): σ² = 1 is the posterior whose log-density is minus half the ALS loss.
        Draws are x̂ + σ L⁻ᵀz with A = LLᵀ and z standard normal (one Cholesky per call; as rows,
        x̂ᵀ + σ zᵀL⁻¹)."""
        from scipy.linalg import solve_triangular

        if user >= 0:
            assert self.train_ is not None and self.user_factors_ is not None
            row = self.train_[user]
            a, _ = self._user_system(row.indices, row.data if self.values else None)
            mean = self.user_factors_[user].astype(np.float64)
        else:
            a, b = self._user_system(np.empty(0, np.int64) if items is None else items,
                                     values if self.values else None)
            mean = np.linalg.solve(a, b)
        inverse = solve_triangular(np.linalg.cholesky(a), np.eye(self.factors), lower=True)  # L⁻¹, A = LLᵀ
        return mean[None, :] + np.sqrt(noise) * (rng.standard_normal((n, self.factors)) @ inverse)

    def partial_fit(self, events: Dataset) -> ALS:
        """Add ``events`` to what the model knows of their users (new users included) and re-solve
        those users' factors exactly from their whole history, item factors fixed (fold-in: the
        same solve as :meth:`score_history`)."""
        ev = self._on_vocabulary(events)
        assert self.train_ is not None and self.user_factors_ is not None
        added = ev.matrix("rating") if self.values and ev.ratings is not None else ev.csr
        merged = (self.train_ + added).tocsr() if self.values else ((self.train_ + added) > 0).astype(np.float32).tocsr()
        for u in np.unique(ev.users):  # one small solve per user (factors × factors), never per event
            row = merged[u]
            self.user_factors_[u] = self.fold_in(row.indices, row.data if self.values else None)
        self.train_ = merged
        return self

    def _grow_users(self, n: int) -> None:
        super()._grow_users(n)
        assert self.user_factors_ is not None
        self.user_factors_ = np.vstack([self.user_factors_, np.zeros((n, self.factors), np.float32)])

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item, float32 (n_items,), for a user known only by ``items`` (indices, with
        values r_i where the model uses values), by :meth:`fold_in`; the model is unchanged."""
        assert self.item_factors_ is not None
        return self.item_factors_ @ self.fold_in(items, values if self.values else None)
