"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the `implicit` library, with fold-in.

The confidence of an observed pair is ``1 + alpha · r`` (r = 1 for binary feedback); unobserved
pairs have confidence 1 and preference 0. Fitting is `implicit`'s conjugate-gradient solver;
:meth:`ALS.partial_fit` solves a user's least-squares problem exactly against the fixed item factors,
so a new or changed user is served without refitting.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
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
                 iterations: int = 15, seed: int = DEFAULT_SEED, values: bool = False) -> None:
        if factors < 1 or iterations < 1:
            raise ConfigError("factors and iterations must be at least 1")
        if regularization < 0 or alpha < 0:
            raise ConfigError("regularization and alpha must be non-negative")
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.values = iterations, seed, values

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
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

    def partial_fit(self, events: Dataset) -> "ALS":
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
