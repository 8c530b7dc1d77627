"""Most-popular: every user gets the items the most training users interacted with."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.models.base import Recommender, Validator
from penchant.models.registry import register


@register
class MostPopular(Recommender):
    """Scores each item by how many training users interacted with it (the same for everyone)."""

    name = "pop"
    summary = "most popular items (by distinct training users)"

    def __init__(self) -> None:
        self.popularity_: np.ndarray | None = None

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.popularity_ = train.item_counts.astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.popularity_ is not None
        return np.tile(self.popularity_, (len(users), 1))

    def _state(self) -> dict[str, np.ndarray]:
        assert self.popularity_ is not None
        return {"popularity": self.popularity_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
