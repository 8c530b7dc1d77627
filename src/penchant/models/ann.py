"""Approximate top-k by inner product: an HNSW graph (Malkov & Yashunin, TPAMI 2020) over a
model's item vectors, through ``usearch``.

Models whose score is a dot product (:class:`~penchant.models.protocols.DotProduct`: latent-factor
models, ``x_ui = p_u · q_i + b_i``) give item keys ``[q_i, b_i]`` and user queries ``[p_u, 1]``, so
the inner product the graph searches is exactly the model's score and a found item's score is the
one exact scoring would give. The graph finds most of the true top ``k`` while reading a small
part of the catalogue; what it misses is measured (``benchmarks/bench_ann.py``: recall@10 against
exact scoring on a synthetic catalogue of a million items).

Items a list may not show (seen, excluded, outside a category) are handled by asking the graph for
``k`` plus their number and dropping them; when that would be more than a quarter of the catalogue
or 5,000 items (a user who has seen thousands, a narrow category), or the graph returns too few,
the answer is computed exactly instead (and counted by the caller).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from penchant.errors import DataError

#: the HNSW settings: M (links per node), ef at construction, ef at search
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 64, 256
#: the most results one search asks for, as a share of the catalogue and in items
MAX_SHARE, MAX_FETCH = 0.25, 5000


def _usearch():
    try:
        from usearch.index import Index
    except ImportError as exc:  # pragma: no cover - an install without the serve extra
        raise ImportError("the approximate index needs usearch: pip install 'penchant[serve]'") from exc
    return Index


class ItemIndex:
    """An inner-product HNSW index over ``n_items`` keys (item ``i`` has key ``i``)."""

    def __init__(self, index, n_items: int) -> None:
        self.index, self.n_items = index, n_items

    @classmethod
    def build(cls, keys: np.ndarray, *, connectivity: int = CONNECTIVITY, expansion_add: int = EXPANSION_ADD,
              expansion_search: int = EXPANSION_SEARCH, threads: int = 0) -> ItemIndex:
        """The index of float32 (n_items, d) item keys; ``threads`` 0 uses every core."""
        keys = np.ascontiguousarray(keys, dtype=np.float32)
        if keys.ndim != 2 or not len(keys):
            raise ValueError(f"item keys must be a non-empty (n_items, d) array, not shape {keys.shape}")
        index = _usearch()(ndim=keys.shape[1], metric="ip", dtype="f32", connectivity=connectivity,
                           expansion_add=expansion_add, expansion_search=expansion_search)
        index.add(np.arange(len(keys), dtype=np.uint64), keys, threads=threads)
        return cls(index, len(keys))

    def save(self, path: str | Path) -> Path:
        """Written to a temporary name, then renamed: a reader never sees half a file."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.index.save(str(tmp))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, view: bool = True, expansion_search: int = EXPANSION_SEARCH) -> ItemIndex:
        """The index at ``path``; with ``view`` memory-mapped (workers share the pages), not copied."""
        index = _usearch().restore(str(path), view=view)
        if index is None:
            raise DataError("not a usearch index", file=path, expected="an index written by ItemIndex.save")
        index.expansion_search = expansion_search
        return cls(index, len(index))

    def search(self, queries: np.ndarray, k: int, *, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The (up to) ``k`` best items by inner product for float32 (n, d) queries: int64 (n, k)
        items and float32 (n, k) scores, best first; missing places hold -1 and -inf."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), self.n_items)
        found = self.index.search(queries, k, threads=threads)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        dist = np.asarray(found.distances, dtype=np.float32).reshape(len(queries), -1)
        # one query gives a single result whose arrays hold only what was found
        counts = np.asarray(getattr(found, "counts", [keys.shape[1]])).reshape(-1)
        pad = k - keys.shape[1]
        if pad > 0:
            keys, dist = np.pad(keys, ((0, 0), (0, pad))), np.pad(dist, ((0, 0), (0, pad)))
        valid = np.arange(k)[None, :] < counts[:, None]
        # usearch's "ip" distance is 1 - <q, v>
        return np.where(valid, keys, -1), np.where(valid, 1.0 - dist, -np.inf).astype(np.float32)

    def handles(self, k: int, n_banned: int) -> bool:
        """Whether :meth:`top` searches for ``k`` items past ``n_banned`` banned ones: the graph is
        asked for ``k + n_banned``, at most a quarter of the catalogue and at most ``MAX_FETCH``."""
        return k + n_banned <= min(MAX_SHARE * self.n_items, MAX_FETCH)

    def top(self, query: np.ndarray, k: int, banned: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The best ``k`` items of one float32 (d,) query with bool (n_items,) ``banned`` left out:
        int64 items and float32 scores, or None when exact scoring should answer (too many banned
        items, see :meth:`handles`, or the graph returned too few)."""
        n_banned = int(banned.sum())
        eligible = self.n_items - n_banned
        if not self.handles(k, n_banned):
            return None
        items, scores = self.search(query, min(k + n_banned, self.n_items))
        items, scores = items[0], scores[0]
        ok = items >= 0
        ok[ok] = ~banned[items[ok]]
        items, scores = items[ok][:k], scores[ok][:k]
        if len(items) < min(k, eligible):
            return None
        return items, scores


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact top-k (int (n, k)) that ``found`` (int (n, k')) contains."""
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=1).sum(axis=1)
    return float(np.mean(hits / exact.shape[1]))
