"""RP3β: item-item weights from a three-step random walk, re-ranked against popularity.

Paudel, Christoffel, Mendez & Bernstein, "Updatable, accurate, diverse, and scalable
recommendations for interactive applications" (TiiS 2017). With ``P_ui`` the user→item and
``P_iu`` the item→user transition matrices of the bipartite graph (rows sum to 1), each entry
raised to the power α, the item-item weight is ``W_ij = (P_iu P_ui)_ij / pop_j^β``; each row
keeps its ``k`` largest weights, and ``score(u, j) = Σ_i x_ui W_ij``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.item_item import ItemItemModel
from penchant.models.ranking import neighbours_blockwise
from penchant.models.registry import register
from penchant.models.search import Float, Int


def _row_stochastic(m: sp.csr_matrix) -> sp.csr_matrix:
    deg = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.maximum(deg, 1e-12)) @ m).tocsr()


def rp3beta_weights(x: sp.csr_matrix, alpha: float, beta: float, k: int, block_size: int = 512) -> sp.csr_matrix:
    """Pruned RP3β item-item matrix, CSR (n_items, n_items) float32, zero diagonal.

    ``x`` is the binary user×item CSR; ``block_size`` items are expanded at once (memory block_size × n_items).
    """
    x = x.astype(np.float64)
    p_ui = _row_stochastic(x).power(alpha).tocsr()
    p_iu = _row_stochastic(x.T.tocsr()).power(alpha).tocsr()
    pop = np.asarray(x.sum(axis=0)).ravel()
    inv_pop = np.where(pop > 0, 1.0 / np.maximum(pop, 1.0) ** beta, 0.0)

    def block(start: int, stop: int) -> np.ndarray:
        return (p_iu[start:stop] @ p_ui).toarray() * inv_pop[None, :]

    return neighbours_blockwise(block, x.shape[1], k, block_size)


@register
class RP3Beta(ItemItemModel):
    """Random walk with popularity re-weighting (RP3β).

    Args:
        alpha: exponent on transition probabilities (1 = plain random walk).
        beta: popularity penalty: weights into item j are divided by pop_j^β.
        k: neighbours kept per item.
    """

    name = "rp3beta"
    summary = "RP3β graph random walk with popularity penalty"
    search_space = {"alpha": Float(0.2, 1.5), "beta": Float(0.0, 1.0), "k": Int(20, 500, log=True)}

    def __init__(self, *, alpha: float = 0.6, beta: float = 0.6, k: int = 200) -> None:
        if alpha <= 0 or beta < 0 or k < 1:
            raise ConfigError("alpha must be positive, beta non-negative and k at least 1")
        self.alpha, self.beta, self.k = alpha, beta, k

    def _weights(self, train: Dataset) -> sp.csr_matrix:
        return rp3beta_weights(train.csr, self.alpha, self.beta, self.k)
