"""Datasets from a service's stored events and comparisons (rows of tuples), vectorised.

Interactions: for every (user, item) the latest event with a positive or negative meaning decides;
pairs whose latest is positive are the interactions, each at the time of its latest positive event
(so sequential models see every user's order) with the summed weights of its positive events as
its value. Exposure events are not interactions (they only make an item seen, which the service
handles). Comparisons: (user or None, winner, loser) rows over sorted user and option vocabularies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from penchant.data.dataset import Dataset, Step
from penchant.data.pairs import PreferencePairs


def interactions_from_events(events: Sequence[tuple], meanings: dict[str, str], weights: dict[str, float]) -> Dataset:
    """``events``: (user, item, type, value, timestamp) in timestamp order; ``meanings``: type ->
    ``positive`` | ``negative`` | ``exposure``; ``weights``: type -> weight of a positive event (1 if absent)."""
    frame = pl.DataFrame(list(events), schema=["user", "item", "type", "value", "ts"], orient="row",
                         schema_overrides={"user": pl.String, "item": pl.String, "type": pl.String,
                                           "value": pl.Float64, "ts": pl.Float64}).with_row_index("row")
    frame = frame.with_columns(meaning=pl.col("type").replace_strict(meanings, default=None, return_dtype=pl.String),
                               weight=pl.col("type").replace_strict(weights, default=1.0, return_dtype=pl.Float64))
    decided = frame.filter(pl.col("meaning").is_in(["positive", "negative"]))
    positive = pl.col("meaning") == "positive"
    pairs = (decided.sort("row").group_by("user", "item", maintain_order=True)
             .agg(pl.col("meaning").last().alias("latest"), pl.col("ts").filter(positive).last().alias("when"),
                  pl.col("weight").filter(positive).sum().alias("value"))
             .filter(pl.col("latest") == "positive"))
    user_ids = np.array(sorted(pairs["user"].unique().to_list()), dtype=object)
    item_ids = np.array(sorted(pairs["item"].unique().to_list()), dtype=object)
    users = np.searchsorted(user_ids.astype(str), pairs["user"].to_numpy().astype(str)).astype(np.int32)
    items = np.searchsorted(item_ids.astype(str), pairs["item"].to_numpy().astype(str)).astype(np.int32)
    steps = (Step("events read", len(events), "from the store"),
             Step("positive pairs kept", pairs.height, "latest positive/negative event per user and item is positive"))
    return Dataset(user_ids, item_ids, users, items, ratings=pairs["value"].to_numpy().astype(np.float32),
                   timestamps=pairs["when"].to_numpy().astype(np.float64), steps=steps, name="store")


def pairs_from_rows(rows: Sequence[tuple]) -> PreferencePairs:
    """Stored comparisons (user or None, winner, loser) as :class:`PreferencePairs`."""
    users = np.array([u for u, _, _ in rows], dtype=object)
    winners = np.array([w for _, w, _ in rows], dtype=object).astype(str)
    losers = np.array([loser for _, _, loser in rows], dtype=object).astype(str)
    named = np.array([u is not None for u in users], dtype=bool)
    user_ids = np.unique(users[named].astype(str)) if named.any() else np.array([], dtype=str)
    option_ids = np.unique(np.concatenate([winners, losers]))
    user = np.full(len(rows), -1, dtype=np.int64)
    user[named] = np.searchsorted(user_ids, users[named].astype(str))
    n = len(rows)
    return PreferencePairs(user, np.searchsorted(option_ids, winners).astype(np.int64),
                           np.searchsorted(option_ids, losers).astype(np.int64), np.arange(n, dtype=np.int64),
                           user_ids.astype(object), option_ids.astype(object),
                           steps=(Step("comparisons read", n, "from the store"),), name="store")
