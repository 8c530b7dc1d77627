"""Item-based k-nearest-neighbours with cosine similarity, shrinkage and neighbour pruning."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.item_item import ItemItemModel
from penchant.models.ranking import neighbours_blockwise
from penchant.models.registry import register
from penchant.models.search import Float, Int, select_on_validation


def cosine_neighbours(x: sp.csr_matrix, k: int, shrink: float, block_size: int = 512) -> sp.csr_matrix:
    """Each item's ``k`` most similar items by shrunk cosine similarity.

    Args:
        x: binary user×item CSR (n_users, n_items).
        k: neighbours kept per item.
        shrink: added to the denominator, damping similarities resting on few co-occurrences.
        block_size: items processed at once (bounds memory to block_size × n_items floats).

    Returns:
        CSR (n_items, n_items) ``N`` where row ``j`` holds ``sim(j, i)`` for ``i`` among ``j``'s
        top-``k`` neighbours (never ``j`` itself).
    """
    n_items = x.shape[1]
    xt = x.T.tocsr().astype(np.float32)
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())

    def block(start: int, stop: int) -> np.ndarray:
        sim = (xt[start:stop] @ xt.T).toarray()
        return sim / (np.outer(norms[start:stop], norms) + shrink + 1e-12)

    return neighbours_blockwise(block, n_items, k, block_size)


@register
class ItemKNN(ItemItemModel):
    """score(u, j) = Σ_{i ∈ items(u) ∩ N_k(j)} sim(i, j), sim the shrunk cosine of item columns.

    Args:
        k: neighbours kept per target item (top-neighbour pruning). None: chosen on validation
            data from 10 … 3200 (9 values), else 100.
        shrink: shrinkage term in the cosine denominator. None: chosen on validation data from
            0, 10, 100, else 10.
    """

    name = "itemknn"
    summary = "item-based kNN, cosine with shrinkage and top-k neighbour pruning (k, shrink chosen on validation)"
    search_space = {"k": Int(10, 3200, log=True), "shrink": Float(0.0, 200.0)}
    K_GRID = (10, 20, 50, 100, 200, 400, 800, 1600, 3200)
    SHRINK_GRID = (0.0, 10.0, 100.0)

    def __init__(self, *, k: int | None = None, shrink: float | None = None) -> None:
        if k is not None and k < 1:
            raise ConfigError("k must be at least 1")
        if shrink is not None and shrink < 0:
            raise ConfigError("shrink must be non-negative")
        self.k = k
        self.shrink = shrink

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        ks = [self.k] if self.k is not None else list(self.K_GRID)
        shrinks = [self.shrink] if self.shrink is not None else list(self.SHRINK_GRID)
        if valid is None or len(ks) * len(shrinks) == 1:
            self.chosen_ = {"k": 100 if self.k is None else self.k, "shrink": 10.0 if self.shrink is None else self.shrink}
            self.weights_ = self._neighbours(train, **self.chosen_)
            return
        grid = [{"k": k, "shrink": shrink} for shrink in shrinks for k in ks]
        self.chosen_ = select_on_validation(self, grid, lambda setting: self._neighbours(train, **setting), valid)

    def selected(self) -> dict[str, float]:
        return {key: v for key, v in getattr(self, "chosen_", {}).items() if getattr(self, key) is None}

    @staticmethod
    def _neighbours(train: Dataset, k: int, shrink: float) -> sp.csr_matrix:
        # score = X @ Nᵀ: column j of Nᵀ holds target j's neighbours.
        return cosine_neighbours(train.csr, k, shrink).T.tocsr()
