"""Comparison files as :class:`PreferencePairs`, and several files over one vocabulary.

A comparison file is either id pairs (``user?, winner, loser`` columns, CSV/TSV/Parquet) or text
comparisons in the TRL layout (``{prompt?, chosen, rejected, user?}`` JSONL or CSV, HH-RLHF
dialogues and VPL's relabeled layout included), or a rated-replies file that pairs are built
from: UltraFeedback's multi-aspect ratings (:mod:`penchant.data.ultrafeedback`) or PRISM's
conversations (:mod:`penchant.data.prism`, with ``survey.jsonl`` beside it read for the stated
criteria); :func:`read_pairs` tells them apart by their fields. Train and test files read apart have their own vocabularies; :func:`merge_pairs` maps
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
            (("winner", "loser"), "ids", "id pairs, user optional"),
            (("instruction", "completions"), "ultrafeedback", "UltraFeedback's rated completions"),
            (("conversation_id", "conversation_history"), "prism", "PRISM's conversations"))


def comparison_layout(path: str | Path) -> str:
    """``"text"`` (TRL layout), ``"ids"`` (winner/loser columns), ``"ultrafeedback"`` or ``"prism"``
    (JSON lines whose rated replies become text pairs), from the file's first record; a record
    that is none of them names its line and, where one field of a pair is there, the one missing."""
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
                    expected="chosen/rejected (TRL layout, prompt and user optional), winner/loser (user optional), "
                             "instruction/completions (UltraFeedback) or conversation_id/conversation_history (PRISM)")


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
    """One comparison file (any layout) as pairs: UltraFeedback files per aspect (the aspect the
    user and the context), PRISM conversations with the stated criteria of ``survey.jsonl`` when it
    lies in the same folder (recorded in ``steps``)."""
    from penchant.data.comparisons import read_id_comparisons, read_text_comparisons

    layout = comparison_layout(path)
    if layout == "ultrafeedback":
        from penchant.data.ultrafeedback import read_ultrafeedback

        return read_ultrafeedback(path)
    if layout == "prism":
        from penchant.data.prism import SURVEY, read_prism

        survey = Path(path).with_name(SURVEY)
        return read_prism(path, survey if survey.exists() and survey != Path(path) else None)
    return read_text_comparisons(path) if layout == "text" else read_id_comparisons(path)


def rows_as_text_pairs(prompt: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, users: np.ndarray | None,
                       source: Path) -> PreferencePairs:
    """Rows of (prompt, chosen, rejected, user or None), object arrays (n,), as pairs over distinct
    (prompt, reply) options, group = prompt. The texts stay Python strings (numpy sorts them as
    objects): memory grows with the text read, not with n × the longest text, so a file whose
    prompts hold whole conversations (PRISM) or long replies (UltraFeedback) fits."""
    prompts, group = np.unique(prompt, return_inverse=True)
    texts, reply = np.unique(np.concatenate([chosen, rejected]), return_inverse=True)
    keys, option = np.unique(np.concatenate([group, group]).astype(np.int64) * len(texts) + reply, return_inverse=True)
    n = len(chosen)
    user, user_ids = np.full(n, -1, dtype=np.int64), np.array([], dtype=object)
    if users is not None:  # rows without a user (None) belong to nobody in particular: −1
        named = np.array([u is not None for u in users], dtype=bool)
        user_ids, user[named] = np.unique(users[named].astype(str).astype(object), return_inverse=True)
    return PreferencePairs(user, option[:n].astype(np.int64), option[n:].astype(np.int64), group.astype(np.int64),
                           user_ids, np.arange(len(keys)).astype(str).astype(object), texts[keys % len(texts)],
                           prompts[keys // len(texts)], (Step("text comparisons read", n, f"from {source}"),),
                           Path(source).stem)


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
    attributes, names, attribute_steps = _pooled_attributes(parts, first)
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
                             tuple(s for p in parts for s in p.steps) + attribute_steps
                             + (Step("files merged", int(sizes[-1]), f"{len(parts)} files, one vocabulary"),),
                             "+".join(p.name for p in parts), attributes, names)
    return merged, [np.arange(sizes[i], sizes[i + 1]) for i in range(len(parts))]


def _pooled_attributes(parts: Sequence[PreferencePairs], first: np.ndarray
                       ) -> tuple[np.ndarray | None, np.ndarray | None, tuple[Step, ...]]:
    """The merged options' attributes (float32 (n_options, m), rows at ``first`` of the pooled
    options) and their names, when every part has the same ones; a part without any drops them
    all (counted); parts naming different attributes are an error."""
    named = [p for p in parts if p.option_attributes is not None]
    if not named:
        return None, None, ()
    if len(named) < len(parts):
        bare = [p.name for p in parts if p.option_attributes is None]
        return None, None, (Step("option attributes dropped", len(named), f"{', '.join(bare)} carries none"),)
    names = [tuple(str(n) for n in (p.attribute_names if p.attribute_names is not None else ()))
             for p in parts]
    widths = [p.option_attributes.shape[1] for p in parts]
    odd = next((p for p, n, w in zip(parts, names, widths) if n != names[0] or w != widths[0]), None)
    if odd is not None:
        raise DataError(f"{parts[0].name} and {odd.name} carry different option attributes",
                        expected="files with the same attributes")
    pooled = np.concatenate([p.option_attributes for p in parts]).astype(np.float32)[first]
    return pooled, parts[0].attribute_names, ()


def read_pair_files(paths: Sequence[str | Path]) -> tuple[PreferencePairs, list[PreferencePairs]]:
    """Several comparison files over one vocabulary: (everything, each file's pairs)."""
    merged, where = merge_pairs([read_pairs(p) for p in paths])
    return merged, [replace(merged.subset(idx), name=Path(p).name) for p, idx in zip(paths, where)]
