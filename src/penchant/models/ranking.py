"""Top-K selection with seen items excluded: the one place where exclusion happens.

Evaluation, :meth:`Recommender.recommend` and the service all call :func:`top_k`, so an item
a user already has can never slip into one path and not another.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

DEFAULT_BUDGET_BYTES = 128 * 1024 * 1024


def chunk_size(n_items: int, budget_bytes: int = DEFAULT_BUDGET_BYTES, bytes_per_cell: int = 8) -> int:
    """How many users' full score rows fit the memory budget at once (at least 1)."""
    return max(1, budget_bytes // max(1, n_items * bytes_per_cell))


def mask_rows(scores: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Set ``scores[r, j] = -inf`` wherever ``exclude[r, j]`` is stored; in place, returns scores.

    ``scores`` is (n, n_items) float; ``exclude`` is CSR (n, n_items), one row per score row.
    """
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    return scores


#: score matrices at least this large (cells) are cut by ``torch.topk`` (parallel over rows, about
#: twice numpy's ``argpartition`` per core); smaller ones by numpy, sparing the torch import. Both
#: give the same lists: the cut is exact and ties are settled by item index below.
TORCH_CELLS = 1 << 20


def _candidates_numpy(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries per row (any order), int64 (n, k), and the (k+1)-th largest value
    per row (n,), which tells whether the cut went through a tie. Needs ``k < n_items``."""
    n_items = scores.shape[1]
    part = np.argpartition(scores, n_items - k - 1, axis=1)[:, n_items - k - 1:]
    return part[:, 1:], np.take_along_axis(scores, part[:, :1], axis=1)[:, 0]


def _candidates_torch(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_candidates_numpy`, by ``torch.topk`` on the same memory (no copy)."""
    import torch

    values, index = torch.topk(torch.from_numpy(scores), k + 1, dim=1, sorted=True)
    return index[:, :k].numpy(), values[:, k].numpy()


def _settle_boundary_ties(scores: np.ndarray, cand: np.ndarray, rows: np.ndarray, kth: np.ndarray, k: int) -> None:
    """In ``rows``, where items tied at the k-th score ``kth`` (one per row) were cut arbitrarily,
    keep every item above it, then the tied items by lowest index until k are taken (in place on ``cand``)."""
    sub, bound = scores[rows], kth[:, None]
    above = sub > bound
    tied = sub == bound
    slots = k - above.sum(axis=1)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= slots[:, None]))
    cand[rows] = np.argsort(~chosen, axis=1, kind="stable")[:, :k]


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items per row, best first, after masking ``exclude``.

    Args:
        scores: (n, n_items) float scores (finite or -inf); modified in place by the masking.
        k: list length (capped at n_items).
        exclude: CSR (n, n_items) of items to leave out per row, or None.

    Returns:
        ``(items, values)``: int32 (n, k) item indices and float32 (n, k) scores. Excluded
        items come last with score -inf only if a row has fewer than k others. Equal scores
        are ordered by item index.
    """
    mask_rows(scores, exclude)
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k == 0:
        return np.empty((scores.shape[0], 0), np.int32), np.empty((scores.shape[0], 0), np.float32)
    if k < n_items:
        big = scores.size >= TORCH_CELLS and scores.dtype == np.float32 and scores.flags.c_contiguous
        cand, next_best = (_candidates_torch if big else _candidates_numpy)(scores, k)
        vals = np.take_along_axis(scores, cand, axis=1)
        kth = vals.min(axis=1)
        cut_ties = np.flatnonzero(next_best == kth)  # an item left out scores as much as one kept
        if len(cut_ties):
            _settle_boundary_ties(scores, cand, cut_ties, kth[cut_ties], k)
            vals[cut_ties] = np.take_along_axis(scores[cut_ties], cand[cut_ties], axis=1)
    else:
        cand = np.broadcast_to(np.arange(n_items), scores.shape).copy()
        vals = np.take_along_axis(scores, cand, axis=1)
    order = np.lexsort((cand, -vals), axis=1)
    items = np.take_along_axis(cand, order, axis=1).astype(np.int32)
    return items, np.take_along_axis(vals, order, axis=1).astype(np.float32)


def keep_top_k_per_row(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """CSR (n_rows, n_cols) keeping each row's ``k`` largest positive entries of ``dense``."""
    n_rows, n_cols = dense.shape
    k = min(k, n_cols)
    top = np.argpartition(-dense, k - 1, axis=1)[:, :k] if k < n_cols else np.tile(np.arange(n_cols), (n_rows, 1))
    values = np.take_along_axis(dense, top, axis=1)
    keep = (values > 0).ravel()
    rows = np.repeat(np.arange(n_rows), top.shape[1])[keep]
    return sp.csr_matrix((values.ravel()[keep], (rows, top.ravel()[keep])), shape=(n_rows, n_cols), dtype=np.float32)


def neighbours_blockwise(similarities: Callable[[int, int], np.ndarray], n: int, k: int, block: int = 512) -> sp.csr_matrix:
    """An (n, n) item-item matrix keeping each row's ``k`` largest positive entries, self excluded.

    ``similarities(start, stop)`` returns the dense rows ``start:stop`` (shape (stop−start, n));
    working a block at a time bounds memory to block × n floats.
    """
    parts = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        dense = similarities(start, stop)
        dense[np.arange(stop - start), np.arange(start, stop)] = 0.0
        parts.append(keep_top_k_per_row(dense, k))
    return sp.vstack(parts).tocsr().astype(np.float32)
