"""A cache of recent recommendation answers, shared in its invalidation by every worker process.

An answer for a user is valid while three things are unchanged: the deployed version, the
service's change count (activations, item changes, restores: :class:`~penchant.serve.host.ModelHost`'s
generation) and the user's own event count. The last lives in a table of counters indexed by a
stable hash of the user id (CRC-32, the same in every process; a shared ``RawArray`` when there are
several workers): storing an event for a user bumps their slot, so their next request, on any
worker, is computed afresh. Users who share a slot only cost each other a recomputation.

With a shared store (PostgreSQL, replicas on several hosts) the change count and the slots'
counts are the store's (``fleet_state``, ``user_event_counts``), bumped in the transaction that
stores the events, on whichever replica, and read by each answer (one SELECT,
:meth:`~penchant.serve.store.Store.fleet_read`): an event acknowledged by one replica makes the
user's cached answers stale on all of them.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import numpy as np

SLOTS = 1 << 16


def slot(user_id: str) -> int:
    return zlib.crc32(user_id.encode("utf-8")) & (SLOTS - 1)


def counters(shared=None) -> np.ndarray:
    """int64 (SLOTS,) event counters: a view of ``shared`` (a ``RawArray('q', SLOTS)``) or a private array."""
    return np.frombuffer(shared, dtype=np.int64) if shared is not None else np.zeros(SLOTS, dtype=np.int64)


class AnswerCache:
    """Up to ``entries`` answers, least recently used first out; ``entries`` 0 turns it off."""

    def __init__(self, entries: int, events: np.ndarray) -> None:
        self.entries, self.events = entries, events
        self.answers: OrderedDict[Hashable, tuple[tuple, dict]] = OrderedDict()
        self.hits = self.misses = 0

    def user_changed(self, users: Iterable[str]) -> None:
        """New events (or a deletion) for ``users``: their cached answers are stale everywhere."""
        for u in set(users):
            self.events[slot(u)] += 1

    def user_events(self, user_id: str) -> int:
        """The event count of ``user_id``'s slot in this machine's counters."""
        return int(self.events[slot(user_id)])

    def get(self, key: Hashable, stamp: tuple) -> dict | None:
        if not self.entries:
            return None
        hit = self.answers.get(key)
        if hit is not None and hit[0] == stamp:
            self.answers.move_to_end(key)
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, key: Hashable, stamp: tuple, answer: dict) -> None:
        if not self.entries:
            return
        self.answers[key] = (stamp, answer)
        self.answers.move_to_end(key)
        while len(self.answers) > self.entries:
            self.answers.popitem(last=False)
