"""Reward models q̂(user, item, position) for the direct method and doubly robust estimators.

A reward model here is a chain of shrunken cell means, fitted by weighted sums so that one call
fits it on many bootstrap resamples at once. Levels go from coarse to fine; each cell's estimate is

    q̂_level(cell) = (Σ_rows-in-cell w·r + α · q̂_parent(cell)) / (Σ_rows-in-cell w + α)

with the global mean at the top and ``α`` (default 1) pseudo-observations of the parent level. A
cell the log never shows gets its parent's estimate. Names:

* ``item``: global → position → (item, position);
* ``user-item``: global → position → (item, position) → (user, item, position).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.errors import ConfigError

REWARD_MODELS: dict[str, tuple[str, ...]] = {"item": ("position", "item"),
                                            "user-item": ("position", "item", "user")}


class CellMeans:
    """q̂ at ``m`` query points, from the ``n`` logged rows, under row weights. Equal query points
    are predicted once: :meth:`predict` answers the distinct ones, ``query_index`` (m,) maps each
    query point to its column.

    Args:
        users, items, position, reward: the logged rows, (n,) each (int64 codes, float64 reward).
        query_users, query_items, query_position: the points to predict at, (m,) int64 each.
        name: one of :data:`REWARD_MODELS`.
        strength: α, the pseudo-observations given to each cell's parent.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, position: np.ndarray, reward: np.ndarray,
                 query_users: np.ndarray, query_items: np.ndarray, query_position: np.ndarray,
                 name: str = "item", strength: float = 1.0) -> None:
        if name not in REWARD_MODELS:
            raise ConfigError(f"unknown reward model {name!r}; choose one of {', '.join(REWARD_MODELS)}")
        n_items = int(max(items.max(initial=0), query_items.max(initial=0))) + 1
        n_pos = int(max(position.max(initial=0), query_position.max(initial=0))) + 1
        full = (query_users * n_items + query_items) * n_pos + query_position
        _, first, self.query_index = np.unique(full, return_index=True, return_inverse=True)
        query_users, query_items, query_position = query_users[first], query_items[first], query_position[first]
        keys = {"position": (position, query_position),
                "item": (items * n_pos + position, query_items * n_pos + query_position),
                "user": ((users * n_items + items) * n_pos + position,
                         (query_users * n_items + query_items) * n_pos + query_position)}
        self.reward, self.strength, self.n = reward, float(strength), len(reward)
        self.levels: list[tuple[sp.csr_matrix, np.ndarray]] = []
        for level in REWARD_MODELS[name]:
            logged, queried = keys[level]
            cells, inverse = np.unique(np.concatenate([logged, queried]), return_inverse=True)
            onehot = sp.csr_matrix((np.ones(self.n), (np.arange(self.n), inverse[:self.n])), shape=(self.n, len(cells)))
            self.levels.append((onehot, inverse[self.n:]))

    def predict(self, weights: np.ndarray) -> np.ndarray:
        """float64 (b, q): q̂ at the q distinct query points under each row of ``weights`` (b, n) (one fit per row)."""
        total = weights.sum(axis=1, keepdims=True)
        estimate = (weights @ self.reward)[:, None] / np.where(total > 0, total, 1.0)
        for onehot, query in self.levels:
            sums = np.asarray((onehot.T @ (weights * self.reward).T).T)
            counts = np.asarray((onehot.T @ weights.T).T)
            estimate = (sums[:, query] + self.strength * estimate) / (counts[:, query] + self.strength)
        return estimate
