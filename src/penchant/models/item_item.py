"""Item-item models: score(u, ·) = x_u · W for a sparse item×item weight matrix W."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.models.base import HistoryScored, Validator, _sparse_from, _sparse_parts


class ItemItemModel(HistoryScored):
    """Base of models defined by a sparse (n_items, n_items) matrix ``weights_`` (column j: target j)."""

    weights_: sp.csr_matrix | None = None

    def _weights(self, train: Dataset) -> sp.csr_matrix:
        raise NotImplementedError

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.weights_ = self._weights(train)

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        assert self.weights_ is not None
        return np.asarray((rows @ self.weights_).todense(), dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        return _sparse_parts("weights", self.weights_)

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = _sparse_from(arrays, "weights")
