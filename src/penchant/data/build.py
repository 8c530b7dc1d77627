"""Turn parsed logs and side tables into :class:`Dataset` objects over shared vocabularies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from penchant.data.dataset import Attribute, Dataset, Step
from penchant.data.readers import KnowledgeGraph, Log, SideTable
from penchant.data.tables import Codes, category_codes
from penchant.errors import ConfigError

Dedupe = Literal["last", "first", "none"]


IdArray = np.ndarray | pl.Series


def as_id_series(ids: IdArray) -> pl.Series:
    """Ids as a polars String or Categorical series (a polars series is taken as it is)."""
    if isinstance(ids, pl.Series):
        return ids if ids.dtype in (pl.String, pl.Categorical) else ids.cast(pl.String)
    return pl.Series(np.asarray(ids, dtype=str), dtype=pl.String)


def concat_ids(parts: Sequence[IdArray]) -> pl.Series:
    """Several id arrays as one series (Categorical when all are, else String)."""
    series = [as_id_series(p) for p in parts]
    if not series:
        return pl.Series([], dtype=pl.String)
    if any(s.dtype != series[0].dtype for s in series):
        series = [s.cast(pl.String) for s in series]
    return pl.concat(series)


def sorted_ids(ids: IdArray) -> np.ndarray:
    """Unique ids in natural order: numerically when every id is an integer (ids of one number, such
    as ``7`` and ``007``, in text order), else as text; object (V,) of str. The unique step runs in
    polars, so only the V distinct ids become Python strings."""
    series = as_id_series(ids)
    unique = category_codes(series)[2] if _coded(series) else series.unique().cast(pl.String)
    numbers = unique.cast(pl.Int64, strict=False)
    if numbers.null_count() == 0:  # ties broken by the text: the order unique() returns must not leak
        return pl.DataFrame({"n": numbers, "s": unique}).sort("n", "s")["s"].to_numpy().astype(object)
    return unique.sort().to_numpy().astype(object)


def index_of(vocab: IdArray, ids: IdArray, dtype: type = np.int64) -> np.ndarray:
    """Positions (``dtype``, int64 by default) of ``ids`` in ``vocab``; -1 where absent.
    Vectorised via a join; ids read as Categorical are joined by their distinct values and mapped
    back through their codes (then ``dtype`` costs no conversion)."""
    ids = as_id_series(ids)
    if _coded(ids):
        return _index_codes(vocab, *category_codes(ids), dtype)
    left = pl.DataFrame({"id": ids.cast(pl.String)})
    right = pl.DataFrame({"id": as_id_series(vocab), "pos": np.arange(len(vocab), dtype=np.int64)})
    out = left.join(right, on="id", how="left", maintain_order="left")["pos"].fill_null(-1).to_numpy(writable=True)
    return out if out.dtype == dtype else out.astype(dtype)


def _coded(ids: pl.Series) -> bool:
    """Whether ids are Categorical without nulls, so that their physical codes stand for them."""
    return ids.dtype == pl.Categorical and len(ids) > 0 and not ids.null_count()


def _index_codes(vocab: IdArray, codes: np.ndarray, present: np.ndarray, values: pl.Series,
                 dtype: type) -> np.ndarray:
    """Positions (``dtype`` (n,)) in ``vocab`` of the rows' ids given as physical ``codes`` (n,), the
    codes ``present`` (V,) and their strings ``values`` (V,) (see :func:`category_codes`): the V
    distinct ids are joined, the n rows only gathered; -1 where absent."""
    lookup = np.full(int(present[-1]) + 1, -1, dtype=dtype)
    lookup[present] = index_of(vocab, values, dtype)
    return lookup[codes]


class _IdColumn:
    """One log's id column (n,) reduced once to its distinct ids, for the vocabulary and the rows'
    positions in it. Ids read as Categorical keep each row's physical code, so no later step hashes
    the n rows again; other ids take :func:`sorted_ids` and :func:`index_of` as they are."""

    def __init__(self, ids: IdArray, keep: np.ndarray | None, codes: Codes | None = None) -> None:
        """``codes``: :func:`category_codes` of ``ids`` where the reader has them already."""
        series = as_id_series(ids)
        self.series = series
        self.coded = _coded(series)
        if self.coded:
            self.codes, self.present, self.values = codes if codes is not None else category_codes(series)
            kept = series.filter(pl.Series(keep)) if keep is not None else None
            #: the ids of the rows built from (a row left out for a blank rating adds no id)
            self.kept: pl.Series = self.values if kept is None else (
                category_codes(kept)[2] if len(kept) else pl.Series([], dtype=pl.String))
        else:
            self.kept = series if keep is None else series.filter(pl.Series(keep))

    def positions(self, vocab: np.ndarray, dtype: type) -> np.ndarray:
        """Each row's position (``dtype`` (n,)) in ``vocab``; -1 where absent."""
        if self.coded:
            return _index_codes(vocab, self.codes, self.present, self.values, dtype)
        return index_of(vocab, self.series, dtype)


def attribute_from_lists(values_per_row: list[list[str]], rows: np.ndarray, n: int) -> Attribute:
    """Attribute matrix (n, V) from per-row value lists placed at entity indices ``rows``."""
    lengths = np.fromiter((len(v) for v in values_per_row), dtype=np.int64, count=len(values_per_row))
    flat = np.array([x for v in values_per_row for x in v], dtype=object)
    entity = np.repeat(rows, lengths)
    return _attribute(entity, flat, n)


def _attribute(entity: np.ndarray, flat: np.ndarray, n: int) -> Attribute:
    vocab = sorted_ids(flat) if len(flat) else np.array([], dtype=object)
    col = index_of(vocab, flat) if len(flat) else np.array([], dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(col), np.float32), (entity, col)), shape=(n, len(vocab)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return Attribute(vocab, m)


def _dedupe(log_users: np.ndarray, log_items: np.ndarray, ts: np.ndarray | None, policy: Dedupe,
            n_items: int) -> tuple[np.ndarray | slice, int]:
    """Rows to keep (sorted indices, or ``slice(None)`` for all of them, so the caller's arrays are
    kept without a copy) and how many rows repeat an earlier (user, item) pair: removed, or kept
    as they are under ``policy="none"``."""
    n = len(log_users)
    if policy not in ("last", "first", "none"):
        raise ConfigError(f"dedupe must be last, first or none, not {policy!r}")
    n_users = int(log_users.max()) + 1 if n else 0
    if n_users * n_items <= 1 << 32:  # the pair as one uint32: hashed a fifth faster than as int64
        key = log_users.astype(np.uint32) * np.uint32(n_items) + log_items.astype(np.uint32)
    else:
        key = log_users.astype(np.int64) * n_items + log_items
    distinct = pl.Series(key).n_unique()
    if policy == "none" or distinct == n:
        return slice(None), n - distinct  # one hash pass finds no repeat (the usual case): nothing to order
    order = np.lexsort([np.arange(n)] + ([ts] if ts is not None else []))  # time, then file order
    key = key[order]
    if policy == "last":
        _, pos = np.unique(key[::-1], return_index=True)
        keep = order[n - 1 - pos]
    else:
        _, pos = np.unique(key, return_index=True)
        keep = order[pos]
    return np.sort(keep), n - len(keep)


def _repeat_step(count: int, policy: Dedupe, timed: bool) -> Step:
    if policy == "none":
        return Step("repeated pairs kept", count, "repeated (user, item) rows kept as interactions of their own (dedupe none)")
    order = "by time (file order breaks ties)" if timed else "in file order"
    return Step("repeated pairs", count, f"repeated (user, item) rows merged; kept the {policy} of each pair {order}")


def build_datasets(
    logs: Sequence[Log],
    *,
    items: SideTable | None = None,
    users: SideTable | None = None,
    kg: KnowledgeGraph | None = None,
    dedupe: Dedupe = "last",
    names: Sequence[str] | None = None,
) -> list[Dataset]:
    """One :class:`Dataset` per log, all over the same user and item vocabularies.

    The vocabularies are the ids of the side tables where given (then a log id missing from
    them is an error naming its line) or else the union of the logs' ids. Repeated
    (user, item) rows within a log are reduced by ``dedupe`` (keeping the latest by default)
    and counted in the dataset's ``steps`` (and counted there when kept, with ``dedupe="none"``),
    after the rows read and what reading counted (the log's own steps).
    """
    names = list(names) if names is not None else [log.table.path.stem for log in logs]
    user_cols = [_IdColumn(log.user, log.keep, log.codes[0]) for log in logs]
    item_cols = [_IdColumn(log.item, log.keep, log.codes[1]) for log in logs]
    item_vocab = sorted_ids(items.ids) if items is not None else sorted_ids(concat_ids([c.kept for c in item_cols]))
    user_vocab = sorted_ids(users.ids) if users is not None else sorted_ids(concat_ids([c.kept for c in user_cols]))

    def check(idx: np.ndarray, log: Log, what: str, side: SideTable) -> None:
        unknown = idx < 0
        if log.keep is not None:  # rows read but left out (blank ratings) are not checked
            unknown &= log.keep
        bad = np.flatnonzero(unknown)
        if len(bad):
            row = int(bad[0])
            ids = log.user if what == "user" else log.item
            raise log.table.error(f"{what} id {ids[row]!r} is not in {side.table.path.name} "
                                  f"({len(bad):,} rows have unknown {what}s)", row=row,
                                  expected=f"{what} ids listed in {side.table.path}")

    item_attrs: dict[str, Attribute] = {}
    item_text = None
    if items is not None:
        rows = index_of(item_vocab, items.ids)
        for key, lists in items.categorical.items():
            item_attrs[key] = attribute_from_lists(lists, rows, len(item_vocab))
        if items.text is not None:
            item_text = np.empty(len(item_vocab), dtype=object)
            item_text[:] = ""
            item_text[rows] = items.text
    if kg is not None:
        item_attrs.update(_kg_attributes(kg, item_vocab, items))
    user_attrs: dict[str, Attribute] = {}
    if users is not None:
        rows = index_of(user_vocab, users.ids)
        for key, lists in users.categorical.items():
            user_attrs[key] = attribute_from_lists(lists, rows, len(user_vocab))

    out = []
    for log, name, user_col, item_col in zip(logs, names, user_cols, item_cols):
        uidx = user_col.positions(user_vocab, np.int32)
        iidx = item_col.positions(item_vocab, np.int32)
        if users is not None:
            check(uidx, log, "user", users)
        if items is not None:
            check(iidx, log, "item", items)
        rows = slice(None) if log.keep is None else np.flatnonzero(log.keep)
        ts = None if log.timestamp is None else log.timestamp[rows]
        keep, repeats = _dedupe(uidx[rows], iidx[rows], ts, dedupe, len(item_vocab))
        if log.keep is not None:
            keep = rows[keep]
        steps = [Step("rows read", len(log), f"from {log.table.path}"), *log.steps]
        if repeats:
            steps.append(_repeat_step(repeats, dedupe, log.timestamp is not None))
        out.append(Dataset(
            user_ids=user_vocab, item_ids=item_vocab,
            users=uidx[keep].astype(np.int32, copy=False), items=iidx[keep].astype(np.int32, copy=False),
            ratings=None if log.rating is None else log.rating[keep].astype(np.float32, copy=False),
            timestamps=None if log.timestamp is None else log.timestamp[keep],
            item_attributes=item_attrs, user_attributes=user_attrs, item_text=item_text,
            steps=tuple(steps), name=name,
        ))
    return out


def _kg_attributes(kg: KnowledgeGraph, item_vocab: np.ndarray, items: SideTable | None) -> dict[str, Attribute]:
    """``kg:<relation>`` attributes: the tails of each item's linked entity, per relation."""
    pos = index_of(item_vocab, kg.link_items)
    bad = np.flatnonzero(pos < 0)
    if len(bad):
        row = int(bad[0])
        source = items.table.path.name if items is not None else "the interactions"
        raise kg.link.error(f"item id {kg.link_items[row]!r} is not in {source} ({len(bad):,} unknown)",
                            row=row, column="item_id", expected="item ids of the data set")
    link = pl.DataFrame({"item": pos, "entity": np.asarray(kg.link_entities, dtype=str)})
    triples = pl.DataFrame({"entity": np.asarray(kg.heads, dtype=str), "relation": np.asarray(kg.relations, dtype=str),
                            "tail": np.asarray(kg.tails, dtype=str)})
    joined = link.join(triples, on="entity", how="inner")
    out = {}
    for (relation,), part in joined.group_by("relation", maintain_order=True):
        out[f"kg:{relation}"] = _attribute(part["item"].to_numpy(), part["tail"].to_numpy().astype(object), len(item_vocab))
    return dict(sorted(out.items()))
