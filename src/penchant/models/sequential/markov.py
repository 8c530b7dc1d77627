"""First-order Markov chain over items: what follows the last item, by training transition counts."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.registry import register
from penchant.models.search import Float
from penchant.models.sequential.base import SequentialRecommender


def transition_counts(indptr: np.ndarray, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Counts of consecutive (a → b) pairs within each sequence; CSR (n_items, n_items) float32."""
    inside = np.ones(len(items), dtype=bool)
    inside[indptr[1:][np.diff(indptr) > 0] - 1] = False  # a sequence's last item has no successor
    src = np.flatnonzero(inside)
    return sp.csr_matrix((np.ones(len(src), np.float32), (items[src], items[src + 1])), shape=(n_items, n_items))


@register
class MarkovChain(SequentialRecommender):
    """P(next = j | last = i) = (c_ij + α·π_j) / (c_i + α), with c the training transition counts
    and π the items' share of training interactions: a Dirichlet prior centred on popularity, so
    an item never seen followed still gets a ranking (popularity) rather than ties.

    Args:
        smoothing: α, the prior's weight in pseudo-transitions.
    """

    name = "markov"
    summary = "first-order Markov chain on the last item (transition counts + popularity prior)"
    search_space = {"smoothing": Float(0.01, 100.0, log=True)}
    max_len = 1

    def __init__(self, *, smoothing: float = 1.0) -> None:
        if smoothing < 0:
            raise ConfigError("smoothing must be non-negative")
        self.smoothing = smoothing

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        counts = transition_counts(indptr, items, self.n_items_)
        pop = np.bincount(items, minlength=self.n_items_).astype(np.float64)
        self.prior_ = (pop / max(pop.sum(), 1.0)).astype(np.float32)
        self.out_ = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
        self.counts_ = counts

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        last = seqs[:, -1]
        known = last < self.n_items_
        out = np.tile(self.smoothing * self.prior_, (len(seqs), 1))
        out[known] += self.counts_[last[known]].toarray()
        denom = np.where(known, self.out_[np.minimum(last, self.n_items_ - 1)], 0.0) + self.smoothing
        return (out / np.maximum(denom, 1e-12)[:, None]).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        c = self.counts_
        return {**self._history_state(), "prior": self.prior_, "out": self.out_,
                "c_data": c.data, "c_indices": c.indices, "c_indptr": c.indptr}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_history(arrays)
        self.prior_, self.out_ = arrays["prior"], arrays["out"]
        n = self.n_items_
        self.counts_ = sp.csr_matrix((arrays["c_data"], arrays["c_indices"], arrays["c_indptr"]), shape=(n, n))
