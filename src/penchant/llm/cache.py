"""An on-disk cache of language-model answers, keyed by the SHA-256 of (model, messages, settings).

The same request to the same model with the same settings (temperature, seed, token limit, output
schema) is sent once per machine: experiments rerun for free and give the same numbers. The key is
computed over canonical JSON (sorted keys, no spaces), so the order in which settings were given
does not matter. The cache is one SQLite file (WAL, safe across threads and processes).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from penchant.cache import cache_dir


def request_key(model: str, messages: list[dict[str, str]], settings: dict[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON of ``(model, messages, settings)``."""
    blob = json.dumps({"model": model, "messages": messages, "settings": settings}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class AnswerCache:
    """Answers by request key in ``folder/llm-answers.sqlite`` (default :func:`penchant.cache.cache_dir`)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.path = Path(folder) / "llm-answers.sqlite" if folder is not None else cache_dir() / "llm-answers.sqlite"
        self._local = threading.local()
        self._setup, self._ready = threading.Lock(), False

    def _con(self) -> sqlite3.Connection:
        """This thread's connection. The file is set up (WAL, the table) by the first thread only: the
        switch to WAL takes the database exclusively and is not retried by sqlite's busy timeout, so
        a client's threads opening a new cache at once failed with "database is locked"."""
        con = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=60)
            with self._setup:
                if not self._ready:
                    con.execute("PRAGMA journal_mode=WAL")
                    con.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                                "answer TEXT NOT NULL, usage TEXT, created REAL NOT NULL)")
                    self._ready = True
            self._local.con = con
        return con

    def get(self, key: str) -> str | None:
        """The stored answer (a JSON document of the answer's text and log-probabilities) for ``key``, or None."""
        row = self._con().execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, model: str, answer: str, usage: dict[str, Any] | None = None) -> None:
        """Store ``answer`` under ``key`` (the first answer stored for a key is kept)."""
        con = self._con()
        with con:
            con.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?)",
                        (key, model, answer, json.dumps(usage) if usage else None, time.time()))

    def __len__(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM answers").fetchone()[0])
