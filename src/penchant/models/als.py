"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the `implicit` library, with fold-in.

The confidence of an observed pair is ``1 + alpha · r`` (r = 1 for binary feedback); unobserved
pairs have confidence 1 and preference 0. Fitting is `implicit`'s conjugate-gradient solver;
:meth:`ALS.partial_fit` solves a user's least-squares problem against the fixed item factors, so
a new or changed user is served without refitting.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from penchant.data import Dataset
from penchant.models.base import Validator
from penchant.models.factors import FactorModel
from penchant.models.registry import register
from penchant.models.search import Float, Int


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
        alpha: confidence scale: an observed pair weighs 1 + alpha.
        iterations: ALS sweeps.
        seed: seed of the factor initialisation.
        values: use the data's values (ratings, or the service's feedback weights) as r in the
            confidence 1 + alpha·r; False: every observed pair has r = 1.
    """

    name = "als"
    summary = "implicit-feedback ALS (confidence-weighted MF, via the implicit library) with fold-in"
    search_space = {"factors": Int(8, 256, log=True), "regularization": Float(0.01, 100.0, log=True), "alpha": Float(0.1, 20.0, log=True)}

    def __init__(self, *, factors: int = 64, regularization: float = 20.0, alpha: float = 2.0,
                 iterations: int = 15, seed: int = 0, values: bool = False) -> None:
        if factors < 1 or iterations < 1:
            raise ValueError("factors and iterations must be at least 1")
        if regularization < 0 or alpha < 0:
            raise ValueError("regularization and alpha must be non-negative")
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.values = iterations, seed, values

    def _engine(self):
        engine = _implicit_als(self.factors, self.regularization, self.alpha, self.iterations, self.seed)
        if self.item_factors_ is not None:
            engine.user_factors, engine.item_factors = self.user_factors_, self.item_factors_
        return engine

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads slow it
            engine = _implicit_als(self.factors, self.regularization, self.alpha, self.iterations, self.seed)
            engine.fit(train.matrix("rating") if self.values and train.ratings is not None else train.csr,
                       show_progress=False)
        self._set_factors(engine.user_factors, engine.item_factors)

    def fold_in(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """A user vector for a history of item indices (with values r_i, default 1), leaving the
        model unchanged (safe to call from many threads): the ALS user step
        x = (YᵀY + λI + α Σ r_i y_i y_iᵀ)⁻¹ Σ (1 + α r_i) y_i. float32 (factors,); score items by
        ``item_factors_ @ x``."""
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
        a = cached[1] + self.regularization * np.eye(self.factors) + self.alpha * (history.T * r) @ history
        return np.linalg.solve(a, ((1.0 + self.alpha * r)[:, None] * history).sum(0)).astype(np.float32)

    def partial_fit(self, users: np.ndarray, items: sp.csr_matrix) -> "ALS":
        """Fold users in: recompute their factors from their whole history, items fixed.

        Args:
            users: int (n,) distinct user indices; indices ≥ the current number of users add new users.
            items: CSR (n, n_items), row r the complete interaction history of ``users[r]``.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items = sp.csr_matrix(items, dtype=np.float32)
        grow = int(users.max()) + 1 - self.n_users_ if len(users) else 0
        if grow > 0:
            self.user_factors_ = np.vstack([self.user_factors_, np.zeros((grow, self.factors), np.float32)])
            self.train_ = sp.vstack([self.train_, sp.csr_matrix((grow, self.n_items_), dtype=np.float32)]).tocsr()
            self.n_users_ += grow
        with threadpool_limits(1, "blas"):
            engine = self._engine()
            engine.partial_fit_users(users, items)
        self.user_factors_ = np.ascontiguousarray(engine.user_factors, dtype=np.float32)
        # replace the folded-in users' rows of the seen-items matrix with their given histories
        keep = np.ones(self.n_users_, dtype=np.float32)
        keep[users] = 0.0
        history = sp.csr_matrix((np.ones(items.nnz, np.float32), items.indices, items.indptr), shape=items.shape)
        place = sp.csr_matrix((np.ones(len(users), np.float32), (users, np.arange(len(users)))),
                              shape=(self.n_users_, len(users)))
        self.train_ = (sp.diags(keep) @ self.train_ + place @ history).tocsr()
        return self
