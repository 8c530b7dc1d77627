"""Readers for pairwise comparisons: TRL-style text pairs and (user, winner, loser) id pairs."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penchant.data.build import index_of, sorted_ids
from penchant.data.dataset import Comparisons, Dataset, Step
from penchant.data.readers import _pick, read_table
from penchant.data.tables import json_line
from penchant.errors import DataError

ASSISTANT_TURN = "\n\nAssistant:"


@dataclass(frozen=True)
class TextComparisons:
    """Choices between two texts answering the same prompt (the layout TRL and RLHF sets use).

    Attributes:
        prompt, chosen, rejected: strings, shape (n,); ``chosen`` was preferred to ``rejected``.
        user: who chose, strings (n,), or None when the data has no user column.
        source: the file read.
    """

    prompt: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray
    user: np.ndarray | None
    source: Path

    def __len__(self) -> int:
        return len(self.chosen)


def split_shared_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two whole dialogues into (shared prompt, chosen reply, rejected reply).

    The prompt is the longest common prefix, cut back to the start of the last assistant turn
    when there is one (so a reply that begins alike on both sides is not split mid-word).
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    turn = chosen.rfind(ASSISTANT_TURN, 0, n)
    if turn >= 0:
        n = turn + len(ASSISTANT_TURN)
    return chosen[:n], chosen[n:].strip(), rejected[n:].strip()


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"byte 0x{raw[exc.start]:02x} at character {exc.start + 1} is not valid UTF-8",
                                    file=path, line=number, expected="UTF-8 text") from None
                if not line.strip():
                    continue
                obj = json_line(line, path, number)
                if not isinstance(obj, dict):
                    raise DataError("a JSON line is not an object", file=path, line=number, expected="a JSON object")
                rows.append({"__line__": number, **obj})
    except FileNotFoundError:
        raise DataError("no such file", file=path) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot be read: {exc}", file=path) from None
    if not rows:
        raise DataError("the file is empty", file=path, line=1, expected="at least one comparison")
    return rows


def _from_labelled_responses(row: dict, path: Path) -> dict:
    """``{prompt, responses: [r0, r1], label: k, objective|user}`` → chosen = r_k (the VPL layout)."""
    responses, label = row["responses"], row["label"]
    if not (isinstance(responses, list) and len(responses) == 2 and all(isinstance(x, str) for x in responses)):
        raise DataError("not a list of two strings", file=path, line=row["__line__"], column="responses",
                        expected="two replies")
    if label not in (0, 1):
        raise DataError(f"label {label!r}", file=path, line=row["__line__"], column="label", expected="0 or 1")
    if not isinstance(row.get("prompt"), str):
        raise DataError("missing or not a string", file=path, line=row["__line__"], column="prompt", expected="a string")
    user = row.get("user", row.get("objective"))
    out = {"prompt": row["prompt"], "chosen": responses[label], "rejected": responses[1 - label], "__line__": row["__line__"]}
    return out | ({"user": user} if user is not None else {})


def read_text_comparisons(path: str | Path) -> TextComparisons:
    """Read ``{prompt, chosen, rejected, user?}`` from JSONL (optionally gzipped), CSV or Parquet.

    JSONL rows of the form ``{prompt, responses: [r0, r1], label, objective}`` (the relabeled
    HH-RLHF of the VPL paper) are read as chosen = ``responses[label]``, user = ``objective``.

    Without a ``prompt`` field, ``chosen`` and ``rejected`` are taken to be whole dialogues and
    the shared prefix becomes the prompt (the HH-RLHF layout).
    """
    path = Path(path)
    if ".jsonl" in path.suffixes or ".json" in path.suffixes:
        rows = _read_jsonl(path)
        if rows and all("responses" in r and "label" in r for r in rows):
            rows = [_from_labelled_responses(r, path) for r in rows]
        for field in ("chosen", "rejected"):
            for r in rows:
                if not isinstance(r.get(field), str):
                    raise DataError("missing or not a string", file=path, line=r["__line__"], column=field,
                                    expected=f"a string field '{field}'")
        chosen = [r["chosen"] for r in rows]
        rejected = [r["rejected"] for r in rows]
        prompt = [r.get("prompt") for r in rows]
        users = [r.get("user") for r in rows] if any("user" in r for r in rows) else None
    else:
        table = read_table(path, required=("chosen", "rejected"))
        chosen = table.strings("chosen").to_list()
        rejected = table.strings("rejected").to_list()
        prompt = table.frame["prompt"].to_list() if "prompt" in table.frame.columns else [None] * len(chosen)
        users = table.strings("user").to_list() if "user" in table.frame.columns else None
    if all(p is None for p in prompt):
        triples = [split_shared_prompt(c, r) for c, r in zip(chosen, rejected)]
        prompt = [t[0] for t in triples]
        chosen = [t[1] for t in triples]
        rejected = [t[2] for t in triples]
    return TextComparisons(np.array(prompt, dtype=object), np.array(chosen, dtype=object),
                           np.array(rejected, dtype=object),
                           None if users is None else np.array([None if u is None else str(u) for u in users], dtype=object), path)


def read_id_comparisons(path: str | Path, *, user_col: str | None = None, winner_col: str = "winner",
                        loser_col: str = "loser") -> Dataset:
    """Read ``(user, winner, loser)`` rows into a :class:`Dataset` holding only comparisons.

    The user column is optional; rows without one get user -1. Item ids of winners and losers
    form the item vocabulary. A row whose winner equals its loser is an error.
    """
    table = read_table(path, required=(winner_col, loser_col))
    ucol = _pick(table.frame.columns, user_col, ("user", "user_id", "userId"), "user", table, False)
    winners = table.ids(winner_col)
    losers = table.ids(loser_col)
    same = np.flatnonzero(winners.astype(str) == losers.astype(str))
    if len(same):
        raise table.error(f"winner and loser are both {winners[same[0]]!r}", row=int(same[0]), column=loser_col,
                          expected="two different items")
    item_vocab = sorted_ids(np.concatenate([winners, losers]))
    if ucol is not None:
        user_raw = table.ids(ucol)
        user_vocab = sorted_ids(user_raw)
        user = index_of(user_vocab, user_raw).astype(np.int32)
    else:
        user_vocab = np.array([], dtype=object)
        user = np.full(len(winners), -1, dtype=np.int32)
    comps = Comparisons(user, index_of(item_vocab, winners).astype(np.int32), index_of(item_vocab, losers).astype(np.int32))
    empty = np.array([], dtype=np.int32)
    return Dataset(user_ids=user_vocab, item_ids=item_vocab, users=empty, items=empty, comparisons=comps,
                   steps=(Step("comparisons read", len(winners), f"from {table.path}"),), name=Path(path).stem)
