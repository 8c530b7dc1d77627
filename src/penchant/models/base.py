"""The model protocol every recommender follows, and its shared machinery.

A model's hyper-parameters are its constructor's keyword arguments (with defaults); the
registry reads them from the signature, so the CLI, tuning and the service set them by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.data.build import index_of
from penchant.errors import ConfigError, DataError, NotFittedError
from penchant.models import memory
from penchant.models.artefact import Artefact
from penchant.models.ranking import chunk_size, top_k

#: Scores a candidate model on held-out data; higher is better. Built by ``penchant.eval``.
Validator = Callable[["Recommender"], float]


class Recommender:
    """Base of every top-K recommender.

    Subclasses implement ``_fit(train, valid)``, ``_score(users) -> (len(users), n_items)`` (a new
    array: callers mask it in place, so never a view of the model's state) and
    ``_state()`` / ``_load_state(arrays)`` for persistence. After :meth:`fit`, ``train_``
    holds the binary training matrix used to exclude seen items by default.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "ranking"
    aliases: ClassVar[tuple[str, ...]] = ()
    #: one line for ``penchant models``
    summary: ClassVar[str] = ""
    #: parameters ``penchant tune`` searches, with their ranges (empty: nothing to tune)
    search_space: ClassVar[dict[str, Any]] = {}

    train_: sp.csr_matrix | None = None
    #: settings tried on validation, each with its score (models that select among settings)
    selection_: list[dict[str, Any]] | None = None
    #: seconds of each training epoch (models trained by epochs that time them)
    epoch_seconds_: list[float] | None = None
    #: external ids (str arrays): position = index; set by fit, kept by save/load
    user_ids_: np.ndarray
    item_ids_: np.ndarray

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

    def fit_note(self) -> str:
        """What fit did beyond training and selection, in a few words for the fitted line ("": nothing)."""
        return ""

    # ----- protocol ------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Learn from ``train``; ``valid``, when given, scores candidates for selection/early stopping."""
        if train.n_interactions == 0:
            raise DataError("the training data has no interactions", expected="at least one interaction")
        self.check_data(train)
        need = self.memory_need(train, valid)  # before anything is built: a refusal comes at once
        if need is not None:
            memory.check(self.name, *need)
        self.train_ = train.csr
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.user_ids_, self.item_ids_ = train.user_ids.astype(str), train.item_ids.astype(str)
        self._fit(train, valid)
        return self

    def check_data(self, train: Dataset) -> None:
        """Refuse (:class:`DataError`) training data this model cannot learn from — e.g. a text model
        given a log without item text — checked by :meth:`fit` before anything is built, so the
        refusal comes at once whatever the log's size."""

    def memory_need(self, train: Dataset, valid: Validator | None) -> tuple[int, str, tuple[str, ...]] | None:
        """For models whose memory grows faster than the data: the bytes fitting ``train`` would
        allocate, what they are (words), and registry names of models to use instead; checked by
        :meth:`fit` against the memory available before anything large is allocated. None: the fit
        stays within a small multiple of the data."""
        return None

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Scores, float32 (len(users), n_items), or (len(users), len(items)) for given items.

        Computed in chunks of users so that memory stays bounded.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if items is None and len(users) <= chunk_size(self.n_items_):  # one chunk: no copy into `out`
            return np.asarray(self._score(users), dtype=np.float32)
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

    def seen_items(self) -> sp.csr_matrix:
        """CSR (n_users, n_items): the items each user had when fitted (and added by ``partial_fit``);
        what a list for that user leaves out. Read-only: the model's own matrix."""
        self._check_fitted()
        return self.train_  # type: ignore[return-value]

    def item_popularity(self) -> np.ndarray:
        """float64 (n_items,): how many training users have each item (the stated fallback's order)."""
        self._check_fitted()
        return np.bincount(self.train_.indices, minlength=self.n_items_).astype(np.float64)  # type: ignore[union-attr]

    def iter_score_chunks(self, users: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, scores)`` over chunks of ``users``; scores are (stop-start, n_items) float."""
        self._check_fitted()
        for start, stop in self._chunks(len(users)):
            yield start, stop, self._score(np.asarray(users[start:stop], dtype=np.int64))

    # ----- external ids ----------------------------------------------------------------------
    def user_index(self, ids: object) -> np.ndarray:
        """Indices of external user ids, int64 (n,); -1 where the model does not know the user."""
        return index_of(self.user_ids_, np.atleast_1d(np.asarray(ids, dtype=object)))

    def item_index(self, ids: object) -> np.ndarray:
        """Indices of external item ids, int64 (n,); -1 where the model does not know the item."""
        return index_of(self.item_ids_, np.atleast_1d(np.asarray(ids, dtype=object)))

    def _on_vocabulary(self, events: Dataset) -> Dataset:
        """``events`` re-indexed onto the model's vocabularies, for :meth:`partial_fit`.

        Users the model does not know are appended to ``user_ids_`` (and every per-user state grows
        through :meth:`_grow_users`); an item the model does not know is a DataError counting them,
        since no model can score an item it never saw.
        """
        self._check_fitted()
        if events.item_ids is self.item_ids_ or np.array_equal(events.item_ids.astype(str), self.item_ids_):
            item_map = np.arange(self.n_items_, dtype=np.int64)
        else:
            item_map = self.item_index(events.item_ids)
            unknown = np.unique(events.items[item_map[events.items] < 0])
            if len(unknown):
                raise DataError(f"{len(unknown):,} item(s) the model was not fitted on, e.g. "
                                f"{str(events.item_ids[unknown[0]])!r}", expected="items of the model's vocabulary "
                                "(leave unknown items out first; they are counted by `penchant recommend`)")
        user_map = self.user_index(events.user_ids)
        new = user_map < 0
        if new.any():
            present = np.zeros(events.n_users, dtype=bool)
            present[events.users] = True
            grow = new & present
            user_map[grow] = self.n_users_ + np.arange(int(grow.sum()))
            self.user_ids_ = np.concatenate([self.user_ids_, events.user_ids[grow].astype(str)])
            self._grow_users(int(grow.sum()))
        return Dataset(self.user_ids_, self.item_ids_, user_map[events.users].astype(np.int32),
                       item_map[events.items].astype(np.int32), events.ratings, events.timestamps, name=events.name)

    def _add_seen(self, events: Dataset) -> None:
        """Count ``events`` (already on the model's vocabularies) as seen by their users."""
        assert self.train_ is not None
        self.train_ = ((self.train_ + events.csr) > 0).astype(np.float32).tocsr()

    def _grow_users(self, n: int) -> None:
        """Add ``n`` users with empty histories (subclasses grow their per-user state too)."""
        assert self.train_ is not None
        self.train_ = sp.vstack([self.train_, sp.csr_matrix((n, self.n_items_), dtype=np.float32)]).tocsr()
        self.n_users_ += n

    # ----- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one self-describing artefact (:mod:`penchant.models.artefact`): parameters, the user
        and item vocabularies, the seen-items matrix and the learned state; no pickle."""
        return self.to_artefact().write(path)

    def to_artefact(self) -> Artefact:
        """What :meth:`save` writes, in memory."""
        self._check_fitted()
        assert self.train_ is not None
        arrays = dict(self._state())
        arrays.update(_sparse_parts("train", self.train_))
        return Artefact(self.family, self.name, self.params(), arrays, {"users": self.user_ids_, "items": self.item_ids_})

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by :meth:`save` (of whichever registered class wrote it)."""
        from penchant.models.artefact import ArtefactError, load

        model = load(path)
        if not isinstance(model, cls):
            raise ArtefactError(f"holds a {type(model).__name__} ({model.name}), not a {cls.__name__}", file=path)
        return model

    @classmethod
    def from_artefact(cls, art: Artefact) -> Recommender:
        model = cls(**art.params)
        model.train_ = _sparse_from(art.arrays, "train")
        model.n_users_, model.n_items_ = model.train_.shape
        model.user_ids_, model.item_ids_ = art.vocab["users"], art.vocab["items"]
        model._load_state(art.arrays)
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


class HistoryScored(Recommender):
    """A model that scores a user from their row of the seen-items matrix (item-item, linear
    autoencoders, Mult-VAE): adding events to that row is all it takes to learn about a user."""

    def partial_fit(self, events: Dataset) -> Self:
        """Add ``events`` to the users' histories (new users included); the next scores read them."""
        self._add_seen(self._on_vocabulary(events))
        return self

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item, float32 (n_items,), for a user known only by ``items`` (indices;
        values are not used: the history is binary); the model is unchanged."""
        self._check_fitted()
        items = np.unique(np.asarray(items, dtype=np.int64))
        row = sp.csr_matrix((np.ones(len(items), np.float32), (np.zeros(len(items), np.int64), items)),
                            shape=(1, self.n_items_))
        return np.asarray(self._score_rows(row), dtype=np.float32)[0]

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.train_ is not None
        return self._score_rows(self.train_[users])

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores (n, n_items) for binary history rows, CSR (n, n_items)."""
        raise NotImplementedError


def _sparse_parts(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.array(m.shape)}


def _sparse_from(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
                         shape=tuple(arrays[f"{prefix}_shape"]))
