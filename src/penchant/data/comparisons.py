"""Readers for comparison files, each giving the one comparison object, :class:`PreferencePairs`:
TRL-style text pairs (options are the distinct (prompt, reply) pairs, groups the prompts) and
``(user?, winner, loser)`` id pairs (options are the item ids)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from penchant.data.build import concat_ids, index_of, sorted_ids
from penchant.data.dataset import Step
from penchant.data.pairs import PreferencePairs
from penchant.data.readers import _pick, read_table, whitespace_steps
from penchant.data.tables import json_line
from penchant.errors import DataError

ASSISTANT_TURN = "\n\nAssistant:"


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


def read_text_comparisons(path: str | Path, *, drop_identical: bool = True) -> PreferencePairs:
    """Read ``{prompt, chosen, rejected, user?}`` from JSONL (optionally gzipped), CSV or Parquet.

    JSONL rows of the form ``{prompt, responses: [r0, r1], label, objective}`` (the relabeled
    HH-RLHF of the VPL paper) are read as chosen = ``responses[label]``, user = ``objective``.

    Without a ``prompt`` field, ``chosen`` and ``rejected`` are taken to be whole dialogues and
    the shared prefix becomes the prompt (the HH-RLHF layout).

    Options are the distinct (prompt, reply) pairs, ``group`` the prompt, users the ``user``
    field (−1 where a row has none). A row whose two replies are the same text says nothing about
    either: it is dropped and counted in ``steps`` unless ``drop_identical`` is False (scoring a
    file keeps every row, in order).
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
    user = None if users is None else np.array([None if u is None else str(u) for u in users], dtype=object)
    return _text_pairs(np.array(prompt, dtype=object), np.array(chosen, dtype=object), np.array(rejected, dtype=object),
                       user, path, drop_identical)


def _text_pairs(prompt: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, users: np.ndarray | None, source: Path,
                drop_identical: bool) -> PreferencePairs:
    """Rows of (prompt, chosen, rejected, user or None) as pairs over distinct (prompt, reply) options."""
    prompts, group = np.unique(prompt.astype(str), return_inverse=True)
    replies = np.concatenate([chosen, rejected]).astype(str)
    ctx = np.concatenate([group, group])
    keyed = np.char.add(np.char.add(ctx.astype(str), "\x00"), replies)
    uniq, inverse = np.unique(keyed, return_inverse=True)
    n = len(chosen)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inverse[::-1]] = np.arange(2 * n)[::-1]
    user = np.full(n, -1, dtype=np.int64)
    user_ids = np.array([], dtype=object)
    if users is not None:  # rows without a user (None) belong to nobody in particular: −1
        named = np.array([u is not None for u in users], dtype=bool)
        user_ids, who = np.unique(users[named].astype(str), return_inverse=True)
        user_ids = user_ids.astype(object)
        user[named] = who
    same = inverse[:n] == inverse[n:]
    pairs = PreferencePairs(user, inverse[:n].astype(np.int64), inverse[n:].astype(np.int64), group.astype(np.int64),
                            user_ids, np.arange(len(uniq)).astype(str).astype(object), replies[first].astype(object),
                            prompts[ctx[first]].astype(object), (Step("text comparisons read", n, f"from {source}"),),
                            Path(source).stem)
    if not drop_identical:
        return pairs
    return pairs.subset(~same, Step("identical replies dropped", int(same.sum()), "chosen and rejected are the same text"))


def read_id_comparisons(path: str | Path, *, user_col: str | None = None, winner_col: str = "winner",
                        loser_col: str = "loser") -> PreferencePairs:
    """Read ``(user, winner, loser)`` rows as pairs whose options are the item ids.

    The user column is optional; rows without one get user -1. Item ids of winners and losers
    form the option vocabulary. A row whose winner equals its loser is an error.
    """
    table = read_table(path, required=(winner_col, loser_col))
    ucol = _pick(table.frame.columns, user_col, ("user", "user_id", "userId"), "user", table, False)
    winners = table.ids(winner_col)
    losers = table.ids(loser_col)
    same = (winners == losers).arg_true()
    if len(same):
        raise table.error(f"winner and loser are both {winners[int(same[0])]!r}", row=int(same[0]), column=loser_col,
                          expected="two different items")
    item_vocab = sorted_ids(concat_ids([winners, losers]))
    if ucol is not None:
        user_raw = table.ids(ucol)
        user_vocab = sorted_ids(user_raw)
        user = index_of(user_vocab, user_raw).astype(np.int64)
    else:
        user_vocab = np.array([], dtype=object)
        user = np.full(len(winners), -1, dtype=np.int64)
    vocabularies = {"user": (ucol,)} if ucol is not None else {}
    spaced = whitespace_steps(table, vocabularies | {"item": (winner_col, loser_col)})
    return PreferencePairs(user, index_of(item_vocab, winners).astype(np.int64), index_of(item_vocab, losers).astype(np.int64),
                           np.arange(len(winners), dtype=np.int64), user_vocab, item_vocab,
                           steps=(Step("comparisons read", len(winners), f"from {table.path}"), *spaced), name=Path(path).stem)
