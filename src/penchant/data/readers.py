"""Readers for interaction logs, RecBole atomic files and side tables.

A reader returns a :class:`Log` (or :class:`SideTable`): parsed, validated columns that still
know which file and line each row came from, so that later checks (unknown ids) can point at
the line. :mod:`penchant.data.build` turns them into a :class:`~penchant.data.dataset.Dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from penchant.data.dataset import Step
from penchant.data.tables import Codes, Table, read_delimited, read_json_lines, read_parquet
from penchant.errors import ConfigError, DataError

USER_ALIASES = ("user", "user_id", "userid", "userId", "uid", "customer_id", "visitorid")
ITEM_ALIASES = ("item", "item_id", "itemid", "itemId", "iid", "movieId", "movie_id", "product_id")
RATING_ALIASES = ("rating", "ratings", "score", "weight", "value", "label")
TIME_ALIASES = ("timestamp", "time", "ts", "datetime", "date", "event_time")

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
#: what a blank rating means: an error (the default), a row left out, or no ratings at all (every row
#: an interaction: a log that mixes clicks with ratings read as implicit feedback)
BLANK_RATINGS = ("error", "skip", "implicit")
ATOMIC_EXTENSIONS = (".inter", ".item", ".user", ".kg", ".link", ".net")


@dataclass(frozen=True)
class Log:
    """An interaction log: external ids and optional rating/time, one entry per row.

    Attributes:
        table: the source table (for line numbers: row r is on ``table.line_of(r)``).
        user, item: external ids as strings, shape (n,): polars String series as read (no Python
            string per row), or numpy arrays.
        rating: float64 (n,) or None.
        timestamp: float64 (n,) unix seconds, or None.
        keep: bool (n,), the rows to build from (a row with a blank rating under ``blank_rating="skip"``
            is read, so that its line is known, but left out), or None for every row.
        steps: what reading counted on the way (ids whose whitespace was stripped, blank ratings).
        codes: for user and item ids read as Categorical, their physical codes as the reader's checks
            found them (:meth:`Table.codes`), so that building does not look at the n rows again;
            None for other ids.
    """

    table: Table
    user: np.ndarray | pl.Series
    item: np.ndarray | pl.Series
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    keep: np.ndarray | None = None
    steps: tuple[Step, ...] = ()
    codes: tuple[Codes | None, Codes | None] = (None, None)

    def __len__(self) -> int:
        return len(self.user)


@dataclass(frozen=True)
class SideTable:
    """Side information about items or users, one row per id.

    Attributes:
        table: the source table.
        ids: external ids, shape (m,), strings.
        categorical: attribute name -> list of values per row (a row may have several).
        text: descriptive text per row (a title), or None.
    """

    table: Table
    ids: np.ndarray | pl.Series
    categorical: dict[str, list[list[str]]] = field(default_factory=dict)
    text: np.ndarray | None = None


@dataclass(frozen=True)
class KnowledgeGraph:
    """Items linked to entities (``link``) and (head, relation, tail) triples over entities."""

    link: Table
    link_items: np.ndarray
    link_entities: np.ndarray
    triples: Table
    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray


def _find_column(columns: list[str], given: str | None, aliases: tuple[str, ...]) -> str | None:
    """The column named ``given``, else the first of ``aliases`` present (any case), else None."""
    if given is not None:
        return given
    lower = {c.lower(): c for c in columns}
    return next((lower[a.lower()] for a in aliases if a.lower() in lower), None)


def _pick(columns: list[str], given: str | None, aliases: tuple[str, ...], what: str, table: Table,
          required: bool) -> str | None:
    if given is not None:
        table.require(given)
    found = _find_column(columns, given, aliases)
    if found is not None:
        return found
    if required:
        have = ", ".join(repr(c) for c in columns)
        raise DataError(f"no {what} column found (columns: {have})", file=table.path, line=1 if table.line_kind == "line" else None,
                        expected=f"a column named one of {', '.join(aliases[:4])}, or --{what}-col NAME")
    return None


def is_atomic(path: Path) -> bool:
    return path.suffix.lower() in ATOMIC_EXTENSIONS


#: polars dtype of each atomic type on the typed path (``*_seq`` columns stay strings, split where read)
ATOMIC_DTYPES: dict[str, pl.DataType] = {"token": pl.Categorical(), "float": pl.Float64()}


def atomic_schema(header: list[str]) -> dict[str, pl.DataType]:
    """The typed reading of an atomic header's ``name:type`` fields (see :data:`ATOMIC_DTYPES`): token
    columns as Categorical ids, float columns as Float64; fields that are not ``name:type`` are left to
    :func:`read_atomic`'s header check."""
    kinds = {col: col.rpartition(":")[2] for col in header}
    return {col: ATOMIC_DTYPES[kind] for col, kind in kinds.items() if kind in ATOMIC_DTYPES}


def read_atomic(path: str | Path, required: tuple[str, ...] = (), *, typed: bool = False) -> tuple[Table, dict[str, str]]:
    """Read a RecBole atomic file (tab-separated, header of ``name:type``).

    Returns the table with plain column names and the type of each column. Float columns are
    checked to parse; ``token_seq`` columns are kept as space-separated strings. With ``typed``,
    token columns are read as Categorical and float columns as Float64 (:func:`atomic_schema`: no
    string per row for a large ``.inter``); any value that does not parse sends the whole file down
    the string path, whose checks name its line and column (see :func:`read_delimited`).
    """
    path = Path(path)
    table = read_delimited(path, sep="\t", quoting=False, typed=atomic_schema if typed else None)
    types: dict[str, str] = {}
    renames = {}
    for col in table.frame.columns:
        name, colon, kind = col.rpartition(":")
        if not colon or kind not in ATOMIC_TYPES or not name:
            raise DataError(f"header field {col!r} is not of the form name:type", file=path, line=1, column=col,
                            expected=f"name:type with type one of {', '.join(ATOMIC_TYPES)}")
        renames[col] = name
        types[name] = kind
    table = Table(table.frame.rename(renames), table.path, table.first_line)
    for name in required:
        table.require(name)
    for name, kind in types.items():
        if kind == "float" and not table.frame[name].dtype.is_numeric():  # read typed: parsed already
            table.floats(name, allow_empty=True)
        elif kind == "float_seq":
            seq = table.frame[name].str.split(" ").explode().str.strip_chars()
            bad = seq.cast(pl.Float64, strict=False).is_null() & (seq != "") & seq.is_not_null()
            if bad.any():
                row_lengths = table.frame[name].str.split(" ").list.len().cum_sum()
                row = int(np.searchsorted(row_lengths.to_numpy(), int(bad.arg_true()[0]), side="right"))
                raise table.error("cannot parse a number in the sequence", row=row, column=name, expected="space-separated numbers")
    return table, types


def read_table(path: str | Path, *, sep: str | None = None, encoding: str = "utf-8", required: tuple[str, ...] = (),
               typed: Callable[[list[str]], dict[str, pl.DataType]] | None = None) -> Table:
    """Read any supported tabular file (CSV/TSV/other delimited text, JSON lines, Parquet) as
    strings; ``typed`` (delimited text and Parquet, see :func:`read_delimited` and :func:`read_parquet`)
    reads some columns typed."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        table = read_parquet(path, typed)
        table.require(*required)
        return table
    if {".jsonl", ".ndjson"} & {x.lower() for x in path.suffixes}:
        table = read_json_lines(path, encoding)
        table.require(*required)
        return table
    return read_delimited(path, sep=sep, encoding=encoding, required=required, typed=typed)


def read_log(
    path: str | Path,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    blank_rating: str = "error",
) -> Log:
    """Read an interaction log.

    Formats: CSV, TSV (or any delimited text), Parquet, and RecBole ``.inter`` atomic files.
    Columns are found by name (``user``/``user_id``/``userId``, ``item``/``item_id``/``movieId``,
    ``rating``, ``timestamp`` …) unless named explicitly. Rating and time are optional.

    Ids lose surrounding whitespace (``" 1"`` is user ``1``); the ids that had it, and the users and
    items that merged because of it, are counted in the log's ``steps``. A blank rating is an error
    unless ``blank_rating`` says what it means (:data:`BLANK_RATINGS`): ``"skip"`` leaves such rows
    out, ``"implicit"`` keeps every row and drops the ratings; either is counted in ``steps``.

    Raises:
        DataError: naming file, line and column for anything malformed.
    """
    path = Path(path)
    if is_atomic(path):
        table, _ = read_atomic(path, typed=True)
        user_col = user_col or "user_id"
        item_col = item_col or "item_id"
    else:
        def typed(names: list[str]) -> dict[str, pl.DataType]:
            """Ids as Categorical and rating/time as numbers, for the columns the log will use."""
            wanted = ((user_col, USER_ALIASES, pl.Categorical()), (item_col, ITEM_ALIASES, pl.Categorical()),
                      (rating_col, RATING_ALIASES, pl.Float64()), (time_col, TIME_ALIASES, pl.Float64()))
            found = ((_find_column(names, given, aliases), dtype) for given, aliases, dtype in wanted)
            return {name: dtype for name, dtype in found if name is not None}

        table = read_table(path, sep=sep, encoding=encoding, typed=typed)
    return log_from_table(table, user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col,
                          blank_rating=blank_rating)


def log_from_table(table: Table, *, user_col: str | None = None, item_col: str | None = None,
                   rating_col: str | None = None, time_col: str | None = None, blank_rating: str = "error") -> Log:
    """Pick and parse the user, item, rating and time columns of a table of strings (see :func:`read_log`)."""
    if blank_rating not in BLANK_RATINGS:
        raise ConfigError(f"blank_rating must be one of {', '.join(BLANK_RATINGS)}, not {blank_rating!r}")
    cols = table.frame.columns
    ucol = _pick(cols, user_col, USER_ALIASES, "user", table, True)
    icol = _pick(cols, item_col, ITEM_ALIASES, "item", table, True)
    rcol = _pick(cols, rating_col, RATING_ALIASES, "rating", table, False)
    tcol = _pick(cols, time_col, TIME_ALIASES, "time", table, False)
    assert ucol is not None and icol is not None
    user, item = table.ids(ucol), table.ids(icol)
    steps = whitespace_steps(table, {"user": (ucol,), "item": (icol,)})
    rating, keep = None, None
    if rcol is not None:
        rating, blank = table.numbers(rcol)
        odd = ~np.isfinite(rating) & ~blank
        if odd.any():
            row = int(np.flatnonzero(odd)[0])
            raise table.error(f"rating {rating[row]:g} is not a finite number", row=row, column=rcol, expected="a number")
        n_blank = int(blank.sum())
        if n_blank and blank_rating == "error":
            raise table.error("empty value", row=int(np.flatnonzero(blank)[0]), column=rcol,
                              expected="a number; a log that mixes unrated rows (clicks) with ratings is read with "
                                       "--blank-rating skip (blank_rating='skip': those rows left out) or "
                                       "--blank-rating implicit (every row kept, without ratings)")
        if n_blank and blank_rating == "skip":
            keep = ~blank
            steps.append(Step("blank ratings", n_blank, "rows without a rating left out (blank rating: skip)"))
        elif n_blank:
            rating = None
            steps.append(Step("blank ratings", n_blank, f"rows without a rating; all {len(blank):,} rows kept as "
                                                        "interactions without ratings (blank rating: implicit)"))
    codes = (table.codes(ucol) if user.dtype == pl.Categorical else None,
             table.codes(icol) if item.dtype == pl.Categorical else None)
    return Log(table=table, user=user, item=item, rating=rating,
               timestamp=None if tcol is None else table.timestamps(tcol), keep=keep, steps=tuple(steps), codes=codes)


def whitespace_steps(table: Table, vocabularies: dict[str, tuple[str, ...]]) -> list[Step]:
    """A step counting the ids whose surrounding whitespace :meth:`Table.ids` stripped, naming what that
    merged; ``vocabularies`` maps a kind of id (``user``) to the columns holding it. None if no id had any."""
    spaced, merged = 0, []
    for what, cols in vocabularies.items():
        n_spaced, n_merged = table.id_whitespace(*cols)
        spaced += n_spaced
        if n_merged:
            merged.append(f"{n_merged:,} {what}{'s' if n_merged != 1 else ''}")
    if not spaced:
        return []
    detail = f"stripped, merging {' and '.join(merged)}" if merged else "stripped; no two ids merged"
    return [Step("ids with surrounding whitespace", spaced, detail)]


def log_from_frame(frame: object, name: str = "<frame>", **columns: str) -> Log:
    """A :class:`Log` from an in-memory polars or pandas DataFrame (rows numbered from 1)."""
    if not isinstance(frame, pl.DataFrame):
        try:
            import pandas as pd  # optional: only to accept pandas frames at the edge
        except ImportError:
            pd = None
        if pd is None or not isinstance(frame, pd.DataFrame):
            raise DataError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}")
        frame = pl.DataFrame({str(c): frame[c].to_numpy() for c in frame.columns})
    if frame.height == 0:
        raise DataError("the frame has no rows", file=name, expected="at least one row")
    strings = frame.with_columns(pl.all().cast(pl.String))
    return log_from_table(Table(strings, Path(name), first_line=1, line_kind="row"), **columns)


def side_from_atomic(path: str | Path, id_col: str) -> SideTable:
    """Side information from a RecBole ``.item`` or ``.user`` file.

    ``token`` and ``token_seq`` columns become categorical attributes (``token_seq`` values
    split on spaces), except a ``token_seq`` column whose name contains ``title`` or ``name``,
    which becomes the text. Float columns are validated but not used as categories.
    """
    table, types = read_atomic(path, required=(id_col,))
    table.ids(id_col)  # invisible characters are an error here too
    ids = table.strings(id_col)
    dup = ids.is_duplicated()
    if dup.any():
        row = int(dup.arg_true()[1] if dup.sum() > 1 else dup.arg_true()[0])
        raise table.error(f"id {ids[row]!r} appears more than once", row=row, column=id_col, expected="one row per id")
    categorical: dict[str, list[list[str]]] = {}
    text = None
    for name, kind in types.items():
        if name == id_col or kind.startswith("float"):
            continue
        values = table.frame[name].fill_null("").str.strip_chars()
        if kind == "token_seq" and ("title" in name.lower() or "name" in name.lower()):
            text = values.to_numpy().astype(object)
            continue
        if kind == "token_seq":
            categorical[name] = [[v for v in row if v] for row in values.str.split(" ").to_list()]
        else:
            categorical[name] = [[v] if v else [] for v in values.to_list()]
    return SideTable(table=table, ids=ids.to_numpy().astype(object), categorical=categorical, text=text)


def read_knowledge_graph(link_path: str | Path, kg_path: str | Path) -> KnowledgeGraph:
    """A RecBole ``.link`` (item_id, entity_id) and ``.kg`` (head_id, relation_id, tail_id) pair."""
    link, _ = read_atomic(link_path, required=("item_id", "entity_id"))
    kg, _ = read_atomic(kg_path, required=("head_id", "relation_id", "tail_id"))
    return KnowledgeGraph(
        link=link,
        link_items=link.strings("item_id").to_numpy().astype(object),
        link_entities=link.strings("entity_id").to_numpy().astype(object),
        triples=kg,
        heads=kg.strings("head_id").to_numpy().astype(object),
        relations=kg.strings("relation_id").to_numpy().astype(object),
        tails=kg.strings("tail_id").to_numpy().astype(object),
    )
