"""Dump and restore of the service's data as JSON lines:
``{"kind": "user"|"item"|"event"|"comparison"|"served", ...}`` (users and items first; ``served``: a
list the service showed, with its items, their propensities and the version that chose them). Restoring validates every line with the API's own schemas and names the
line and field of the first bad one; events already stored (same ``event_id``) are counted, not
doubled. API keys and model versions are not part of a dump."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from penchant.data.tables import json_line
from penchant.errors import DataError
from penchant.serve.schemas import ComparisonIn, EventIn, ItemIn, ServedIn, UserIn

SCHEMAS = {"user": UserIn, "item": ItemIn, "event": EventIn, "comparison": ComparisonIn, "served": ServedIn}


def dump_lines(store) -> Iterator[str]:
    for row in store.dump():
        yield json.dumps(row, ensure_ascii=False) + "\n"


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
        kind = row.pop("kind", None) if isinstance(row, dict) else None
        if kind not in SCHEMAS:
            raise DataError(f"kind is {kind!r}", file=source, line=number, column="kind", expected="user, item, event, comparison or served")
        try:
            valid = SCHEMAS[kind].model_validate(row).model_dump()
        except ValidationError as e:
            first = e.errors()[0]
            raise DataError(first["msg"], file=source, line=number, column=".".join(map(str, first["loc"])),
                            expected=f"a valid {kind}") from None
        if kind == "comparison" and valid["timestamp"] is None:
            raise DataError("no timestamp", file=source, line=number, column="timestamp", expected="unix seconds")
        if kind == "event":
            if types is not None and valid["type"] not in types:
                raise DataError(f"unknown feedback type {valid['type']!r}", file=source, line=number, column="type",
                                expected=", ".join(sorted(types)))
            if valid["timestamp"] is None:
                raise DataError("no timestamp", file=source, line=number, column="timestamp", expected="unix seconds")
        yield {"kind": kind, **valid}
