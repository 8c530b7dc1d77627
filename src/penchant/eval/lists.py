"""Score top-K lists made elsewhere (another library, a production system) with penchant's evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.data.build import index_of
from penchant.data.readers import read_table
from penchant.errors import DataError
from penchant.models.base import Recommender


class RankedLists(Recommender):
    """A fixed set of ranked lists posing as a model: listed items score −rank, others −∞.

    Built by :func:`read_ranked_lists`; it is not fitted, it only answers ``score``.
    ``ranks_`` is CSR (n_users, n_items) holding each listed item's rank (1 = best).
    """

    name = "lists"

    def __init__(self) -> None:
        self.ranks_: sp.csr_matrix | None = None

    def params(self) -> dict:
        return {}

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.ranks_ is not None
        ranks = self.ranks_[users].toarray()
        return np.where(ranks > 0, -ranks, -np.inf).astype(np.float32)


def read_ranked_lists(path: str | Path, train: Dataset) -> tuple[RankedLists, dict[str, int]]:
    """Lists from a file with columns user, item, rank (1 = best), over ``train``'s vocabulary.

    Returns the model and what was dropped: rows naming users or items the data does not know.
    """
    table = read_table(path, required=("user", "item", "rank"))
    users = index_of(train.user_ids, table.strings("user").to_numpy())
    items = index_of(train.item_ids, table.strings("item").to_numpy())
    ranks = table.floats("rank")
    if np.any(ranks < 1):
        row = int(np.flatnonzero(ranks < 1)[0])
        raise DataError("rank below 1", file=table.path, line=table.line_of(row), column="rank", expected="ranks from 1")
    dropped = {"rows_with_unknown_user": int((users < 0).sum()), "rows_with_unknown_item": int(((users >= 0) & (items < 0)).sum())}
    ok = (users >= 0) & (items >= 0)
    model = RankedLists()
    model.train_, model.n_users_, model.n_items_ = train.csr, train.n_users, train.n_items
    model.ranks_ = sp.csr_matrix((ranks[ok].astype(np.float32), (users[ok], items[ok])), shape=(train.n_users, train.n_items))
    return model, dropped
