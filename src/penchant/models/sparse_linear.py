"""A sparse linear item model for catalogues too large for EASE's dense item × item inverse.

EASE's objective ``‖X − XB‖² + λ‖B‖²`` with ``diag(B) = 0`` separates into one ridge regression
per target item j on all other items. Feature-selection SLIM (Ning & Karypis, "SLIM: Sparse
Linear Methods for Top-N Recommender Systems", ICDM 2011, §fsSLIM) restricts each regression to a
small neighbourhood of j; Steck ("Markov Random Fields for Collaborative Filtering", NeurIPS
2019) shows that a sparsified Gram matrix keeps the accuracy of the dense solve at a fraction of
its cost. Here, with ``G = XᵀX``:

* N(j) is the ``neighbours`` items that co-occur most with j (j excluded);
* the weights of target j solve ``(G[N,N] + λI) b = G[N,j]`` — ridge only (SLIM's L1 term is
  dropped, so each solve is closed-form) — where ``G[N,N]`` is read from a *pruned* Gram matrix
  that keeps, for every item, its ``pool × neighbours`` largest co-occurrences (symmetrised) plus
  the exact diagonal;
* ``W[N(j), j] = b`` and nothing else, so W has ``neighbours`` entries per column.

With every other item as neighbour (and a pool that keeps the whole Gram) this is EASE exactly.
Memory is ``O(n_items · pool · neighbours)`` plus one block of ``block × n_items`` Gram rows.

The targets' solves are independent: inside :func:`penchant.models.distributed.solves_on`
(``penchant fit --model fsslim --backend ray``) each block of targets is one Ray task
(:func:`solve_targets`, the pruned Gram, neighbour lists, right-hand sides and diagonal put into the
object store once), with the same weights as the fit in this process. The co-occurrence counting
before it (:func:`top_cooccurrences`) stays in the driver.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.distributed import block_solves
from penchant.models.item_item import ItemItemModel
from penchant.models.registry import register
from penchant.models.search import Float, Int

ROW_BUDGET_BYTES = 256 << 20  # Gram rows computed at once
SOLVE_BLOCK = 512  # targets solved at once, fewer when SOLVE_BLOCK × neighbours² float64 passes the budget
BATCH_BYTES = 256 * 1024 * 1024  # the budget of one batch of sub-Grams, and of a dense pruned Gram


def top_cooccurrences(x: sp.csr_matrix, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``keep`` largest co-occurrence counts with other items, largest first.

    Args:
        x: binary user × item CSR (n_users, n_items).
        keep: how many to keep per item (capped at n_items − 1).

    Returns:
        ``(items, counts)``: int32 (n_items, keep) partner indices and float64 (n_items, keep)
        counts ``G[j, items[j, t]]``; slots beyond an item's partners hold count 0 (and any index).
    """
    n = x.shape[1]
    keep = min(keep, n - 1)
    xt = x.T.tocsr().astype(np.float32)
    xc = x.tocsc().astype(np.float32)
    items = np.zeros((n, keep), dtype=np.int32)
    counts = np.zeros((n, keep), dtype=np.float64)
    block = max(1, ROW_BUDGET_BYTES // (4 * max(n, 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = (xt[start:stop] @ xc).toarray()  # G[start:stop, :], exact small integers in float32
        rows[np.arange(stop - start), np.arange(start, stop)] = -1.0  # never one's own partner
        top = np.argpartition(-rows, keep - 1, axis=1)[:, :keep]
        vals = np.take_along_axis(rows, top, axis=1)
        order = np.lexsort((top, -vals), axis=1)
        items[start:stop] = np.take_along_axis(top, order, axis=1)
        counts[start:stop] = np.maximum(np.take_along_axis(vals, order, axis=1), 0.0)
    return items, counts


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``values`` at ``query`` keys (sorted int64 ``keys``), 0 where absent; shape of ``query``."""
    if not len(keys):
        return np.zeros(query.shape)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], 0.0)


def solve_targets(shared: tuple, span: tuple[int, int]) -> np.ndarray:
    """The ridge weights of targets ``start:stop`` (``span``): float64 (stop − start, m), row t
    solving ``(G[N,N] + λI) b = G[N,j]`` for target j = start + t on its neighbours N = ``nbr[j]``.

    ``shared`` is ``(keys, values, dense, nbr, rhs, diag, lam)``, built once by
    :func:`pruned_ridge_weights`: the pruned Gram as sorted int64 keys ``row · n + col`` and their
    float64 counts, or (small catalogues) ``dense``, the same Gram as an (n, n) float64 array (None
    otherwise); int64 (n, m) neighbour lists; float64 (n, m) right-hand sides ``G[nbr[j], j]``;
    float64 (n,) the exact diagonal ``G[j, j]``; λ. Every fit of the model, in this process or as
    one Ray task per block (:mod:`penchant.backends.ray_train`), solves its blocks here.
    """
    keys, values, dense, nbr, rhs, diag, lam = shared
    start, stop = span
    n, m = len(diag), nbr.shape[1]
    a_idx = nbr[start:stop]
    if dense is not None:
        a = dense[a_idx[:, :, None], a_idx[:, None, :]]
    else:
        a = _lookup(keys, values, a_idx[:, :, None] * n + a_idx[:, None, :])
    diagonal = np.arange(m)
    a[:, diagonal, diagonal] = diag[a_idx] + lam
    return np.linalg.solve(a, rhs[start:stop, :, None])[:, :, 0]


def pruned_ridge_weights(x: sp.csr_matrix, neighbours: int, lam: float, pool: int,
                         run: Callable[..., list] | None = None) -> sp.csr_matrix:
    """W (n_items, n_items) CSR float32: column j holds the ridge weights of target j on N(j).

    Args:
        x: binary user × item CSR (n_users, n_items).
        neighbours, lam, pool: as :class:`FSSLIM`'s.
        run: where the blocks of targets are solved, ``run(fn, spans, shared) -> [fn(shared, s) for
            s in spans]`` in order (a backend's map: one Ray task per block, ``shared`` put into the
            object store once); None: one after the other in this process. Either way each block is
            :func:`solve_targets` on the same ``shared``, so the weights are the same.
    """
    n = x.shape[1]
    diag = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    partners, counts = top_cooccurrences(x, max(neighbours, pool * neighbours))
    m = min(neighbours, partners.shape[1])
    # the pruned symmetric Gram, as sorted row-major keys: a pair kept by either item
    kept = counts > 0
    src = np.repeat(np.arange(n, dtype=np.int64), kept.sum(axis=1))
    dst = partners[kept].astype(np.int64)
    vals = counts[kept]
    keys = np.concatenate([src * n + dst, dst * n + src])
    gram_vals = np.concatenate([vals, vals])
    keys, first = np.unique(keys, return_index=True)
    gram_vals = gram_vals[first]

    # every slot holds a distinct other item (an item with fewer than m co-occurring partners is
    # regressed on some it never co-occurs with too: their coupling through the others still counts,
    # as in EASE)
    nbr, rhs = partners[:, :m].astype(np.int64), counts[:, :m]
    dense = None
    if n * n * 8 <= BATCH_BYTES:  # a small catalogue: gather from the dense pruned Gram, not by search
        dense = np.zeros(n * n)
        dense[keys] = gram_vals
        dense = dense.reshape(n, n)
    block = max(1, min(SOLVE_BLOCK, BATCH_BYTES // (8 * m * m)))
    spans = [(start, min(n, start + block)) for start in range(0, n, block)]
    shared = (keys, gram_vals, dense, nbr, rhs, diag, lam)
    parts = run(solve_targets, spans, shared) if run is not None else [solve_targets(shared, s) for s in spans]
    weights = np.concatenate(parts) if parts else np.zeros((0, m))
    cols = np.repeat(np.arange(n), m)
    return sp.csr_matrix((weights.ravel().astype(np.float32), (nbr.ravel(), cols)), shape=(n, n))


@register
class FSSLIM(ItemItemModel):
    """Sparse linear item model: each target item's ridge regression on its most co-occurring items
    (feature-selection SLIM with an L2 penalty, solved in closed form on a pruned Gram matrix).

    Args:
        neighbours: items each target is regressed on (the non-zeros per column of W).
        lam: L2 weight λ, in EASE's units (EASE's λ transfers).
        pool: the pruned Gram keeps ``pool × neighbours`` co-occurrences per item, from which the
            neighbours' mutual entries are read (larger: closer to the exact sub-Gram, more memory).
    """

    name = "fsslim"
    summary = "sparse linear model: ridge on each item's top co-occurring items (fsSLIM, pruned Gram; for catalogues EASE cannot hold)"
    search_space = {"neighbours": Int(16, 512, log=True), "lam": Float(5.0, 10000.0, log=True)}

    def __init__(self, *, neighbours: int = 128, lam: float = 400.0, pool: int = 4) -> None:
        if neighbours < 1 or pool < 1:
            raise ConfigError("neighbours and pool must be at least 1")
        if lam <= 0:
            raise ConfigError("lam must be positive")
        self.neighbours, self.lam, self.pool = neighbours, lam, pool

    def _weights(self, train: Dataset) -> sp.csr_matrix:
        # inside solves_on (`penchant fit --model fsslim --backend ray`): the blocks as Ray tasks
        return pruned_ridge_weights(train.csr, self.neighbours, self.lam, self.pool, run=block_solves())
