"""Dump and restore of the service's data as JSON lines:
``{"kind": "user"|"item"|"event"|"comparison"|"served", ...}`` (users and items first; ``served``: a
list the service showed, with its items, their propensities and the version that chose them). Restoring validates every line with the API's own schemas and names the
line and field of the first bad one; events already stored (same ``event_id``) are counted, not
doubled; a user or item line updates the fields it carries and leaves the others as stored. API keys
and model versions are not part of a dump."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from penchant.data.tables import json_line
from penchant.errors import DataError
from penchant.serve.schemas import ComparisonIn, EventIn, ItemIn, ServedIn, UserIn

SCHEMAS = {"user": UserIn, "item": ItemIn, "event": EventIn, "comparison": ComparisonIn, "served": ServedIn}


def dump_lines(store) -> Iterator[str]:
    for row in store.dump():
        yield json.dumps(row, ensure_ascii=False) + "\n"


def dump_pieces(store, size: int = 1 << 16) -> Iterator[str]:
    """:func:`dump_lines` joined into pieces of about ``size`` characters (whole lines): a streamed
    response takes one hop to the thread pool and one write per piece, not per line (a dump of
    15,000 events over the test client: 30,000 hops for two dumps)."""
    piece: list[str] = []
    length = 0
    for line in dump_lines(store):
        piece.append(line)
        length += len(line)
        if length >= size:
            yield "".join(piece)
            piece, length = [], 0
    if piece:
        yield "".join(piece)


def parse_dump(lines: Iterable[str | bytes], source: str = "dump", known_types: Iterable[str] | None = None) -> Iterator[dict]:
    """Validated rows from dump lines; a bad line raises :class:`DataError` naming it."""
    types = set(known_types) if known_types is not None else None
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"byte 0x{line[e.start]:02x} at character {e.start + 1} is not valid UTF-8", file=source,
                                line=number, expected="UTF-8 text") from None
        if not line.strip():
            continue
        row = json_line(line, Path(source), number)
        yield validate_row(row, source, number, types)


def validate_row(row, source: str, number: int, known_types: Iterable[str] | None = None, line_kind: str = "line") -> dict:
    """One row to restore (``{"kind": …, …}``), checked with the API's own schemas, so every path
    that stores an id keeps the same rules (length, no NUL character); a bad row raises
    :class:`DataError` naming its ``line_kind`` ``number`` and field. A user or item keeps only the
    fields it carries (a restore updates those and leaves the others as stored)."""
    row = dict(row) if isinstance(row, dict) else row
    kind = row.pop("kind", None) if isinstance(row, dict) else None
    if kind not in SCHEMAS:
        raise DataError(f"kind is {kind!r}", file=source, line=number, column="kind", line_kind=line_kind,
                        expected="user, item, event, comparison or served")
    try:
        valid = SCHEMAS[kind].model_validate(row).model_dump(exclude_unset=kind in ("user", "item"))
    except ValidationError as e:
        first = e.errors()[0]
        raise DataError(first["msg"], file=source, line=number, column=".".join(map(str, first["loc"])),
                        expected=f"a valid {kind}", line_kind=line_kind) from None
    if kind == "comparison" and valid["timestamp"] is None:
        raise DataError("no timestamp", file=source, line=number, column="timestamp", expected="unix seconds",
                        line_kind=line_kind)
    if kind == "event":
        if known_types is not None and valid["type"] not in known_types:
            raise DataError(f"unknown feedback type {valid['type']!r}", file=source, line=number, column="type",
                            expected=", ".join(sorted(known_types)), line_kind=line_kind)
        if valid["timestamp"] is None:
            raise DataError("no timestamp", file=source, line=number, column="timestamp", expected="unix seconds",
                            line_kind=line_kind)
    return {"kind": kind, **valid}


def dataset_rows(path: str | Path, event_type: str) -> Iterator[dict]:
    """A dataset penchant reads (any format of :func:`penchant.data.load`) as rows to restore: its
    items (title, genres as categories, release decade: each only where the data has it), its users
    (their attributes where it has them) and its interactions as events with ids ``<dataset>:<row>``
    (so loading it twice stores nothing twice). A field the data does not carry is left out, so a
    restore never overwrites what the store has with nothing. Rows are checked like a dump's
    (:func:`validate_row`), named by their kind and number."""
    from penchant.data import load

    ds = load(path)
    source = str(path)
    titles = ds.item_text
    genres = next((ds.item_attributes[a] for a in ("genre", "class") if a in ds.item_attributes), None)
    years = ds.item_attributes.get("release_year")
    for i, item in enumerate(ds.item_ids):
        row = {"kind": "item", "id": str(item)}
        if titles is not None and titles[i] is not None:
            row["title"] = str(titles[i])
        if genres is not None:
            row["categories"] = genres.of(i)
        decades = [f"{int(y) // 10 * 10}s" for y in (years.of(i) if years is not None else []) if y.isdigit()]
        if decades:
            row["attributes"] = {"decade": decades[0]}
        yield validate_row(row, source, i + 1, line_kind="item")
    for u, user in enumerate(ds.user_ids):
        attrs = {name: values[0] if len(values) == 1 else values
                 for name, a in ds.user_attributes.items() if (values := [str(v) for v in a.of(u)])}
        yield validate_row({"kind": "user", "id": str(user), **({"attributes": attrs} if attrs else {})}, source, u + 1,
                           line_kind="user")
    # events: every id in them is a user's or an item's checked above and their ids grow with the row,
    # so checking the times at once and the last event through the schema checks them all, at the
    # cost of none of the 10 µs a row the schema would take
    ts = ds.timestamps
    if ts is not None and not np.all(ok := np.isfinite(ts) & (ts >= 0)):
        k = int(np.argmin(ok))
        raise DataError(f"timestamp {ts[k]}", file=source, line=k + 1, column="timestamp", line_kind="interaction",
                        expected="unix seconds, finite and not negative")
    user_ids, item_ids = [str(u) for u in ds.user_ids], [str(i) for i in ds.item_ids]
    n = len(ds.users)
    for k, (u, i) in enumerate(zip(ds.users, ds.items, strict=True)):
        row = {"kind": "event", "event_id": f"{ds.name}:{k}", "user_id": user_ids[u], "item_id": item_ids[i],
               "type": event_type, "value": 1.0, "timestamp": float(ts[k]) if ts is not None else float(k)}
        yield validate_row(row, source, k + 1, line_kind="interaction") if k in (0, n - 1) else row
