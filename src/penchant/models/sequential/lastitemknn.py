"""Item-kNN on the most recent items: the session-based nearest-neighbour baseline."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.itemknn import cosine_neighbours
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.sequential.base import SequentialRecommender


@register
class LastItemKNN(SequentialRecommender):
    """Scores ``Σ_{t=1..recent} S[item_t] / t`` over the user's ``recent`` latest items (t = 1 the
    last), with ``S`` the cosine similarity of items' training user sets (shrunk by ``shrink``),
    pruned to each item's ``k`` nearest neighbours. ``recent=1`` is the classic last-item kNN.

    Args:
        k: neighbours kept per item.
        shrink: added to the cosine's denominator (damps similarities from few co-occurrences).
        recent: how many of the latest items vote, with weight 1/t.
    """

    name = "lastitemknn"
    summary = "item-kNN on the last item(s) of the sequence (cosine, top-k neighbours)"
    search_space = {"k": Int(10, 500, log=True), "shrink": Float(0.0, 100.0), "recent": Int(1, 10)}

    def __init__(self, *, k: int = 100, shrink: float = 10.0, recent: int = 1) -> None:
        if k < 1 or shrink < 0 or recent < 1:
            raise ConfigError("k ≥ 1, shrink ≥ 0 and recent ≥ 1 are required")
        self.k, self.shrink, self.recent = k, shrink, recent

    @property
    def max_len(self) -> int:  # type: ignore[override]
        return self.recent

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        assert self.train_ is not None
        self.sim_ = cosine_neighbours(self.train_, self.k, self.shrink)  # row i: i's k nearest items

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        n, length = seqs.shape
        weights = 1.0 / np.arange(length, 0, -1, dtype=np.float32)  # right-aligned: the last column is t = 1
        valid = seqs < self.n_items_
        rows = np.repeat(np.arange(n), length)[valid.ravel()]
        cols = seqs.ravel()[valid.ravel()]
        w = np.broadcast_to(weights, seqs.shape).ravel()[valid.ravel()]
        votes = sp.csr_matrix((w, (rows, cols)), shape=(n, self.n_items_))
        return np.asarray((votes @ self.sim_).todense(), dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        s = self.sim_
        return {**self._history_state(), "s_data": s.data, "s_indices": s.indices, "s_indptr": s.indptr}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_history(arrays)
        n = self.n_items_
        self.sim_ = sp.csr_matrix((arrays["s_data"], arrays["s_indices"], arrays["s_indptr"]), shape=(n, n))
