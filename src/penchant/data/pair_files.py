"""Comparison files as :class:`PreferencePairs`, and several files over one vocabulary.

A comparison file is either id pairs (``user?, winner, loser`` columns, CSV/TSV/Parquet) or text
comparisons in the TRL layout (``{prompt?, chosen, rejected, user?}`` JSONL or CSV, HH-RLHF
dialogues and VPL's relabeled layout included); :func:`read_pairs` tells them apart by their
fields. Train and test files read apart have their own vocabularies; :func:`merge_pairs` maps
them onto one (users by id, options by id or by (prompt, reply) text, prompts by text), so a
model fitted on one can be asked about the other.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from penchant.data.dataset import Step
from penchant.data.pairs import PreferencePairs
from penchant.errors import DataError

#: the fields of each layout: (required, the layout's name, optional fields)
_LAYOUTS = ((("chosen", "rejected"), "text", "TRL layout, prompt and user optional"),
            (("responses", "label"), "text", "relabeled layout, prompt and user or objective"),
            (("winner", "loser"), "ids", "id pairs, user optional"))


def comparison_layout(path: str | Path) -> str:
    """``"text"`` (TRL layout) or ``"ids"`` (winner/loser columns), from the file's first record; a
    record that is neither names its line and, where one field of a pair is there, the one missing."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", file=path, expected="a comparison file")
    line: int | None = 1
    if ".jsonl" in path.suffixes or ".json" in path.suffixes:
        line, record = _first_record(path)
        if not isinstance(record, dict):
            raise DataError("a JSON line is not an object", file=path, line=line, expected="a JSON object")
        fields = set(record)
    else:
        from penchant.data.readers import read_table

        table = read_table(path)
        fields = set(table.frame.columns)
        line = 1 if table.line_kind == "line" else None  # the header; Parquet has none
    for required, layout, _ in _LAYOUTS:
        if set(required) <= fields:
            return layout
    for required, _, about in _LAYOUTS:
        if set(required) & fields:
            missing = next(f for f in required if f not in fields)
            raise DataError(f"no field '{missing}' beside '{next(f for f in required if f in fields)}' "
                            f"(fields: {', '.join(sorted(fields))})", file=path, line=line, column=missing,
                            expected=f"{' and '.join(required)} ({about})")
    raise DataError(f"fields {sorted(fields)} are neither layout" if fields else "an empty record: no fields",
                    file=path, line=line,
                    expected="chosen/rejected (TRL layout, prompt and user optional) or winner/loser (user optional)")


def _first_record(path: Path) -> tuple[int, object]:
    """The first non-blank line of a JSON-lines file (optionally gzipped), parsed, with its line number."""
    from penchant.data.comparisons import json_line

    opener = gzip.open if path.suffix == ".gz" else open
    number, raw = 0, b""
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if raw.strip():
                    break
            else:
                raw = b""
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot be read ({exc})", file=path,
                        expected="a gzip file" if path.suffix == ".gz" else "JSON lines") from None
    if not raw:
        raise DataError("the file is empty", file=path, line=1, expected="at least one comparison")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"byte 0x{raw[exc.start]:02x} at character {exc.start + 1} is not valid UTF-8",
                        file=path, line=number, expected="UTF-8 text") from None
    return number, json_line(text, path, number)


def read_pairs(path: str | Path) -> PreferencePairs:
    """One comparison file (either layout) as pairs."""
    from penchant.data.comparisons import read_id_comparisons, read_text_comparisons

    return read_text_comparisons(path) if comparison_layout(path) == "text" else read_id_comparisons(path)


def _option_keys(p: PreferencePairs) -> np.ndarray:
    if p.option_context is not None:
        return np.char.add(np.char.add(p.option_context.astype(str), "\x00"), p.option_text.astype(str))
    return p.option_ids.astype(str)


def merge_pairs(parts: Sequence[PreferencePairs]) -> tuple[PreferencePairs, list[np.ndarray]]:
    """All ``parts`` as one :class:`PreferencePairs` over shared users, options and groups, and
    the positions of each part's pairs in it (int64 arrays, in order)."""
    if not parts:
        raise ValueError("nothing to merge")
    texty = [p.option_context is not None for p in parts]
    if any(texty) and not all(texty):
        raise DataError("cannot merge text comparisons with id comparisons", expected="files of one layout")
    keys = [_option_keys(p) for p in parts]
    option_keys, first = np.unique(np.concatenate(keys), return_index=True)
    user_ids = np.unique(np.concatenate([p.user_ids.astype(str) for p in parts] + [np.array([], str)]))
    users, winners, losers, groups = [], [], [], []
    offset = 0
    for p, k in zip(parts, keys):
        opt = np.searchsorted(option_keys, k)
        usr = np.searchsorted(user_ids, p.user_ids.astype(str)) if p.n_users else np.zeros(0, np.int64)
        users.append(np.where(p.user >= 0, usr[np.maximum(p.user, 0)] if p.n_users else -1, -1))
        winners.append(opt[p.winner])
        losers.append(opt[p.loser])
        groups.append(p.group + offset)
        offset += int(p.group.max()) + 1 if len(p) else 0
    group = np.concatenate(groups)
    def pooled(attr: str) -> np.ndarray | None:
        if getattr(parts[0], attr) is None:
            return None
        return np.concatenate([getattr(p, attr) for p in parts]).astype(object)[first]

    context = pooled("option_context")
    if context is not None:  # one group per prompt text, whichever file it came from
        winner = np.concatenate(winners)
        group = np.unique(context[winner].astype(str), return_inverse=True)[1]
        option_ids = np.arange(len(option_keys)).astype(str).astype(object)
    else:
        option_ids = option_keys.astype(object)
    sizes = np.cumsum([0] + [len(p) for p in parts])
    merged = PreferencePairs(np.concatenate(users).astype(np.int64), np.concatenate(winners).astype(np.int64),
                             np.concatenate(losers).astype(np.int64), group.astype(np.int64), user_ids.astype(object),
                             option_ids, pooled("option_text"), context,
                             tuple(s for p in parts for s in p.steps) + (Step("files merged", int(sizes[-1]),
                                                                              f"{len(parts)} files, one vocabulary"),),
                             "+".join(p.name for p in parts))
    return merged, [np.arange(sizes[i], sizes[i + 1]) for i in range(len(parts))]


def read_pair_files(paths: Sequence[str | Path]) -> tuple[PreferencePairs, list[PreferencePairs]]:
    """Several comparison files over one vocabulary: (everything, each file's pairs)."""
    merged, where = merge_pairs([read_pairs(p) for p in paths])
    return merged, [replace(merged.subset(idx), name=Path(p).name) for p, idx in zip(paths, where)]
