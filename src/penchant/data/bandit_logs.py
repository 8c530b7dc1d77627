"""Logged bandit feedback: what a logging policy showed, with what probability, and what it earned.

One row per shown item: ``round, user, item, position, reward, propensity`` (plus an optional
``slate_propensity``, the probability of the whole list, constant within a round). A *round* is
one served list; ``propensity`` is the logging policy's probability of showing that item at that
position in that round (the marginal, as Open Bandit Pipeline's ``pscore``). Rows are validated
where they are read: every problem names its file, line and column.

A *target policy* is given per round (and optionally per position) as ``round, item, probability``
rows; :func:`target_from_file` joins it to the log's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from penchant.data.readers import read_table
from penchant.data.tables import Table
from penchant.errors import DataError

LOG_COLUMNS = ("round", "user", "item", "position", "reward", "propensity")


@dataclass(frozen=True)
class BanditLog:
    """Logged slates, rows sorted by (round, position).

    Attributes:
        round_ids: external round ids, (R,) strings, in order of first appearance.
        rounds: int64 (n,) index into ``round_ids`` of each row; non-decreasing.
        user_ids, item_ids: vocabularies (strings); ``users``/``items`` int64 (n,) index into them.
        position: int64 (n,) 0-based slot of each row; unique within a round.
        reward: float64 (n,); propensity: float64 (n,) in (0, 1].
        slate_propensity: float64 (R,) in (0, 1], or None (then the product of the rows' propensities
            stands for it, which is exact when the logging policy fills slots independently).
        source: where it was read from (for messages).
    """

    round_ids: np.ndarray
    rounds: np.ndarray
    user_ids: np.ndarray
    users: np.ndarray
    item_ids: np.ndarray
    items: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    slate_propensity: np.ndarray | None = None
    source: str = "<arrays>"

    @property
    def n_rounds(self) -> int:
        return len(self.round_ids)

    def __len__(self) -> int:
        return len(self.rounds)

    @property
    def round_users(self) -> np.ndarray:
        """int64 (R,): the user of each round."""
        first = np.r_[0, np.flatnonzero(np.diff(self.rounds)) + 1]
        return self.users[first]

    @property
    def slate_sizes(self) -> np.ndarray:
        """int64 (R,): rows (shown items) per round."""
        return np.bincount(self.rounds, minlength=self.n_rounds)


def bandit_log(round: object, user: object, item: object, position: object, reward: object, propensity: object, *,
               slate_propensity: object = None, source: str = "<arrays>") -> BanditLog:
    """A validated :class:`BanditLog` from equal-length sequences (one entry per shown item)."""
    frame = pl.DataFrame({"round": np.asarray(round), "user": np.asarray(user), "item": np.asarray(item),
                          "position": np.asarray(position), "reward": np.asarray(reward, dtype=np.float64),
                          "propensity": np.asarray(propensity, dtype=np.float64)}
                         | ({} if slate_propensity is None else
                            {"slate_propensity": np.asarray(slate_propensity, dtype=np.float64)}))
    return _build(Table(frame.with_columns(pl.all().cast(pl.String)), Path(source), 1, "row"))


def read_bandit_log(path: str | Path) -> BanditLog:
    """Read a log file (CSV/TSV/JSON lines/Parquet) with the columns of :data:`LOG_COLUMNS`."""
    return _build(read_table(path, required=LOG_COLUMNS))


def _build(table: Table) -> BanditLog:
    frame = table.frame
    rounds = table.ids("round")
    users, items = table.ids("user"), table.ids("item")
    position = table.floats("position")
    bad = ~np.isfinite(position) | (position < 0) | (position != np.round(position))
    if bad.any():
        raise table.error(f"position {frame['position'][int(np.argmax(bad))]!r} is not a slot number",
                          row=int(np.argmax(bad)), column="position", expected="an integer ≥ 0 (0 is the top)")
    reward = table.floats("reward")
    if not np.isfinite(reward).all():
        row = int(np.argmax(~np.isfinite(reward)))
        raise table.error("reward is not a finite number", row=row, column="reward", expected="a finite number")
    propensity = table.floats("propensity")
    bad = ~((propensity > 0) & (propensity <= 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise table.error(f"propensity {propensity[row]!r} is outside (0, 1]", row=row, column="propensity",
                          expected="the logging policy's probability of showing this item here, in (0, 1]")
    slate = table.floats("slate_propensity") if "slate_propensity" in frame.columns else None
    if slate is not None and not ((slate > 0) & (slate <= 1)).all():
        row = int(np.argmax(~((slate > 0) & (slate <= 1))))
        raise table.error(f"slate_propensity {slate[row]!r} is outside (0, 1]", row=row, column="slate_propensity",
                          expected="the probability of the whole list, in (0, 1]")

    if len(rounds) == 0:
        raise DataError("the log has no rows", file=table.path, expected="one row per shown item")
    round_codes, round_vocab = _codes(rounds)
    order = np.lexsort((position, round_codes))
    r_sorted, p_sorted = round_codes[order], position[order]
    dup = np.flatnonzero((np.diff(r_sorted) == 0) & (np.diff(p_sorted) == 0))
    if len(dup):
        row = int(order[dup[0] + 1])
        raise table.error(f"round {rounds[row]!r} has two rows at position {int(position[row])}", row=row,
                          column="position", expected="one shown item per (round, position)")
    user_vocab, user_idx = np.unique(users.to_numpy().astype(str), return_inverse=True)
    changed = np.flatnonzero((np.diff(r_sorted) == 0) & (np.diff(user_idx[order]) != 0))
    if len(changed):
        row = int(order[changed[0] + 1])
        raise table.error(f"round {rounds[row]!r} names two users ({users[int(order[changed[0]])]!r} and "
                          f"{users[row]!r})", row=row, column="user", expected="one user per round")
    slate_r = None
    if slate is not None:
        s_sorted = slate[order]
        differs = np.flatnonzero((np.diff(r_sorted) == 0) & (np.diff(s_sorted) != 0))
        if len(differs):
            row = int(order[differs[0] + 1])
            raise table.error(f"slate_propensity differs within round {rounds[row]!r}", row=row,
                              column="slate_propensity", expected="one value per round")
        slate_r = np.empty(len(round_vocab))
        slate_r[round_codes] = slate
    item_vocab, item_idx = np.unique(items.to_numpy().astype(str), return_inverse=True)
    return BanditLog(round_vocab, round_codes[order], user_vocab.astype(object), user_idx[order].astype(np.int64),
                     item_vocab.astype(object), item_idx[order].astype(np.int64), p_sorted.astype(np.int64),
                     reward[order], propensity[order], slate_r, str(table.path))


def _codes(ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """int64 (n,): each id's index in order of first appearance; and those ids, (distinct,) strings."""
    frame = pl.DataFrame({"id": ids.cast(pl.String)})
    vocab = frame["id"].unique(maintain_order=True)
    lookup = pl.DataFrame({"id": vocab, "code": np.arange(len(vocab), dtype=np.int64)})
    codes = frame.join(lookup, on="id", how="left", maintain_order="left")["code"].to_numpy()
    return codes, vocab.to_numpy().astype(object)


@dataclass(frozen=True)
class Target:
    """A target policy's probabilities on the log's slots, as sparse entries.

    Attributes:
        row: int64 (m,) the log row (a round's slot) each entry belongs to.
        item_ids: item vocabulary: the log's, extended by items only the target shows.
        item: int64 (m,) index into ``item_ids``; prob: float64 (m,); per row they sum to 1.
        unmatched_rounds: rounds of the target file that are not in the log (counted, not used).
    """

    row: np.ndarray
    item_ids: np.ndarray
    item: np.ndarray
    prob: np.ndarray
    unmatched_rounds: int = 0


def target_from_lists(log: BanditLog, lists: dict[str, list[str]], source: str = "<lists>") -> Target:
    """The deterministic target that shows ``lists[user][p]`` at slot p of every round of ``user``.

    A slot beyond a user's list gets no entry: the target shows nothing there (probability mass 0)."""
    missing = sorted({str(u) for u in log.user_ids} - set(lists))
    if missing:
        raise DataError(f"{len(missing)} user(s) of the log have no list from the target, e.g. {missing[0]!r}",
                        file=source, expected="a list for every user of the log")
    vocab = {str(v): i for i, v in enumerate(log.item_ids)}
    slots = int(log.position.max()) + 1
    table = np.full((len(log.user_ids), slots), -1, dtype=np.int64)  # (user, slot) -> item code
    for u, user in enumerate(log.user_ids):
        for p, item in enumerate(lists.get(str(user), [])[:slots]):
            table[u, p] = vocab.setdefault(str(item), len(vocab))
    item = table[log.users, log.position]
    row = np.flatnonzero(item >= 0)
    ids = np.array(list(vocab), dtype=object)
    return Target(row, ids, item[row], np.ones(len(row)))


def target_from_file(log: BanditLog, path: str | Path) -> Target:
    """Read ``round, item, probability`` (optionally ``position``) rows and join them to the log.

    Without a ``position`` column a round's distribution applies to each of its slots. Each slot's
    probabilities must sum to 1 (± 1e-6); a logged slot without any entry is an error naming it.
    """
    table = read_table(path, required=("round", "item", "probability"))
    prob = table.floats("probability")
    bad = ~((prob >= 0) & (prob <= 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise table.error(f"probability {prob[row]!r} is outside [0, 1]", row=row, column="probability",
                          expected="a probability in [0, 1]")
    has_pos = "position" in table.frame.columns
    frame = pl.DataFrame({"round": table.ids("round").cast(pl.String), "item": table.ids("item").cast(pl.String),
                          "prob": prob, "line": np.arange(len(prob))})
    if has_pos:
        pos = table.floats("position")
        bad = ~np.isfinite(pos) | (pos < 0) | (pos != np.round(pos))
        if bad.any():
            row = int(np.argmax(bad))
            raise table.error("position is not a slot number", row=row, column="position", expected="an integer ≥ 0")
        frame = frame.with_columns(pl.Series("position", pos.astype(np.int64)))
    slots = pl.DataFrame({"round": log.round_ids[log.rounds].astype(str), "position": log.position,
                          "row": np.arange(len(log), dtype=np.int64)})
    keys = ["round", "position"] if has_pos else ["round"]
    joined = slots.join(frame, on=keys, how="inner")
    covered = np.zeros(len(log), dtype=bool)
    covered[joined["row"].to_numpy()] = True
    if not covered.all():
        row = int(np.argmax(~covered))
        raise DataError(f"the target has no probabilities for round {log.round_ids[log.rounds[row]]!r}"
                        + (f" position {int(log.position[row])}" if has_pos else "")
                        + f" ({int((~covered).sum())} logged slot(s) without any)", file=path,
                        expected="a distribution over items for every logged round")
    sums = joined.group_by("row").agg(pl.col("prob").sum(), pl.col("line").first())
    off = sums.filter((pl.col("prob") - 1.0).abs() > 1e-6)
    if len(off):
        line = int(off["line"][0])
        raise table.error(f"the probabilities of round {frame['round'][line]!r} sum to {off['prob'][0]:.6g}", row=line,
                          column="probability", expected="probabilities summing to 1 for each round (and position)")
    unmatched = frame.join(slots.select("round").unique(), on="round", how="anti")["round"].n_unique()
    vocab = {str(v): i for i, v in enumerate(log.item_ids)}
    new = [i for i in joined["item"].unique(maintain_order=True).to_list() if i not in vocab]
    ids = np.concatenate([log.item_ids, np.array(new, dtype=object)])
    lookup = pl.DataFrame({"item": ids.astype(str), "code": np.arange(len(ids), dtype=np.int64)})
    joined = joined.join(lookup, on="item", how="left").sort("row", maintain_order=True)
    return Target(joined["row"].to_numpy(), ids, joined["code"].to_numpy(), joined["prob"].to_numpy(), int(unmatched))


#: the fields of a service dump (``penchant store dump``) that off-policy evaluation reads
DUMP_SCHEMA = {"kind": pl.String, "list_id": pl.String, "user_id": pl.String, "item_id": pl.String,
               "items": pl.List(pl.String), "propensities": pl.List(pl.Float64), "slate_propensity": pl.Float64,
               "type": pl.String, "timestamp": pl.Float64}


def is_dump(path: str | Path) -> bool:
    """Whether ``path`` is a service dump: JSON lines whose first row has a ``kind``."""
    path = Path(path)
    if not {".jsonl", ".ndjson"} & {x.lower() for x in path.suffixes}:
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    return first.lstrip().startswith("{") and '"kind"' in first


def log_from_dump(path: str | Path, reward_types: list[str] | None = None) -> tuple[BanditLog, dict]:
    """The served lists of a service dump as logged bandit feedback.

    Each shown item's reward is 1 if the user has an event on it (of ``reward_types``; default any
    type) at or after it was shown and no later showing of the same item to the same user came
    first (each event credits the latest showing before it), else 0. Returns the log and counts:
    ``lists``, ``impressions`` (shown items), ``rewarded``, ``events``, ``events_without_impression``.
    """
    path = Path(path)
    try:
        frame = pl.read_ndjson(path, schema=DUMP_SCHEMA)
    except pl.exceptions.PolarsError as e:
        raise DataError(f"cannot read the dump: {e}", file=path, expected="JSON lines from `penchant store dump`") from None
    lists = frame.filter(pl.col("kind") == "served")
    if lists.height == 0:
        raise DataError("the dump has no served lists", file=path,
                        expected="a dump of a service that records them (log_impressions = true)")
    shown = (lists.select("list_id", "user_id", "items", "propensities", "slate_propensity", "timestamp")
             .with_columns(position=pl.int_ranges(pl.col("items").list.len()))
             .explode("items", "propensities", "position")
             .rename({"items": "item_id", "propensities": "propensity"}).with_row_index("row"))
    events = frame.filter(pl.col("kind") == "event")
    if reward_types:
        events = events.filter(pl.col("type").is_in(reward_types))
    events = events.select("user_id", "item_id", "timestamp").sort("timestamp")
    credited = events.join_asof(shown.select("user_id", "item_id", "timestamp", "row").sort("timestamp"),
                                on="timestamp", by=["user_id", "item_id"], strategy="backward",
                                check_sortedness=False)  # both sorted by time above
    hits = credited["row"].drop_nulls().unique()
    reward = np.zeros(shown.height)
    reward[hits.to_numpy()] = 1.0
    table = Table(shown.select(round=pl.col("list_id"), user=pl.col("user_id"), item=pl.col("item_id"),
                               position=pl.col("position").cast(pl.String),
                               reward=pl.Series(reward).cast(pl.String),
                               propensity=pl.col("propensity").cast(pl.String),
                               slate_propensity=pl.col("slate_propensity").cast(pl.String)), path, 1, "row")
    log = _build(table)
    counts = {"lists": log.n_rounds, "impressions": len(log), "rewarded": int(len(hits)), "events": events.height,
              "events_without_impression": int(credited["row"].null_count())}
    return log, counts
