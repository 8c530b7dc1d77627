"""The one answer core: lists, similar items, neighbours and option rankings from a fitted model,
for external ids, one user or a batch. ``penchant recommend`` and the service both answer here.

Who is answered how (the stated fallback):

* a user the model knows (in its vocabulary, with at least one training event) is ranked by the model;
* any other user is answered by fold-in from their events in the given history where the model can
  (:class:`~penchant.models.protocols.FoldIn`), else by popularity among the training users, scored
  ``ln(1 + users with the item)``.

What is never shown (the one exclusion rule): a user's training items and their history items
(unless ``exclude_seen`` is off), plus whatever the caller bans (a category filter, explicit ids).
Every list, whatever its source, is cut by the one top-k with exclusion
(:func:`penchant.models.ranking.top_k`), ties broken by item index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.backends import Backend, resolve
from penchant.data import Dataset
from penchant.data.build import index_of
from penchant.errors import DataError, NotFoundError
from penchant.models.protocols import FoldIn, ItemVectors, PairwiseModel, Ranker, SessionScorer
from penchant.models.ranking import chunk_size, top_k

#: how each list was made (``Ranked.source``)
MODEL, FOLD_IN, POPULAR, APPROXIMATE = "model", "fold-in", "popular", "ann"


@dataclass
class Ranked:
    """One answer: int64 (≤ k,) item (or user) indices, best first, float32 scores, and its source."""

    items: np.ndarray
    scores: np.ndarray
    source: str


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


class AnswerCore:
    """Answers from one fitted :class:`~penchant.models.protocols.Ranker` and its vocabularies.

    Built once per model (the service keeps one per deployed version): the id maps, the training
    items per user (``model.seen_items()``) and the item popularity (``model.item_popularity()``).
    ``index`` is an optional approximate inner-product index (:class:`~penchant.models.ann.ItemIndex`)
    over the model's items, used for known users when it can answer exactly enough.
    """

    def __init__(self, model: Ranker, index: Any = None) -> None:
        if not isinstance(model, Ranker):
            raise TypeError(f"{type(model).__name__} does not rank a catalogue")
        self.model, self.index = model, index
        self.user_ids = np.asarray(model.user_ids_, dtype=object)
        self.item_ids = np.asarray(model.item_ids_, dtype=object)
        self.users = {str(u): k for k, u in enumerate(self.user_ids)}
        self.items = {str(i): k for k, i in enumerate(self.item_ids)}
        self.seen: sp.csr_matrix = model.seen_items()
        self.popularity = np.asarray(model.item_popularity(), dtype=np.float64)
        self.n_items = len(self.item_ids)
        self._trained = np.diff(self.seen.indptr) > 0
        self._popular = np.log1p(self.popularity).astype(np.float32)

    # --- ids -----------------------------------------------------------------------------------

    def known(self, user_id: str) -> int:
        """The user's index when the model ranks them (in its vocabulary, with training events), else -1."""
        u = self.users.get(str(user_id), -1)
        return u if u >= 0 and self._trained[u] else -1

    def history(self, items: np.ndarray, values: np.ndarray | None = None) -> sp.csr_matrix:
        """One user's history as a CSR row (1, n_items): values summed per item (1 each by default)."""
        items = np.asarray(items, dtype=np.int64)
        values = np.ones(len(items), np.float32) if values is None else np.asarray(values, np.float32)
        cols, where = np.unique(items, return_inverse=True)
        summed = np.bincount(where, weights=values, minlength=len(cols)).astype(np.float32)
        return sp.csr_matrix((summed, cols, np.array([0, len(cols)])), shape=(1, self.n_items))

    def histories(self, user_ids: Sequence[str], history: Dataset | None) -> tuple[sp.csr_matrix, int, int]:
        """CSR (len(user_ids), n_items) of each user's events in ``history`` on the model's items
        (values summed where the history has them, else 1), the number of history events, and how
        many of them name an item the model does not know."""
        shape = (len(user_ids), self.n_items)
        if history is None or history.n_interactions == 0:
            return sp.csr_matrix(shape, dtype=np.float32), 0, 0
        item_map = index_of(self.item_ids, np.asarray(history.item_ids, dtype=object))[history.items]
        user_rows = index_of(np.array(list(user_ids), dtype=object), history.user_ids)[history.users]
        keep = (item_map >= 0) & (user_rows >= 0)
        values = np.ones(int(keep.sum()), np.float32) if history.ratings is None else history.ratings[keep].astype(np.float32)
        m = sp.csr_matrix((values, (user_rows[keep], item_map[keep])), shape=shape)
        m.sum_duplicates()
        return m, history.n_interactions, int((item_map < 0).sum())

    # --- lists ---------------------------------------------------------------------------------

    def rank(self, user_ids: Sequence[str], k: int, *, history: sp.csr_matrix | None = None,
             banned: np.ndarray | None = None, exclude_seen: bool = True,
             backend: str | Backend | None = None) -> list[Ranked]:
        """Top-``k`` for each user id (one :class:`Ranked` per id, in order).

        Args:
            history: CSR (len(user_ids), n_items) of each user's events outside the model (values
                are fold-in weights); they are never recommended while ``exclude_seen``.
            banned: bool (n_items,) for every user, or (len(user_ids), n_items): never shown.
            exclude_seen: leave out training and history items (the default, as everywhere).
            backend: where blocks of known users are ranked (:mod:`penchant.backends`).
        """
        idx = np.array([self.known(u) for u in user_ids], dtype=np.int64)
        if len(idx) == 1:  # one user (the service's request): no blocks to hand out
            return [self._rank_one(str(user_ids[0]), idx, k, history, banned, exclude_seen)]
        out: list[Ranked | None] = [None] * len(idx)
        known, new = np.flatnonzero(idx >= 0), np.flatnonzero(idx < 0)
        if len(known):
            step = chunk_size(self.n_items)
            chunks = [known[s:s + step] for s in range(0, len(known), step)]
            blocks = [(idx[rows], _take(history, rows), _take(banned, rows), exclude_seen) for rows in chunks]
            for rows, (items, scores) in zip(chunks, resolve(backend).map(_rank_block, blocks, (self, k))):
                for r, row in enumerate(rows):
                    out[row] = _ranked(items[r], scores[r], MODEL)
        if len(new):
            scores = np.empty((len(new), self.n_items), dtype=np.float32)
            sources = []
            for r, row in enumerate(new):
                scores[r], source = self.scores(str(user_ids[row]), _take(history, row))
                sources.append(source)
            items, values = _top(scores, k, self.mask(idx[new], _take(history, new), _take(banned, new), exclude_seen))
            for r, row in enumerate(new):
                out[row] = _ranked(items[r], values[r], sources[r])
        return out  # type: ignore[return-value]

    def _rank_one(self, user_id: str, idx: np.ndarray, k: int, history: sp.csr_matrix | None,
                  banned: np.ndarray | None, exclude_seen: bool) -> Ranked:
        """:meth:`rank` for one user: the same scores, mask and top-k, and the approximate index
        (when there is one) for a user the model ranks."""
        mask = self.mask(idx, history, banned, exclude_seen)
        if idx[0] >= 0 and self.index is not None:
            found = self.index.top(self.model.query_vectors(idx)[0], k, mask[0])
            if found is not None:
                return Ranked(found[0].astype(np.int64), found[1].astype(np.float32), APPROXIMATE)
        scores, source = self.scores(user_id, history)
        items, values = _top(scores[None, :], k, mask)
        return _ranked(items[0], values[0], source)

    def mask(self, users: np.ndarray, history: sp.csr_matrix | None, banned: np.ndarray | None,
             exclude_seen: bool) -> np.ndarray:
        """bool (n, n_items): what the lists of user indices ``users`` (-1: not ranked by the model)
        may not show: ``banned``, and with ``exclude_seen`` their training and ``history`` items
        (CSR (n, n_items) or None)."""
        n, ip = len(users), self.seen.indptr
        if banned is None:
            mask = np.zeros((n, self.n_items), dtype=bool)
        else:
            mask = np.array(np.broadcast_to(banned, (n, self.n_items)))
        if not exclude_seen:
            return mask
        if n == 1:  # one user (the service's request): a slice of the training rows, not a gather
            u = int(users[0])
            if u >= 0:
                mask[0, self.seen.indices[ip[u]:ip[u + 1]]] = True
        else:
            known = np.flatnonzero(users >= 0)
            starts = ip[users[known]]
            lengths = ip[users[known] + 1] - starts
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            mask[np.repeat(known, lengths), self.seen.indices[np.repeat(starts, lengths) + offsets]] = True
        if history is not None and history.nnz:
            mask[np.repeat(np.arange(n), np.diff(history.indptr)), history.indices] = True
        return mask

    def recommend_for(self, user_ids: Sequence[str], k: int, history: Dataset | None = None, *,
                      backend: str | Backend | None = None) -> Answers:
        """Top-``k`` lists by external id (duplicates answered once), history read from a Dataset."""
        ids = list(dict.fromkeys(str(u) for u in user_ids))
        rows, events, unknown = self.histories(ids, history)
        answers = Answers({}, history_events=events, unknown_items=unknown)
        for user, got in zip(ids, self.rank(ids, k, history=rows, backend=backend)):
            answers.lists[user] = [(str(self.item_ids[i]), float(s)) for i, s in zip(got.items, got.scores)]
            if got.source in (FOLD_IN, POPULAR):
                answers.fallback[user] = got.source
        return answers

    def scores(self, user_id: str, history: sp.csr_matrix | None = None) -> tuple[np.ndarray, str]:
        """float32 (n_items,) scores of every item for one user, and their source (the same rule as
        :meth:`rank`; nothing excluded): for callers that reuse the scores (conversations, exploration)."""
        u = self.known(user_id)
        if u >= 0:
            return np.asarray(self.model.score(np.array([u]))[0], dtype=np.float32), MODEL  # a fresh row
        if history is not None and history.nnz and isinstance(self.model, FoldIn):
            return np.asarray(self.model.score_history(history.indices, history.data), dtype=np.float32), FOLD_IN
        return self._popular.copy(), POPULAR

    def session(self, items: Sequence[str], k: int, *, exclude_seen: bool = True) -> tuple[Ranked, int]:
        """Top-``k`` for an anonymous session (item ids, oldest first): a sequential model reads it in
        order; else fold-in from its items; else popularity. Returns the list and how many ids were unknown."""
        known = [self.items[str(i)] for i in items if str(i) in self.items]
        if isinstance(self.model, SessionScorer):
            scores, source = self.model.score_sessions([np.array(known, dtype=np.int64)])[0], MODEL
        elif known and isinstance(self.model, FoldIn):
            row = self.history(np.array(known))
            scores, source = self.model.score_history(row.indices, row.data), FOLD_IN
        else:
            scores, source = self._popular, POPULAR
        banned = np.zeros(self.n_items, dtype=bool)
        if exclude_seen:
            banned[known] = True
        items_, values = _top(np.asarray(scores, np.float32)[None, :].copy(), k, banned[None, :])
        return _ranked(items_[0], values[0], source), len(items) - len(known)

    # --- similar items and neighbours ---------------------------------------------------------

    def similar_items(self, item_id: str, k: int) -> Ranked:
        """The ``k`` items whose vectors are closest in cosine to ``item_id``'s (itself left out)."""
        i = self.items.get(str(item_id), -1)
        if i < 0:
            raise NotFoundError(f"item {item_id!r} is not in the model")
        if not isinstance(self.model, ItemVectors):
            raise NotFoundError(f"{getattr(self.model, 'name', type(self.model).__name__)} has no item vectors to compare")
        f = self.model.item_vectors()
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-9)
        sims = (f @ f[i]).astype(np.float32)[None, :]
        banned = np.zeros((1, self.n_items), dtype=bool)
        banned[0, i] = True
        items, values = _top(sims, k, banned)
        return _ranked(items[0], values[0], MODEL)

    def neighbours(self, user_id: str, k: int, history: sp.csr_matrix | None = None) -> Ranked:
        """The ``k`` users most like ``user_id``: cosine of binary item sets over the training
        users (a user the model does not rank: by ``history``); only positive similarities."""
        x = self.seen
        u = self.known(user_id)
        if u >= 0:
            items = x.indices[x.indptr[u]:x.indptr[u + 1]]
        else:
            items = np.zeros(0, np.int64) if history is None else history.indices
            if not len(items):
                raise NotFoundError(f"user {user_id!r} has no events on the model's items")
        row = np.zeros(x.shape[1])
        row[items] = 1.0
        # shared items per user from the CSR structure (no copy of the matrix): cumulative sums over each row's span
        shared = np.concatenate(([0.0], np.cumsum(row[x.indices])))
        overlap = shared[x.indptr[1:]] - shared[x.indptr[:-1]]
        sims = overlap / np.maximum(np.sqrt(np.diff(x.indptr) * row.sum()), 1e-12)
        if u >= 0:
            sims[u] = -np.inf
        sims[sims <= 0] = -np.inf
        users, values = top_k(sims[None, :].astype(np.float64), k)
        return _ranked(users[0], values[0], MODEL)


def rank_options(model: PairwiseModel, option_ids: Sequence[str], user: int, options: Sequence[str]) -> dict:
    """Score ``options`` for user index ``user`` (-1: anonymous) with a pairwise preference model:
    each option's mean probability of beating the others, and its utility where the model has one;
    best first. Unknown option ids are a :class:`DataError` naming the first."""
    index = {str(o): k for k, o in enumerate(option_ids)}
    unknown = [k for k, o in enumerate(options) if str(o) not in index]
    if unknown:
        raise DataError(f"options[{unknown[0]}]: {options[unknown[0]]!r} is not an option the model knows")
    idx = np.array([index[str(o)] for o in options], dtype=np.int64)
    k = len(idx)
    a, b = np.repeat(idx, k), np.tile(idx, k)
    prob = model.prob(np.full(k * k, user), a, b).reshape(k, k)
    wins = (prob.sum(1) - np.diag(prob)) / max(k - 1, 1)
    scores = model.score(np.full(k, user), idx) if getattr(model, "has_score", False) else None
    order = np.argsort(-wins, kind="stable")
    return {"user_known": user >= 0,
            "options": [{"id": options[j], "win_probability": float(wins[j]),
                         "score": None if scores is None else float(scores[j])} for j in order]}


def recommend_for(model: Ranker, user_ids: list[str], k: int, history: Dataset | None = None, *,
                  backend: str | Backend | None = None) -> Answers:
    """Top-``k`` items for each external id in ``user_ids`` (see :class:`AnswerCore`)."""
    return AnswerCore(model).recommend_for(user_ids, k, history, backend=backend)


def _rank_block(job: tuple[AnswerCore, int], block: tuple[np.ndarray, sp.csr_matrix, np.ndarray | None, bool],
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items, int32 (n, k), and scores, float32 (n, k), of one block of known users (indices,
    their history rows, bans, whether seen items are left out)."""
    core, k = job
    users, history, banned, exclude_seen = block
    scores = np.asarray(core.model.score(users), dtype=np.float32)
    return _top(scores, k, core.mask(users, history, banned, exclude_seen))


def _top(scores: np.ndarray, k: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of float32 (n, n_items) ``scores`` (changed in place) with bool ``mask`` left out."""
    scores[mask] = -np.inf
    return top_k(scores, k)


def _ranked(items: np.ndarray, scores: np.ndarray, source: str) -> Ranked:
    keep = np.isfinite(scores)
    return Ranked(items[keep].astype(np.int64), scores[keep].astype(np.float32), source)


def _take(m, rows):
    """Rows of per-user CSR histories or ban matrices (None, or a ban for everyone (n_items,), as it is)."""
    if m is None or m.ndim == 1:
        return m
    return m[rows]
