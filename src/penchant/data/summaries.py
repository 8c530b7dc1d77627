"""User summaries as data: a JSON file of user id -> a text describing the user's taste (as
``penchant llm summarize`` writes them). Models that read summaries take the file's path as a
parameter and read it through :func:`read_summaries`; nothing of the language model that wrote them
is needed to read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from penchant.errors import DataError


def write_summaries(chains: dict[str, list[str]], path: str | Path, meta: dict[str, Any]) -> Path:
    """``{"meta": ..., "users": {id: current summary}, "chains": {id: [...]}}`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "users": {u: c[-1] for u, c in chains.items() if c}, "chains": chains},
                               indent=1, ensure_ascii=False))
    return path


def read_summaries(path: str | Path) -> dict[str, str]:
    """User id -> current summary from a file of :func:`write_summaries` (or a plain ``{id: text}`` object)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read summaries: {exc}", file=path, expected='JSON {"users": {id: summary}}') from exc
    users = data.get("users", data) if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise DataError("not a summaries file", file=path, column="users", expected="an object of user id -> summary text")
    return {str(k): v for k, v in users.items()}
