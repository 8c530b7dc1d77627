"""The model protocol every recommender follows, and its shared machinery.

A model's hyper-parameters are its constructor's keyword arguments (with defaults); the
registry reads them from the signature, so the CLI, tuning and the service set them by name.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError, DataError, NotFittedError
from penchant.models.ranking import chunk_size, top_k

#: Scores a candidate model on held-out data; higher is better. Built by ``penchant.eval``.
Validator = Callable[["Recommender"], float]


class Recommender:
    """Base of every top-K recommender.

    Subclasses implement ``_fit(train, valid)``, ``_score(users) -> (len(users), n_items)`` and
    ``_state()`` / ``_load_state(arrays)`` for persistence. After :meth:`fit`, ``train_``
    holds the binary training matrix used to exclude seen items by default.
    """

    name: ClassVar[str] = ""
    #: one line for ``penchant models``
    summary: ClassVar[str] = ""
    #: parameters ``penchant tune`` searches, with their ranges (empty: nothing to tune)
    search_space: ClassVar[dict[str, Any]] = {}

    train_: sp.csr_matrix | None = None

    # ----- hyper-parameters ----------------------------------------------------------------
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY}

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_defaults()}

    def selected(self) -> dict[str, Any]:
        """Hyper-parameters the model chose itself during fit (e.g. on validation data)."""
        return {}

    # ----- protocol ------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Learn from ``train``; ``valid``, when given, scores candidates for selection/early stopping."""
        if train.n_interactions == 0:
            raise DataError("the training data has no interactions", expected="at least one interaction")
        self.train_ = train.csr
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self._fit(train, valid)
        return self

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Scores, float32 (len(users), n_items), or (len(users), len(items)) for given items.

        Computed in chunks of users so that memory stays bounded.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items_ if items is None else len(items)), dtype=np.float32)
        for start, stop in self._chunks(len(users)):
            block = self._score(users[start:stop])
            out[start:stop] = block if items is None else block[:, items]
        return out

    def recommend(self, users: np.ndarray, k: int = 10, exclude: sp.csr_matrix | None | str = "train",
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user, best first: int32 (n, k) indices and float32 (n, k) scores.

        ``exclude`` is ``"train"`` (the training items of each user), None, or a CSR matrix
        with one row per user in ``users`` listing items to leave out.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if isinstance(exclude, str):
            if exclude != "train":
                raise ConfigError(f"exclude must be 'train', None or a matrix, not {exclude!r}")
            exclude = self.train_[users]  # type: ignore[index]
        items = np.empty((len(users), min(k, self.n_items_)), dtype=np.int32)
        scores = np.empty(items.shape, dtype=np.float32)
        for start, stop in self._chunks(len(users)):
            ex = None if exclude is None else exclude[start:stop]
            items[start:stop], scores[start:stop] = top_k(self._score(users[start:stop]), k, ex)
        return items, scores

    def iter_score_chunks(self, users: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, scores)`` over chunks of ``users``; scores are (stop-start, n_items) float."""
        self._check_fitted()
        for start, stop in self._chunks(len(users)):
            yield start, stop, self._score(np.asarray(users[start:stop], dtype=np.int64))

    # ----- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write parameters and learned state to one ``.npz`` file (no pickle)."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "params": self.params(), "n_users": self.n_users_, "n_items": self.n_items_}
        arrays = dict(self._state())
        assert self.train_ is not None
        arrays.update(_sparse_parts("train", self.train_))
        with open(path, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        """Read a model written by :meth:`save` (of whichever registered class wrote it)."""
        from penchant.models.registry import model_class

        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        klass = model_class(meta["model"])
        model = klass(**meta["params"])
        model.n_users_, model.n_items_ = meta["n_users"], meta["n_items"]
        model.train_ = _sparse_from(arrays, "train")
        model._load_state(arrays)
        return model

    # ----- for subclasses ------------------------------------------------------------------
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        raise NotImplementedError

    def _score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _chunks(self, n: int) -> Iterator[tuple[int, int]]:
        size = chunk_size(self.n_items_)
        for start in range(0, n, size):
            yield start, min(n, start + size)

    def _check_fitted(self) -> None:
        if self.train_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _sparse_parts(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.array(m.shape)}


def _sparse_from(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(arrays[f"{prefix}_shape"]))
