"""Low-level reading of delimited text and Parquet tables with errors that point at the line.

Everything is read as strings first, then converted column by column, so that a value that
does not parse can be reported with its file, line and column instead of turning into a null.
A log's id, rating and time columns may instead be read typed (ids Categorical, numbers Float64:
``typed`` in :func:`read_delimited` and :func:`read_parquet`); anything the typed reading cannot
take sends the file, or the column, down the string path, so the errors are the same.
Line numbers count from 1 with the header as line 1.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from penchant.errors import DataError

#: control and format characters (NUL, zero-width spaces, BOM, bidi marks, line/paragraph separators)
INVISIBLE = "[\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\ufeff]"
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "::": "'::'", " ": "space"}
_SNIFF_ORDER = ("\t", "::", ",", ";", "|")
_EXTENSION_DELIMITERS = {".tsv": "\t", ".inter": "\t", ".item": "\t", ".user": "\t", ".kg": "\t",
                         ".link": "\t", ".csv": ",", ".dat": "::", ".data": "\t"}


#: a Categorical column through its codes: each row's code (n,), the codes present (V,), their strings (V,)
Codes = tuple[np.ndarray, np.ndarray, pl.Series]


def category_codes(values: pl.Series) -> Codes:
    """A Categorical series without nulls seen through its physical codes: each row's code (unsigned
    (n,)), the distinct codes present (int64 (V,), ascending) and their strings (String (V,), in the
    same order). One scatter of the n codes into an array as long as the largest code, where hashing
    the n values again (``unique``) would cost several times more; the strings come from one row
    holding each code, so only V values are looked at."""
    codes = values.to_physical().to_numpy()
    if not len(codes):
        return codes, np.zeros(0, dtype=np.int64), pl.Series([], dtype=pl.String)
    row_of = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    row_of[codes] = np.arange(len(codes))  # any row holding a code will do, whichever write lands
    present = np.flatnonzero(row_of >= 0)
    return codes, present, values.gather(row_of[present]).cast(pl.String)


@dataclass(frozen=True)
class Table:
    """A table read as strings.

    Attributes:
        frame: every column as ``pl.String``; row ``r`` of the frame is on line ``r + first_line``
            unless ``row_line`` says otherwise.
        path: where it came from.
        first_line: the line number of the first data row (2 with a header, 1 without), or the
            1-based row number for Parquet.
        line_kind: "line" for text files, "row" for Parquet and frames.
        row_line: the physical line a row starts on, where rows and lines do not match one to one
            (a quoted field holding a newline, blank lines skipped in JSON lines); asked only when
            an error names a row, so a file read without error pays nothing for it.
    """

    frame: pl.DataFrame
    path: Path
    first_line: int
    line_kind: str = "line"
    row_line: Callable[[int], int] | None = field(default=None, compare=False, repr=False)
    #: distinct values of Categorical columns (String), computed once for the checks that read them
    _distinct: dict[str, pl.Series] = field(default_factory=dict, compare=False, repr=False)
    #: :func:`category_codes` of Categorical columns without nulls, computed once
    _codes: dict[str, Codes] = field(default_factory=dict, compare=False, repr=False)

    def codes(self, column: str) -> Codes | None:
        """:func:`category_codes` of a column read as Categorical without nulls (cached), else None."""
        values = self.frame[column]
        if values.dtype != pl.Categorical or values.null_count():
            return None
        if column not in self._codes:
            self._codes[column] = category_codes(values)
        return self._codes[column]

    def distinct(self, column: str) -> pl.Series:
        """The distinct values of a column read as Categorical, as a String series (cached; a null
        among them when the column has one)."""
        if column not in self._distinct:
            codes = self.codes(column)
            self._distinct[column] = self.frame[column].unique().cast(pl.String) if codes is None else codes[2]
        return self._distinct[column]

    def line_of(self, row: int) -> int:
        if self.row_line is not None:
            return self.row_line(int(row))
        return int(row) + self.first_line

    def error(self, message: str, *, row: int | None = None, column: str | None = None,
              expected: str | None = None) -> DataError:
        line = None if row is None else self.line_of(row)
        return DataError(message, file=self.path, line=line, column=column, expected=expected,
                         line_kind=self.line_kind)

    def require(self, *columns: str) -> None:
        """Raise naming the first missing column and the columns that are there."""
        for name in columns:
            if name not in self.frame.columns:
                have = ", ".join(repr(c) for c in self.frame.columns)
                raise DataError(f"no column '{name}' in the header (columns: {have})", file=self.path,
                                line=1 if self.line_kind == "line" else None, column=name,
                                expected=f"a column named '{name}'")

    def strings(self, column: str, *, allow_empty: bool = False) -> pl.Series:
        """The column as stripped strings; empty values raise unless ``allow_empty``."""
        self.require(column)
        values = self.frame[column]
        values = (values if values.dtype == pl.String else values.cast(pl.String)).str.strip_chars()
        if not allow_empty:
            empty = values.is_null() | (values == "")
            if empty.any():
                row = int(empty.arg_true()[0])
                raise self.error("empty value", row=row, column=column, expected="a non-empty value")
        return values

    def ids(self, column: str) -> pl.Series:
        """The column as ids (a polars String series (rows,), no Python string per row):
        non-empty, and free of invisible characters, which would otherwise make ``a`` and
        ``a\\x00`` two ids a reader cannot tell apart."""
        typed = self.frame[column] if column in self.frame.columns else None
        if typed is not None and typed.dtype == pl.Categorical:
            # read typed: check the distinct values only; anything odd takes the string path below
            distinct = self.distinct(column)
            if not (distinct.is_null().any() or (distinct.str.strip_chars() != distinct).any()
                    or (distinct == "").any() or distinct.str.contains(INVISIBLE).any()):
                return typed
        values = self.strings(column)
        hidden = values.str.contains(INVISIBLE)
        if hidden.any():
            row = int(hidden.arg_true()[0])
            value = values[row]
            char = next(c for c in value if re.match(INVISIBLE, c))
            raise self.error(f"id {value!r} contains the invisible character U+{ord(char):04X}; ids that differ "
                             "only by invisible characters would look like one", row=row, column=column,
                             expected="ids of visible characters")
        return values

    def _numeric(self, column: str, allow_empty: bool) -> np.ndarray | None:
        """A column read as numbers already (float64 (rows,)), or None for a column of strings."""
        self.require(column)
        values = self.frame[column]
        if not values.dtype.is_numeric():
            return None
        if values.null_count() and not allow_empty:
            raise self.error("empty value", row=int(values.is_null().arg_true()[0]), column=column,
                             expected="a non-empty value")
        return values.cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=False)

    def floats(self, column: str, *, allow_empty: bool = False) -> np.ndarray:
        """The column parsed as float64; shape (rows,). Empty values are NaN when allowed."""
        typed = self._numeric(column, allow_empty)
        if typed is not None:
            return typed
        values = self.strings(column, allow_empty=allow_empty)
        parsed = values.cast(pl.Float64, strict=False)
        bad = parsed.is_null() & values.is_not_null() & (values != "")
        if bad.any():
            row = int(bad.arg_true()[0])
            raise self.error(f"cannot parse {values[row]!r} as a number", row=row, column=column,
                             expected="a number")
        return parsed.fill_null(float("nan")).to_numpy().astype(np.float64, copy=False)

    def id_whitespace(self, *columns: str) -> tuple[int, int]:
        """How many distinct ids of ``columns`` (one vocabulary, such as a winner and a loser column)
        had surrounding whitespace, which :meth:`ids` strips, and how many distinct ids that stripping
        merged into another (``" 1"`` and ``"1 "`` beside ``"1"``: 2 and 2). Counted over the distinct
        values; columns without such ids cost one vectorised pass each."""
        parts = []
        for column in columns:
            raw = self.frame[column]
            parts.append((self.distinct(column) if raw.dtype == pl.Categorical else raw.cast(pl.String)).drop_nulls())
        raw = pl.concat(parts)
        spaced = raw.str.strip_chars() != raw
        if not spaced.any():
            return 0, 0
        distinct = raw.unique()
        return int(raw.filter(spaced).n_unique()), int(len(distinct) - distinct.str.strip_chars().n_unique())

    def numbers(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The column as float64 (rows,) with NaN where it is blank, and the blank rows (bool (rows,));
        a value that is not a number raises naming its line."""
        self.require(column)
        values = self.frame[column]
        if values.dtype.is_numeric():
            blank = values.is_null().to_numpy()
            return values.cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=False), blank
        values = self.strings(column, allow_empty=True)
        blank = (values.is_null() | (values == "")).to_numpy()
        return self.floats(column, allow_empty=True), blank

    def timestamps(self, column: str) -> np.ndarray:
        """Unix seconds as float64, from numbers or ISO-8601 date-times (a column may mix them, and
        date-times with and without a UTC offset: one without is read as UTC); shape (rows,).
        A time outside years 1 to 9999 (what a date can be shown as) is an error naming its line."""
        typed = self._numeric(column, False)
        if typed is not None:
            self._check_time_range(typed, column)
            return typed
        values = self.strings(column)
        numeric = values.cast(pl.Float64, strict=False)
        seconds = numeric.to_numpy().astype(np.float64, copy=True)
        missing = np.flatnonzero(numeric.is_null().to_numpy())
        passes = 0
        while len(missing):
            # polars infers one format from the first value it is given, so each pass reads the values
            # of the first format left; a value that does not parse even as the first of its pass is bad
            passes += 1
            part = values.gather(missing)
            if passes > MAX_TIME_FORMATS:
                parsed = pl.Series([_iso_or_none(v) for v in part.to_list()], dtype=pl.Datetime("us", "UTC"))
            else:
                try:
                    parsed = part.str.to_datetime(strict=False, time_unit="us")
                except pl.exceptions.PolarsError:
                    parsed = pl.Series([None] * len(part), dtype=pl.Datetime("us"))
            if parsed.dtype.time_zone is not None:  # type: ignore[union-attr]
                parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            ok = parsed.is_not_null().to_numpy()
            if not ok[0]:
                row = int(missing[0])
                raise self.error(f"cannot parse {values[row]!r} as a time", row=row, column=column,
                                 expected="unix seconds or an ISO-8601 date-time")
            seconds[missing[ok]] = parsed.filter(parsed.is_not_null()).dt.epoch("us").to_numpy().astype(np.float64) / 1e6
            missing = missing[~ok]
        self._check_time_range(seconds, column)
        return seconds

    def _check_time_range(self, seconds: np.ndarray, column: str) -> None:
        bad = ~((seconds >= MIN_TIME) & (seconds <= MAX_TIME))  # NaN compares false: caught too
        if not bad.any():
            return
        row = int(np.flatnonzero(bad)[0])
        value = float(seconds[row])
        hint = "; it looks like milliseconds: divide by 1000" if MIN_TIME * 1000 <= value <= MAX_TIME * 1000 else ""
        raise self.error(f"timestamp {value:g} is outside the range penchant reads{hint}", row=row, column=column,
                         expected=f"unix seconds from {MIN_TIME:.0f} to {MAX_TIME:.0f} (years 1 to 9999), "
                                  "or an ISO-8601 date-time")


#: unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times a date can be shown as
MIN_TIME, MAX_TIME = -62135596800.0, 253402300799.0
#: formats a time column is read in by polars's inference before the rest go value by value
MAX_TIME_FORMATS = 16


def _iso_or_none(text: str) -> datetime | None:
    """One ISO-8601 date-time as an aware UTC datetime (no offset: UTC), or None."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: deeper than this, a JSON value is refused before Python's parser recurses through it
MAX_JSON_DEPTH = 64


def json_line(line: str, path: Path, number: int) -> object:
    """One line of a JSON-lines file parsed, every problem a DataError naming the file and line."""
    depth = _max_depth(line)
    if depth > MAX_JSON_DEPTH:
        raise DataError(f"JSON nested {depth:,} levels deep", file=path, line=number,
                        expected=f"at most {MAX_JSON_DEPTH} levels of nesting")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} at character {exc.colno}", file=path, line=number,
                        expected="one JSON object per line") from None


def _max_depth(line: str) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings may overcount, never undercount
    a real nesting), vectorised over the characters."""
    if "[" not in line and "{" not in line:
        return 0
    codes = np.frombuffer(line.encode("utf-8"), dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max())


def read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed when it is named ``.gz``; a missing file, a folder or a ``.gz``
    that is not gzip is a DataError naming it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", file=path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", file=path) from None
    if path.suffix.lower() != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"named .gz but not readable as gzip ({exc})", file=path,
                        expected="a gzip-compressed file, or the name without .gz") from None


def read_json_lines(path: Path, encoding: str = "utf-8") -> Table:
    """A JSON-lines log (``.jsonl``/``.ndjson``, optionally gzipped): one object a line, scalar fields
    read as strings; a nested field is an error naming its line and field."""
    text = _decode(read_bytes(path), path, encoding).decode("utf-8")
    rows, lines = [], []
    # physical lines end at "\n" only (str.splitlines would also split at U+2028 and others, which a
    # JSON string may hold as they are)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = json_line(line, path, number)
        if not isinstance(obj, dict):
            raise DataError("a JSON line is not an object", file=path, line=number, expected="a JSON object")
        nested = next((k for k, v in obj.items() if isinstance(v, (dict, list))), None)
        if nested is not None:
            raise DataError("a nested value", file=path, line=number, column=nested, expected="a string or a number")
        rows.append({k: None if v is None else str(v) for k, v in obj.items()})
        lines.append(number)
    if not rows:
        raise DataError("the file is empty", file=path, line=1, expected="at least one JSON object")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    frame = pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema={c: pl.String for c in columns})
    if lines[-1] == len(lines):  # no blank line skipped: row r is on line r + 1
        return Table(frame=frame, path=path, first_line=1)
    line_numbers = np.asarray(lines, dtype=np.int64)
    return Table(frame=frame, path=path, first_line=1, row_line=lambda row: int(line_numbers[row]))


def delimiter_for(path: Path) -> str | None:
    """The delimiter implied by a file's extension, or None to sniff it."""
    suffixes = [x.lower() for x in path.suffixes if x.lower() != ".gz"]
    return _EXTENSION_DELIMITERS.get(suffixes[-1]) if suffixes else None


_NON_SPACE = re.compile(rb"\S")
_ASCII_SUPERSETS = {"utf8", "ascii", "latin1", "iso88591", "cp1252", "windows1252"}


def _decode(raw: bytes, path: Path, encoding: str) -> bytes:
    """Return UTF-8 bytes, raising with the line of the first byte that does not decode."""
    key = encoding.lower().replace("-", "").replace("_", "")
    if raw.isascii() and key in _ASCII_SUPERSETS:
        return raw  # ASCII is already valid UTF-8 in these encodings: no decoded copy
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column_in_line = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"byte 0x{raw[exc.start]:02x} at character {column_in_line} is not valid {encoding}",
                        file=path, line=line, expected=f"{encoding} text; give the file's encoding with --encoding") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    elif key == "utf8":
        return raw  # already UTF-8 without a byte-order mark: no copy
    return text.encode("utf-8")


def _sniff(header: bytes) -> str:
    text = header.decode("utf-8", errors="replace")
    for sep in _SNIFF_ORDER:
        if sep in text:
            return sep
    return ","


def _check_field_counts(data: bytes, sep: str, n_fields: int, path: Path, header: bool,
                        block: int = 1 << 23) -> None:
    """Every line must have ``n_fields`` fields; vectorised over the bytes (unquoted formats), in
    blocks of whole lines so the position arrays stay bounded for a large file."""
    buf = np.frombuffer(data, dtype=np.uint8)
    start, line = 0, 0
    while start < len(buf):
        end = min(start + block, len(buf))
        if end < len(buf):
            cut = data.rfind(b"\n", start, end)
            end = cut + 1 if cut >= start else (data.find(b"\n", end) + 1 or len(buf))
        _check_block(buf[start:end], sep, n_fields, path, header, line)
        line += int(np.count_nonzero(buf[start:end] == 10))
        start = end


def _check_block(buf: np.ndarray, sep: str, n_fields: int, path: Path, header: bool, first_line: int) -> None:
    newlines = np.flatnonzero(buf == 10)
    ends = np.append(newlines, len(buf)) if (len(buf) and buf[-1] != 10) else newlines
    starts = np.concatenate(([0], ends[:-1] + 1))
    if len(sep) == 1:
        seps = np.flatnonzero(buf == ord(sep))
    else:  # '::' — count non-overlapping occurrences by scanning the decoded lines' byte pattern
        first = buf[:-1] == ord(sep[0])
        second = buf[1:] == ord(sep[1])
        seps = np.flatnonzero(first & second)
    counts = np.diff(np.searchsorted(seps, np.concatenate((starts, [ends[-1] + 1 if len(ends) else 0]))))
    counts = counts[: len(starts)]
    lengths = ends - starts
    blank = (lengths == 0) | ((lengths == 1) & (buf[np.minimum(starts, len(buf) - 1)] == 13))
    wrong = np.flatnonzero((counts != n_fields - 1) & ~blank)
    if len(wrong):
        i = int(wrong[0])
        got = int(counts[i]) + 1
        raise DataError(f"{got} fields where the {'header has' if header else 'first line has'} {n_fields}",
                        file=path, line=first_line + i + 1,
                        expected=f"{n_fields} {_DELIMITER_NAMES.get(sep, repr(sep))}-separated fields")


def read_delimited(
    path: str | Path,
    *,
    sep: str | None = None,
    header: bool = True,
    names: list[str] | None = None,
    quoting: bool | None = None,
    encoding: str = "utf-8",
    required: tuple[str, ...] = (),
    typed: Callable[[list[str]], dict[str, pl.DataType]] | None = None,
) -> Table:
    """Read a delimited text file as a :class:`Table` of strings.

    Args:
        path: the file.
        sep: the delimiter; from the extension or sniffed from the header when None.
        header: whether line 1 names the columns.
        names: column names when there is no header.
        quoting: whether ``"`` quotes fields; default True for commas, False otherwise (titles
            in tab-separated files often contain quotes).
        encoding: the file's text encoding.
        required: columns that must be present; a missing one is reported together with a hint
            when the header looks as if it used another delimiter.
        typed: given the header's column names, the columns to read typed (ids as Categorical,
            numbers as Float64) instead of as strings: a large log then never holds a Python or
            polars string per row. If any of them fails to parse, the file is read as strings,
            so the error names the line and column as always.

    Raises:
        DataError: empty file, bad encoding, wrong delimiter, missing column, ragged line.
    """
    path = Path(path)
    parse_typed = typed is not None and header
    if parse_typed:
        direct = _read_typed_direct(path, sep, quoting, encoding, required, typed)
        if isinstance(direct, Table):
            return direct
        parse_typed = direct is None  # False: polars failed on these very bytes; not parsed typed a second time
    raw = read_bytes(path)
    if not raw or raw.isspace():
        raise DataError("the file is empty", file=path, line=1,
                        expected="a header line and at least one row" if header else "at least one row")
    data = _decode(raw, path, encoding)
    first_end = data.find(b"\n")
    first = data if first_end < 0 else data[:first_end]
    if sep is None:
        sep = delimiter_for(path) or _sniff(first)
    if quoting is None:
        quoting = sep == ","
    first_text = first.decode("utf-8").rstrip("\r")
    header_fields = first_text.split(sep) if sep != " " else first_text.split()
    if header:
        names_found = [h.strip() for h in header_fields]
        missing = [c for c in required if c not in names_found]
        if missing:
            other = next((s for s in _SNIFF_ORDER if s != sep and s in first_text), None)
            if len(names_found) == 1 and other is not None:
                raise DataError(
                    f"the header has no {_DELIMITER_NAMES.get(sep, repr(sep))} delimiter but contains "
                    f"{_DELIMITER_NAMES.get(other, repr(other))}s: wrong delimiter?",
                    file=path, line=1, expected=f"{_DELIMITER_NAMES.get(sep, repr(sep))}-separated columns")
            have = ", ".join(repr(c) for c in names_found)
            raise DataError(f"no column '{missing[0]}' in the header (columns: {have})", file=path, line=1,
                            column=missing[0], expected=f"a column named '{missing[0]}'")
        n_fields = len(names_found)
        if first_end < 0 or not _NON_SPACE.search(data, first_end + 1):  # no copy of the rows
            raise DataError("the file has a header but no rows", file=path, line=2, expected="at least one row")
    else:
        n_fields = len(names) if names else len(header_fields)
    # ragged lines show as an exception (too many fields) or nulls (too few) in what polars reads;
    # only then are the lines counted, to name the first bad one (a pass over the bytes saved)
    checkable = not quoting or b'"' not in data
    original, original_sep = data, sep

    def check() -> None:
        if checkable:
            _check_field_counts(original, original_sep, n_fields, path, header)

    if sep == "::":  # polars takes one-byte separators only; '::' files never contain tabs
        data = data.replace(b"::", b"\t")
        sep = "\t"
    frame = None
    if parse_typed:
        schema = typed([h.strip() for h in header_fields])
        try:  # the raw header names, as polars sees them before the strip below
            frame = pl.read_csv(io.BytesIO(data), separator=sep, has_header=True, infer_schema=False,
                                schema_overrides={h: schema[h.strip()] for h in header_fields if h.strip() in schema},
                                quote_char='"' if quoting else None, truncate_ragged_lines=False)
        except pl.exceptions.PolarsError:
            frame = None  # read as strings below; the checks there name what is wrong
    try:
        if frame is None:
            frame = pl.read_csv(io.BytesIO(data), separator=sep, has_header=header,
                                new_columns=None if header else names, infer_schema=False,
                                quote_char='"' if quoting else None, truncate_ragged_lines=False)
    except pl.exceptions.PolarsError as exc:
        check()
        if quoting:
            _locate_quoted_error(data, sep, n_fields, path)
        raise DataError(f"cannot be parsed as {_DELIMITER_NAMES.get(sep, repr(sep))}-separated text: "
                        f"{str(exc).splitlines()[0]}", file=path) from None
    if frame.null_count().sum_horizontal().item():
        check()
    if header:
        frame = frame.rename({c: c.strip() for c in frame.columns})
    row_line = None
    if quoting and b'"' in original:  # a quoted field may hold newlines: rows and lines may differ
        row_line = functools.partial(_quoted_row_line, path, encoding, original_sep, header)
    return Table(frame=frame, path=path, first_line=2 if header else 1, row_line=row_line)


#: bytes of a file's start read to find its header before polars reads the rest
_HEAD_BYTES = 1 << 16


def _read_typed_direct(path: Path, sep: str | None, quoting: bool | None, encoding: str, required: tuple[str, ...],
                       typed: Callable[[list[str]], dict[str, pl.DataType]]) -> Table | bool | None:
    """The typed reading of :func:`read_delimited` with polars reading the file itself (memory-mapped:
    no copy of its bytes in this process, no pass over them before the parse), for a plain UTF-8 file
    with a one-byte delimiter. None where the string path must look: a compressed file, another
    encoding, a byte-order mark, a header that lacks a required column or is followed by no row, a
    '::' delimiter; False where polars could not read the file as asked (a value that does not parse,
    a ragged line, invalid UTF-8): the string path then reads it as strings without trying the typed
    parse again. Either way every error is the string path's, naming its line and column."""
    if encoding.lower().replace("-", "").replace("_", "") != "utf8" or path.suffix.lower() == ".gz":
        return None
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    end = head.find(b"\n")
    if head.startswith(b"\xef\xbb\xbf") or end < 0 or not _NON_SPACE.search(head, end + 1):
        return None
    try:
        first = head[:end].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None
    sep = sep or delimiter_for(path) or _sniff(head[:end])
    if len(sep) != 1:
        return None
    quoting = sep == "," if quoting is None else quoting
    fields = first.split(sep) if sep != " " else first.split()
    names = [h.strip() for h in fields]
    if any(c not in names for c in required):
        return None
    schema = typed(names)
    try:  # the raw header names, as polars sees them before the strip below
        frame = pl.read_csv(path, separator=sep, has_header=True, infer_schema=False,
                            schema_overrides={h: schema[h.strip()] for h in fields if h.strip() in schema},
                            quote_char='"' if quoting else None, truncate_ragged_lines=False)
    except pl.exceptions.PolarsError:
        return False
    if frame.null_count().sum_horizontal().item():  # blanks, or a line with too few fields: count them
        data = read_bytes(path)
        if not quoting or b'"' not in data:
            _check_field_counts(data, sep, len(names), path, True)
    frame = frame.rename({c: c.strip() for c in frame.columns})
    # a quoted field may hold newlines: the file is read again to find a row's line, only when an error names one
    row_line = functools.partial(_quoted_row_line, path, encoding, sep, True) if quoting else None
    return Table(frame=frame, path=path, first_line=2, row_line=row_line)


def _quoted_row_line(path: Path, encoding: str, sep: str, header: bool, row: int) -> int:
    """The physical line row ``row`` of a quoted file starts on (only asked when an error names it: the
    file is read again). One vectorised pass tells whether any newline is inside quotes (an odd count of
    quotes before it); only then are the records walked, up to that row, counting their newlines."""
    data = _decode(read_bytes(path), path, encoding)
    first = 2 if header else 1
    buf = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(buf == ord('"'))
    newlines = np.flatnonzero(buf == ord("\n"))
    if not (np.searchsorted(quotes, newlines) % 2).any():
        return row + first
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=sep, quotechar='"')
    start, record, target = 1, 0, row + (1 if header else 0)
    try:
        for _ in reader:
            if record == target:
                return start
            record += 1
            start = reader.line_num + 1
    except csv.Error:  # a record Python's reader cannot walk (a field over its size limit)
        return row + first
    return start


def _locate_quoted_error(data: bytes, sep: str, n_fields: int, path: Path) -> None:
    """Raise a DataError at the physical line where the first bad record of a quoted file starts (a
    quoted field may hold newlines, so records and lines differ); returns when none is found."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=sep, quotechar='"', strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"a quoted field is not closed or is malformed ({exc})", file=path, line=start,
                            expected='fields quoted as "...", a quote inside written as ""') from None
        if row and len(row) != n_fields:
            raise DataError(f"{len(row)} fields where the header has {n_fields}", file=path, line=start,
                            expected=f"{n_fields} {_DELIMITER_NAMES.get(sep, repr(sep))}-separated fields")
        start = reader.line_num + 1


def read_parquet(path: str | Path, typed: Callable[[list[str]], dict[str, pl.DataType]] | None = None) -> Table:
    """Read a Parquet file as a :class:`Table` of strings (rows numbered from 1).

    ``typed``, given the file's column names, names columns to keep in Parquet's own types instead
    (see :func:`read_delimited`): a column asked as Categorical whose values are strings or integers
    becomes Categorical (ids: no string per row once cast), one asked as Float64 whose values are
    numbers becomes Float64. Any other column, and one whose stored type does not fit what it is asked
    as (a rating stored as text, a time stored as a date-time, ids stored as floats), is read as
    strings, where :class:`Table`'s checks parse it and name the row and column of a bad value."""
    path = Path(path)
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise DataError("no such file", file=path) from None
    except Exception as exc:  # polars raises several unrelated types for a corrupt file
        raise DataError(f"not a readable Parquet file: {str(exc).splitlines()[0]}", file=path) from None
    if frame.height == 0:
        raise DataError("the file has no rows", file=path, expected="at least one row")
    nested = [name for name, kind in frame.schema.items() if kind.is_nested()]
    if nested:
        raise DataError(f"holds {frame.schema[nested[0]]} values, which penchant does not read",
                        file=path, column=nested[0], expected="scalar columns only (drop or flatten that column)")
    wanted = typed(frame.columns) if typed is not None else {}
    frame = frame.with_columns(_parquet_column(frame[name], wanted.get(name)) for name in frame.columns)
    return Table(frame=frame, path=path, first_line=1, line_kind="row")


def _parquet_column(values: pl.Series, wanted: pl.DataType | None) -> pl.Series:
    """One Parquet column as :func:`read_parquet` keeps it: typed where its stored type fits ``wanted``
    (Categorical from strings or integers, Float64 from numbers), else as strings."""
    kind = values.dtype
    if wanted == pl.Categorical and (kind == pl.Categorical or kind == pl.String or kind.is_integer()):
        return values if kind == pl.Categorical else values.cast(pl.String).cast(pl.Categorical)
    if wanted == pl.Float64 and kind.is_numeric():
        return values.cast(pl.Float64)
    return values.cast(pl.String)
