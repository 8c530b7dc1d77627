"""Preference data of a next-item policy from a training log: the liked next items (winners) after
their histories, rejected items from the user's own low ratings, and the preference *degree* of a
(winner, loser) pair that SPO's self-supervised loss classifies.

Winners: every position after the first of a user's time-ordered training history whose item the
user rated at least ``liked`` (every such position when the log has no ratings). Each winner's
history is the ``max_len`` items before it, right-aligned, padded with ``n_items``.

Preference degree (:class:`Degrees`), an integer class in ``0 .. SPO_CLASSES - 1`` (weak to strong),
from the log itself, for a loser ``l`` against the winner ``w`` at position ``p`` of user ``u``'s
training sequence:

* the log has ratings and ``u`` rated ``l``: the rating gap ``g = r_u(w) − r_u(l)`` (rounded up to
  an integer; the rating of ``l``'s occurrence nearest to ``p``);
* otherwise: how far apart the two items sit in ``u``'s history, ``g = |pos(l) − p|`` in events,
  with ``l``'s occurrence nearest to ``p``; an item ``u`` never consumed counts as ``SPO_CLASSES``
  (as far away as the scale goes);

and the class is ``clip(g, 1, SPO_CLASSES) − 1``. On a 1–5 scale with the defaults (liked 4,
disliked 2) rated pairs have gaps 2, 3 or 4 (classes 1–3); a gap below 1 (a uniform negative the
user rated as high as the winner) is the weakest class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset, PreferencePairs, Step
from penchant.errors import DataError
from penchant.models.sequential.base import right_aligned

#: preference-degree classes of SPO's self-supervised head
SPO_CLASSES = 4


@dataclass(frozen=True)
class NextItems:
    """Liked next items after their histories.

    Attributes:
        user: int64 (n,) user index of each winner.
        position: int64 (n,) index of the winner in the time-ordered event array of
            ``Dataset.sequences()`` (user ``u``'s events are ``indptr[u]:indptr[u+1]``).
        item: int64 (n,) the winner.
        rating: float32 (n,) the winner's rating, or None for a log without ratings.
        history: int64 (n, max_len) the items before each winner, right-aligned, padded with ``n_items``.
    """

    user: np.ndarray
    position: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    history: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    def subset(self, rows: np.ndarray) -> NextItems:
        return NextItems(self.user[rows], self.position[rows], self.item[rows],
                         None if self.rating is None else self.rating[rows], self.history[rows])

    def pairs(self, train: Dataset, losers: np.ndarray, how: str) -> PreferencePairs:
        """These winners against ``losers`` (int64 (n,)) as :class:`PreferencePairs` with histories;
        ``how`` says where the losers came from (recorded in ``steps``)."""
        n = len(self)
        return PreferencePairs(self.user, self.item, np.asarray(losers, np.int64), np.arange(n, dtype=np.int64),
                               train.user_ids, train.item_ids, history=self.history,
                               steps=train.steps + (Step("next-item pairs", n, how),),
                               name=f"{train.name}/next-item-pairs")


def time_ordered(train: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(indptr, items, users, ratings)`` of the events in time order per user (int64; ratings
    float32 or None), the layout :class:`NextItems` positions index."""
    indptr, items = train.sequences()
    order = train.time_order()
    ratings = None if train.ratings is None else train.ratings[order].astype(np.float32)
    return indptr.astype(np.int64), items.astype(np.int64), train.users[order].astype(np.int64), ratings


def liked_next_items(train: Dataset, max_len: int, *, liked: float = 4.0) -> NextItems:
    """Every position after the first of each user's training sequence whose item the user rated
    ≥ ``liked`` (every position after the first without ratings), with its history."""
    indptr, items, users, ratings = time_ordered(train)
    position = np.arange(len(items)) - indptr[users]
    ok = position > 0
    if ratings is not None:
        ok &= ratings >= liked
    take = np.flatnonzero(ok)
    history = right_aligned(items, indptr[users[take]], take, max_len, train.n_items)
    return NextItems(users[take], take.astype(np.int64), items[take], None if ratings is None else ratings[take], history)


def rated_losers(train: Dataset, winners: NextItems, *, disliked: float = 2.0,
                 seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """For each winner whose user rated some item ≤ ``disliked``, one such item drawn at random.

    Returns ``(rows, losers)``: int64 indices into ``winners`` that have a loser, and the losers.
    """
    if train.ratings is None:
        raise DataError("next_item_pairs needs ratings")
    rng = np.random.default_rng(seed)
    _, items, users, ratings = time_ordered(train)
    bad = ratings <= disliked
    bad_ptr = np.zeros(train.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users[bad], minlength=train.n_users), out=bad_ptr[1:])
    rows = np.flatnonzero(np.diff(bad_ptr)[winners.user] > 0)
    u = winners.user[rows]
    pick = bad_ptr[u] + (rng.random(len(rows)) * np.diff(bad_ptr)[u]).astype(np.int64)
    return rows, items[bad][pick]


def next_item_pairs(train: Dataset, max_len: int, *, liked: float = 4.0, disliked: float = 2.0,
                    seed: int = DEFAULT_SEED) -> PreferencePairs:
    """At every position of a user's time-ordered training history whose next item they rated at
    least ``liked``, pair that item (winner) with one item the same user rated at most
    ``disliked`` (loser, drawn at random); users without such an item give no pairs. Each pair's
    ``history`` is the ``max_len`` items before it, right-aligned, padded with ``n_items``.
    """
    if train.ratings is None:
        raise DataError("next_item_pairs needs ratings")
    winners = liked_next_items(train, max_len, liked=liked)
    rows, losers = rated_losers(train, winners, disliked=disliked, seed=seed)
    return winners.subset(rows).pairs(train, losers, f"rated ≥ {liked:g} after a history, against one rated ≤ {disliked:g}")


class Degrees:
    """The preference degree (module docstring) of losers against winners of one training log."""

    def __init__(self, train: Dataset) -> None:
        _, items, users, self.ratings = time_ordered(train)
        self.n_items, self.n_events = train.n_items, len(items)
        keys = users * train.n_items + items
        self.keys, rank = np.unique(keys, return_inverse=True)
        # events sorted by (user-item key, position): one occurrence list per key, in time order
        self.composite = np.sort(rank.astype(np.int64) * (self.n_events + 1) + np.arange(self.n_events))

    def __call__(self, user: np.ndarray, position: np.ndarray, loser: np.ndarray) -> np.ndarray:
        """int64 (n,) classes in ``0 .. SPO_CLASSES - 1`` of ``loser`` (n,) against the winners at
        ``position`` (n,) of ``user`` (n,)'s events (see :class:`NextItems`)."""
        user, position, loser = (np.asarray(a, np.int64) for a in (user, position, loser))
        key = user * self.n_items + loser
        r = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        seen = self.keys[r] == key
        query = r * (self.n_events + 1) + position
        after = np.searchsorted(self.composite, query)  # the first occurrence at or after the winner
        best = np.full(len(key), -1, np.int64)
        gap = np.full(len(key), np.iinfo(np.int64).max)
        for cand in (after - 1, after):  # the nearest occurrence is just before or just after
            inside = (cand >= 0) & (cand < len(self.composite))
            c = np.where(inside, cand, 0)
            same = inside & (self.composite[c] // (self.n_events + 1) == r)
            pos = self.composite[c] % (self.n_events + 1)
            d = np.abs(pos - position)
            better = same & seen & (d < gap)
            gap, best = np.where(better, d, gap), np.where(better, pos, best)
        found = best >= 0
        degree = np.where(found, gap, SPO_CLASSES).astype(np.float64)
        if self.ratings is not None:
            rated_gap = self.ratings[position] - self.ratings[np.where(found, best, 0)]
            degree = np.where(found, np.ceil(rated_gap), degree)
        return (np.clip(degree, 1, SPO_CLASSES) - 1).astype(np.int64)
