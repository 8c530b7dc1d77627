"""Items held out of training entirely, to test whether a model can recommend an item nobody
has clicked yet (from its text or attributes).

:func:`cold_item_split` draws a seeded fraction of items as *cold*, removes every interaction
with them from training, and makes one test episode per user: the user's first interaction with
a cold item, with the warm items they had interacted with before it (in time order) as the
history. Training and validation see warm items only (validation = each user's last warm item).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.dataset import Dataset, Step
from penchant.data.split import Split, leave_last_out
from penchant.errors import DataError


@dataclass(frozen=True)
class ColdItemSplit:
    """Warm-only train/valid parts and cold-item episodes.

    Attributes:
        warm: train (all but each user's last warm item) and valid (that item), warm items only;
            its ``test`` part is empty.
        cold_items: int64 (n_cold,) indices of the items held out of training.
        users, targets: int64 (n_episodes,) the episode's user and the cold item they chose next.
        history_ptr, history_items: the warm items each episode's user had before the target,
            oldest first: ``history_items[history_ptr[e]:history_ptr[e+1]]``.
        counts: what was held out, and users without an episode and why.
    """

    warm: Split
    cold_items: np.ndarray
    users: np.ndarray
    targets: np.ndarray
    history_ptr: np.ndarray
    history_items: np.ndarray
    counts: dict[str, int]

    def sessions(self) -> list[np.ndarray]:
        """Each episode's history as its own array (for ``score_sessions``)."""
        return np.split(self.history_items, self.history_ptr[1:-1])


def cold_item_split(ds: Dataset, fraction: float = 0.2, seed: int = DEFAULT_SEED, min_history: int = 5) -> ColdItemSplit:
    """Hold ``fraction`` of the interacted items out of training; one episode per user whose first
    cold interaction comes after at least ``min_history`` warm ones."""
    if ds.timestamps is None:
        raise DataError(f"{ds.name} has no timestamps, so 'before' is undefined", expected="a timestamp column")
    if not 0 < fraction < 1 or min_history < 1:
        raise DataError(f"fraction {fraction} / min_history {min_history} out of range",
                        expected="0 < fraction < 1 and min_history ≥ 1")
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(ds.item_counts > 0)
    cold_items = np.sort(rng.choice(active, size=int(round(len(active) * fraction)), replace=False)).astype(np.int64)
    is_cold = np.zeros(ds.n_items, dtype=bool)
    is_cold[cold_items] = True

    order = ds.time_order()  # grouped by user, time-ordered within
    users, items = ds.users[order].astype(np.int64), ds.items[order].astype(np.int64)
    cold_event = is_cold[items]
    # warm events of the same user before each event (users are contiguous in time order)
    warm_seen = np.cumsum(~cold_event) - (~cold_event)
    warm_seen -= warm_seen[np.searchsorted(users, users)]
    first_cold = np.full(ds.n_users, len(items), dtype=np.int64)
    np.minimum.at(first_cold, users[cold_event], np.flatnonzero(cold_event))
    has_cold = first_cold < len(items)
    n_hist = np.where(has_cold, warm_seen[np.minimum(first_cold, len(items) - 1)], 0)
    ep_users = np.flatnonzero(has_cold & (n_hist >= min_history)).astype(np.int64)
    hist_ptr = np.zeros(len(ep_users) + 1, dtype=np.int64)
    np.cumsum(n_hist[ep_users], out=hist_ptr[1:])
    cut = np.full(ds.n_users, -1, dtype=np.int64)
    cut[ep_users] = first_cold[ep_users]
    hist_items = items[(np.arange(len(items)) < cut[users]) & ~cold_event]  # episode users' warm prefixes
    targets = items[first_cold[ep_users]]

    removed = is_cold[ds.items]
    warm = ds.subset(~removed, Step("cold items held out", int(removed.sum()),
                                    f"interactions with {len(cold_items)} cold items, seed {seed}"))
    split = leave_last_out(warm, n_test=0, n_valid=1)
    counts = {"cold_items": len(cold_items), "cold_interactions_removed": int(removed.sum()),
              "episodes": len(ep_users), "users_without_cold_items": int((~has_cold & (ds.user_counts > 0)).sum()),
              "users_with_short_history": int((has_cold & (n_hist < min_history)).sum())}
    return ColdItemSplit(split, cold_items, ep_users, targets, hist_ptr, hist_items, counts)
