"""Exceptions that penchant raises on purpose.

Every problem with a user's input is a :class:`DataError` that names where it is (file, line,
column or request field) and what was expected, so that the CLI can print it as one line and
the service can answer it as a 4xx naming the field.
"""

from __future__ import annotations

from pathlib import Path


class PenchantError(Exception):
    """Base class of penchant's own errors."""


class DataError(PenchantError, ValueError):
    """Input data is malformed or inconsistent.

    Args:
        message: what is wrong, in words.
        file: the file the problem is in, if any.
        line: 1-based line number, the header counted as line 1 (or a row number for
            formats without lines, such as Parquet).
        column: the column (or field) name.
        expected: what a valid value would have looked like.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        line_kind: str = "line",
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.expected = expected
        self.line_kind = line_kind
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.line is not None:
            where.append(f"{self.line_kind} {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class ConfigError(PenchantError, ValueError):
    """A setting is unknown, or its value is not valid for it."""


class NotFittedError(PenchantError, RuntimeError):
    """A model was asked to score before it was fitted."""


class NotFoundError(PenchantError, LookupError):
    """A named thing (a version, an item of the deployed model, a conversation) does not exist."""


class ConflictError(PenchantError, RuntimeError):
    """The request is valid but the state does not allow it now (no model deployed yet, the model
    changed under a conversation, no earlier version to roll back to)."""


class StoreUnavailableError(PenchantError, RuntimeError):
    """The store cannot keep a write now (its file was deleted or replaced, its disk is read-only or
    full, its server is unreachable): nothing was stored. The service answers 503."""


class MemoryNeedError(PenchantError, MemoryError):
    """A model would need more memory to fit this data than the machine has available; raised
    before any large allocation, with how much it would need and which models fit instead."""
