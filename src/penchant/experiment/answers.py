"""Recommendations for external user ids from a fitted model, with a stated answer for every id.

A user the model knows (with at least one training event) is ranked by the model. A user it does not know is answered by fold-in from
their events in ``history`` where the model can (:class:`~penchant.models.protocols.FoldIn`), else
by popularity among the training users (the stated fallback). Items in a user's training history
and in ``history`` are left out, through the one top-k with exclusion
(:func:`penchant.models.ranking.top_k`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from penchant.backends import Backend, resolve
from penchant.data import Dataset
from penchant.data.build import index_of
from penchant.models.base import Recommender
from penchant.models.protocols import FoldIn
from penchant.models.ranking import chunk_size, top_k


@dataclass
class Answers:
    """Top-k lists by external user id, and how each unknown user was answered.

    Attributes:
        lists: user id -> [(item id, score), ...], best first, at most k long.
        fallback: user id -> ``"fold-in"`` or ``"popular"`` for every user the model does not know.
        history_events: events read from the history; ``unknown_items``: of those, the ones whose
            item the model was not fitted on (left out of fold-in, counted here).
    """

    lists: dict[str, list[tuple[str, float]]]
    fallback: dict[str, str] = field(default_factory=dict)
    history_events: int = 0
    unknown_items: int = 0

    def to_json(self, model: str, k: int) -> dict:
        """The ``penchant recommend`` contract: ``{"model", "k", "users", "fallback"}``."""
        return {"model": model, "k": k,
                "users": {u: [{"item": i, "score": s} for i, s in rows] for u, rows in self.lists.items()},
                "fallback": dict(self.fallback)}


def recommend_for(model: Recommender, user_ids: list[str], k: int, history: Dataset | None = None, *,
                  backend: str | Backend | None = None) -> Answers:
    """Top-``k`` items for each external id in ``user_ids`` (duplicates answered once; see the module).

    The known users are ranked in blocks on ``backend`` (see :mod:`penchant.backends`).
    """
    ids = list(dict.fromkeys(str(u) for u in user_ids))
    idx = model.user_index(ids)
    assert model.train_ is not None
    known = idx >= 0
    known[known] = np.diff(model.train_.indptr)[idx[known]] > 0  # a user without training events is unknown
    idx[~known] = -1
    seen, events, unknown_items = _history_rows(model, ids, history)
    answers = Answers({}, history_events=events, unknown_items=unknown_items)
    known = np.flatnonzero(idx >= 0)
    if len(known):
        exclude = _pattern(_pattern(model.train_[idx[known]]) + _pattern(seen[known]))
        step = chunk_size(model.n_items_)
        blocks = [(idx[known[s:s + step]], exclude[s:s + step]) for s in range(0, len(known), step)]
        parts = resolve(backend).map(_recommend_block, blocks, (model, k))
        items = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        for r, row in enumerate(known):
            answers.lists[ids[row]] = _rows(model, items[r], scores[r])
    new = np.flatnonzero(idx < 0)
    if len(new):
        popular = np.bincount(model.train_.indices, minlength=model.n_items_).astype(np.float32)
        score_rows = np.empty((len(new), model.n_items_), dtype=np.float32)
        for r, row in enumerate(new):
            hist = seen[row]
            if hist.nnz and isinstance(model, FoldIn):
                score_rows[r] = model.score_history(hist.indices, hist.data)
                answers.fallback[ids[row]] = "fold-in"
            else:
                score_rows[r] = popular
                answers.fallback[ids[row]] = "popular"
        items, scores = top_k(score_rows, k, _pattern(seen[new]))
        for r, row in enumerate(new):
            answers.lists[ids[row]] = _rows(model, items[r], scores[r])
    answers.lists = {u: answers.lists[u] for u in ids}
    return answers


def _recommend_block(job: tuple[Recommender, int], block: tuple[np.ndarray, sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items, int32 (n, k), and scores, float32 (n, k), of one block (users, what to leave out)."""
    model, k = job
    users, exclude = block
    return model.recommend(users, k=k, exclude=exclude)


def _history_rows(model: Recommender, ids: list[str], history: Dataset | None) -> tuple[sp.csr_matrix, int, int]:
    """CSR (len(ids), n_items) of each requested user's history events on the model's items (values
    summed where the history has them, else 1), the number of history events, and how many of them
    name an item the model does not know."""
    shape = (len(ids), model.n_items_)
    if history is None or history.n_interactions == 0:
        return sp.csr_matrix(shape, dtype=np.float32), 0, 0
    item_map = model.item_index(history.item_ids)[history.items]
    user_rows = index_of(np.array(ids, dtype=object), history.user_ids)[history.users]
    keep = (item_map >= 0) & (user_rows >= 0)
    values = np.ones(int(keep.sum()), np.float32) if history.ratings is None else history.ratings[keep].astype(np.float32)
    m = sp.csr_matrix((values, (user_rows[keep], item_map[keep])), shape=shape)
    m.sum_duplicates()
    return m, history.n_interactions, int((item_map < 0).sum())


def _pattern(m: sp.csr_matrix) -> sp.csr_matrix:
    """1.0 at every stored entry of ``m`` (zeros included): what a user has, whatever its value."""
    m = sp.csr_matrix(m)
    return sp.csr_matrix((np.ones(len(m.data), np.float32), m.indices, m.indptr), shape=m.shape)


def _rows(model: Recommender, items: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
    keep = np.isfinite(scores)
    return [(str(model.item_ids_[i]), float(s)) for i, s in zip(items[keep], scores[keep])]
