"""What every sequential recommender shares: per-user histories in time order, scoring from the
most recent items, sessions of anonymous users, and appending new events without refitting.

A sequential model scores a user from the last ``max_len`` items of their history. The history
starts as the user's training sequence; :meth:`SequentialRecommender.partial_fit` appends later
events (the validation item, before the test item is ranked, under leave-last-out), and
:meth:`SequentialRecommender.score_sessions` scores any list of recent items, known user or not.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Recommender, Validator
from penchant.models.ranking import top_k


def pad_left(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, length: int, pad: int) -> np.ndarray:
    """The last ``length`` items of each selected sequence, right-aligned; int64 (len(rows), length).

    ``items[indptr[r]:indptr[r+1]]`` is sequence ``r``; missing positions hold ``pad``.
    """
    return right_aligned(items, indptr[rows], indptr[rows + 1], length, pad)


def right_aligned(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, length: int, pad: int) -> np.ndarray:
    """``items[starts[r]:ends[r]]``'s last ``length`` entries per row, right-aligned; int64 (len(starts), length)."""
    n = np.minimum(ends - starts, length)
    out = np.full((len(starts), length), pad, dtype=np.int64)
    col = np.arange(length)[None, :]
    take = col >= (length - n)[:, None]
    src = (ends - length)[:, None] + col  # position in items of each output cell
    out[take] = items[src[take]]
    return out


def ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``concatenate([arange(a, a + n) for a, n in zip(starts, sizes)])``, vectorised; int64."""
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, sizes) + np.arange(sizes.sum())


def window_bounds(indptr: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`windows` cuts: int64 ``(start, end)`` positions in ``items`` of every piece."""
    lens = np.diff(indptr)
    step = length  # a piece of length+1 items holds `length` transitions
    n_pieces = np.maximum(1, -(-(lens - 1) // step))
    owner = np.repeat(np.arange(len(lens)), n_pieces)
    k = ranges(np.zeros(len(lens), np.int64), n_pieces)  # 0 = the last piece of its sequence
    end = indptr[owner + 1] - k * step
    return np.maximum(indptr[owner], end - step - 1), end


def windows(indptr: np.ndarray, items: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut every sequence into pieces of at most ``length`` + 1 items, from its end backwards,
    overlapping by one item so that every transition is in exactly one piece.

    Returns the pieces as ``(indptr, items)`` in the same layout as the input.
    """
    start, end = window_bounds(indptr, length)
    sizes = end - start
    out_ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out_ptr[1:])
    return out_ptr, items[ranges(start, sizes)]


class SequentialRecommender(Recommender):
    """Base of recommenders that score from the order of recent items.

    Subclasses implement ``_train(indptr, items, valid)`` on the training sequences and
    ``_score_padded(seqs)`` for int64 (n, context_len) right-aligned item windows padded with
    ``n_items``. ``max_len`` is an instance attribute (a hyper-parameter where it matters).
    """

    family = "sequential"
    max_len: int = 50

    @property
    def context_len(self) -> int:
        """History items one score reads (``max_len``, plus a long-term window where a model has one)."""
        return self.max_len

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.hist_ptr_, self.hist_items_ = train.sequences()
        self.hist_ptr_ = self.hist_ptr_.astype(np.int64)
        self.hist_items_ = self.hist_items_.astype(np.int64)
        self._train(self.hist_ptr_, self.hist_items_, valid)

    def partial_fit(self, events: Dataset) -> Self:
        """Append ``events`` (time-ordered per user; new users included) to the users' histories.

        Nothing is retrained: the next scores read the longer histories, and the appended items
        count as seen for ``recommend``.
        """
        events = self._on_vocabulary(events)
        n_users = self.n_users_
        add_ptr, add_items = events.sequences()
        old = np.diff(self.hist_ptr_)
        old = np.concatenate([old, np.zeros(n_users - len(old), np.int64)])
        new = np.diff(add_ptr).astype(np.int64)
        new = np.concatenate([new, np.zeros(n_users - len(new), np.int64)])
        ptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(old + new, out=ptr[1:])
        merged = np.empty(ptr[-1], dtype=np.int64)
        merged[ranges(ptr[:-1], old)] = self.hist_items_
        merged[ranges(ptr[:-1] + old, new)] = add_items
        self.hist_ptr_, self.hist_items_ = ptr, merged
        self._add_seen(events)
        return self

    def _grow_users(self, n: int) -> None:
        super()._grow_users(n)
        self.hist_ptr_ = np.concatenate([self.hist_ptr_, np.full(n, self.hist_ptr_[-1], dtype=np.int64)])

    def _score(self, users: np.ndarray) -> np.ndarray:
        seqs = pad_left(self.hist_ptr_, self.hist_items_, users, self.context_len, self.n_items_)
        return self._score_padded(seqs)

    def score_sessions(self, sessions: list[np.ndarray] | list[list[int]]) -> np.ndarray:
        """Scores for sessions given as lists of item indices, oldest first; float32 (n, n_items)."""
        self._check_fitted()
        arrays = [np.asarray(s, dtype=np.int64) for s in sessions]
        for r, s in enumerate(arrays):
            if len(s) and (s.min() < 0 or s.max() >= self.n_items_):
                raise ConfigError(f"session {r} has an item index outside 0..{self.n_items_ - 1}")
        ptr = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in arrays], out=ptr[1:])
        items = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
        out = np.empty((len(arrays), self.n_items_), dtype=np.float32)
        for start, stop in self._chunks(len(arrays)):
            seqs = pad_left(ptr, items, np.arange(start, stop), self.context_len, self.n_items_)
            out[start:stop] = self._score_padded(seqs)
        return out

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item, float32 (n_items,), for an anonymous history (item indices, oldest
        first); the model is unchanged."""
        return self.score_sessions([np.asarray(items, dtype=np.int64)])[0]

    def recommend_sessions(self, sessions: list[np.ndarray] | list[list[int]], k: int = 10,
                           exclude_session_items: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each session (int32 indices, float32 scores), session items left out."""
        scores = self.score_sessions(sessions)
        exclude = None
        if exclude_session_items:
            rows = np.repeat(np.arange(len(sessions)), [len(s) for s in sessions])
            cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]) if sessions else np.zeros(0, np.int64)
            exclude = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=scores.shape)
        return top_k(scores, k, exclude)

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        raise NotImplementedError

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _history_state(self) -> dict[str, np.ndarray]:
        return {"hist_ptr": self.hist_ptr_, "hist_items": self.hist_items_}

    def _load_history(self, arrays: dict[str, np.ndarray]) -> None:
        self.hist_ptr_, self.hist_items_ = arrays["hist_ptr"].astype(np.int64), arrays["hist_items"].astype(np.int64)
