"""Score top-K lists made elsewhere (another library, a production system) with penchant's evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from penchant.data import Dataset
from penchant.data.build import index_of
from penchant.data.readers import read_table
from penchant.errors import DataError
from penchant.models.base import Recommender


class RankedLists(Recommender):
    """A fixed set of ranked lists posing as a model: listed items score −rank, others −∞.

    Built by :func:`read_ranked_lists`; it is not fitted, it only answers ``score``.
    """

    name = "lists"

    def __init__(self) -> None:
        self.scores_: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def params(self) -> dict:
        return {}

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), self.n_items_), -np.inf, dtype=np.float32)
        for row, u in enumerate(users):
            if int(u) in self.scores_:
                items, ranks = self.scores_[int(u)]
                out[row, items] = -ranks
        return out


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
    users, items, ranks = users[ok], items[ok], ranks[ok]
    model = RankedLists()
    model.train_, model.n_users_, model.n_items_ = train.csr, train.n_users, train.n_items
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for chunk in np.split(order, bounds):
        if len(chunk):
            model.scores_[int(users[chunk[0]])] = (items[chunk], ranks[chunk].astype(np.float32))
    return model, dropped
