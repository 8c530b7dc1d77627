"""Ranking items nobody has interacted with: NDCG@K of each cold-item episode's target.

For an episode (a history of warm items, then a cold target), the model scores its history as a
session and the target is ranked among the candidates: the cold items (the question "which new
item next?") or the whole catalogue with the history masked. Ties count against the target (its
rank is 1 + the number of candidates scoring at least as high, itself excluded), so a model that
gives every cold item the same score gets 0, not chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.data.coldstart import ColdItemSplit
from penchant.errors import ConfigError


@dataclass(frozen=True)
class ColdResult:
    """Per-episode NDCG@k (float64 (n_episodes,)) and what random ranking would score on average."""

    k: int
    candidates: str
    ndcg: np.ndarray
    chance: float

    @property
    def mean(self) -> float:
        return float(self.ndcg.mean()) if len(self.ndcg) else float("nan")


def chance_ndcg(n_candidates: int, k: int) -> float:
    """E[NDCG@k] of one relevant item placed uniformly at random among ``n_candidates``."""
    ranks = np.arange(1, min(k, n_candidates) + 1)
    return float((1.0 / np.log2(ranks + 1)).sum() / n_candidates)


def cold_item_ndcg(model, split: ColdItemSplit, k: int = 10, candidates: str = "cold") -> ColdResult:
    """NDCG@k of the cold targets for a sequential ``model`` (anything with ``score_sessions``).

    Args:
        candidates: ``cold`` (rank among the cold items) or ``all`` (the whole catalogue minus the
            episode's history).
    """
    if candidates not in ("cold", "all"):
        raise ConfigError("candidates must be 'cold' or 'all'")
    sessions = split.sessions()
    ndcg = np.empty(len(sessions), dtype=np.float64)
    for s in range(0, len(sessions), 256):
        scores = model.score_sessions(sessions[s:s + 256]).astype(np.float64)
        target = scores[np.arange(len(scores)), split.targets[s:s + 256]]
        if candidates == "cold":
            pool = scores[:, split.cold_items]
        else:
            pool = scores.copy()
            rows = np.repeat(np.arange(len(scores)), np.diff(split.history_ptr[s:s + len(scores) + 1]))
            pool[rows, np.concatenate(sessions[s:s + 256])] = -np.inf
        rank = (pool >= target[:, None]).sum(axis=1)  # includes the target itself
        ndcg[s:s + len(scores)] = np.where(rank <= k, 1.0 / np.log2(rank + 1), 0.0)
    # "all": the catalogue less an average history (histories are masked per episode)
    size = len(split.cold_items) if candidates == "cold" else model.n_items_ - np.diff(split.history_ptr).mean()
    return ColdResult(k, candidates, ndcg, chance_ndcg(int(round(size)), k))
