"""UltraFeedback's fine-grained ratings as pairs, with the rated aspect as context.

The published layout (openbmb/UltraFeedback on HuggingFace, one JSON object a line; Cui et al.
2023, "UltraFeedback: Boosting Language Models with High-quality Feedback"; field names checked
against the dataset card and HuggingFaceH4/ultrafeedback_binarized's ``create_dataset.py``)::

    {"source": ..., "instruction": "the prompt", "models": [...],
     "completions": [{"model": ..., "response": "a reply", "custom_system_prompt": ...,
                      "principle": ..., "critique": ..., "overall_score": 7.5,
                      "fine-grained_score": 4.25,
                      "annotations": {"helpfulness": {"Rating": "4", "Rationale": ...},
                                      "honesty": {...}, "instruction_following": {...},
                                      "truthfulness": {...}}}, ...]}

Ratings are 1-5, written as strings, and ``"N/A"`` where GPT-4 gave none; numbers are read too.

What becomes a pair (``mode``):

- ``aspects`` (default): for each aspect, every two completions of a prompt whose ratings on it
  differ; the higher-rated one wins. The pair's context (``option_context``, the prompt that the
  text models read) is ``"[aspect: honesty] " + instruction``, and the user is the aspect (one
  rater per criterion, ``user="aspect"``), so personal models (pbt, vpl, pal, dpa) learn one
  preference per criterion and a text model sees the criterion in the prompt.
- ``fine-grained`` / ``overall``: every two completions whose ``fine-grained_score`` (the mean of
  the four ratings) / ``overall_score`` (the critique's 1-10 score) differ; context = instruction,
  nobody named (user −1).

Every option (a (context, reply) pair) carries its four aspect ratings as ``option_attributes``
(``attribute_names`` = the aspects), which ``dpa given=true`` reads; an N/A rating there is filled
with that aspect's mean over the file's rated completions (counted in ``steps``). Counted and
dropped, never silently: equal ratings (ties), N/A ratings, prompts with fewer than two
completions, pairs of identical reply text. A reply that appears twice under one context keeps the
ratings of its first appearance.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from penchant.data.comparisons import _read_jsonl
from penchant.data.dataset import Step
from penchant.data.pair_files import rows_as_text_pairs
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError

#: the four rated aspects, in the order of ``attribute_names``
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
MODES = ("aspects", "fine-grained", "overall")
USERS = ("aspect", "none")
#: the fields that tell this layout apart from the other comparison files
FIELDS = ("instruction", "completions")


def aspect_context(aspect: str, instruction: str) -> str:
    """The prompt a pair judged on ``aspect`` is read under: ``"[aspect: honesty] " + instruction``."""
    return f"[aspect: {aspect}] {instruction}"


def _number(value: object, path: Path, line: int, column: str, expected: str) -> float:
    """A rating or score as a float; "N/A" (any case) is NaN; anything else names its field."""
    if isinstance(value, bool):
        raise DataError(f"{value!r} is not a rating", file=path, line=line, column=column, expected=expected)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        if value.strip().upper() == "N/A":
            return math.nan
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise DataError(f"{value!r} is not a rating", file=path, line=line, column=column, expected=expected)


def _completions(row: dict, path: Path) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    """(instruction, replies, ratings float (k, 4) with NaN for N/A, scores float (k, 2): fine-grained
    and overall, NaN where absent) of one record."""
    line = row["__line__"]
    instruction = row.get("instruction")
    if not isinstance(instruction, str):
        raise DataError("missing or not a string", file=path, line=line, column="instruction", expected="the prompt")
    completions = row.get("completions")
    if not isinstance(completions, list):
        raise DataError("not a list", file=path, line=line, column="completions",
                        expected="a list of completions {response, annotations}")
    replies, ratings, scores = [], [], []
    for j, c in enumerate(completions):
        where = f"completions[{j}]"
        if not isinstance(c, dict):
            raise DataError("not an object", file=path, line=line, column=where, expected="{response, annotations}")
        if not isinstance(c.get("response"), str):
            raise DataError("missing or not a string", file=path, line=line, column=f"{where}.response",
                            expected="the reply text")
        notes = c.get("annotations")
        if not isinstance(notes, dict):
            raise DataError("missing or not an object", file=path, line=line, column=f"{where}.annotations",
                            expected=f"ratings of {', '.join(ASPECTS)}")
        row_ratings = []
        for aspect in ASPECTS:
            note = notes.get(aspect)
            if not isinstance(note, dict) or "Rating" not in note:
                raise DataError("missing, or without a Rating", file=path, line=line,
                                column=f"{where}.annotations.{aspect}", expected='{"Rating": "1".."5" or "N/A", ...}')
            row_ratings.append(_number(note["Rating"], path, line, f"{where}.annotations.{aspect}.Rating",
                                       'a rating "1".."5" or "N/A"'))
        row_scores = []
        for field in ("fine-grained_score", "overall_score"):
            value = c.get(field)
            row_scores.append(math.nan if value is None else
                              _number(value, path, line, f"{where}.{field}", "a number or N/A"))
        replies.append(c["response"])
        ratings.append(row_ratings)
        scores.append(row_scores)
    return (instruction, replies, np.array(ratings, np.float64).reshape(-1, len(ASPECTS)),
            np.array(scores, np.float64).reshape(-1, 2))


def read_ultrafeedback(path: str | Path, *, mode: str = "aspects", user: str = "aspect") -> PreferencePairs:
    """UltraFeedback records (JSONL, optionally gzipped) as pairs; see the module docstring.

    Args:
        mode: ``aspects`` (a pair per aspect on which two completions differ), ``fine-grained`` or
            ``overall`` (a pair per two completions whose score differs).
        user: ``aspect`` (the aspect is the user, in ``aspects`` mode) or ``none`` (user −1).

    Returns pairs over options = distinct (context, reply); ``option_attributes`` float32
    (n_options, 4) are the aspect ratings, named by ``attribute_names``.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if user not in USERS:
        raise ConfigError(f"user must be one of {', '.join(USERS)}, not {user!r}")
    path = Path(path)
    records = [_completions(row, path) for row in _read_jsonl(path)]
    rated = np.concatenate([r[2] for r in records]) if records else np.zeros((0, len(ASPECTS)))
    with np.errstate(invalid="ignore"):
        fill = np.nan_to_num(np.nanmean(rated, 0) if len(rated) else np.zeros(len(ASPECTS)), nan=0.0)
    prompts, chosen, rejected, users, attr_w, attr_l = [], [], [], [], [], []
    short = ties = missing = completions = 0
    for instruction, replies, ratings, scores in records:
        completions += len(replies)
        if len(replies) < 2:
            short += 1
            continue
        i, j = np.triu_indices(len(replies), k=1)
        if mode == "aspects":
            columns = [(ratings[:, a], aspect_context(aspect, instruction), aspect if user == "aspect" else None)
                       for a, aspect in enumerate(ASPECTS)]
        else:
            columns = [(scores[:, 0 if mode == "fine-grained" else 1], instruction, None)]
        shown = np.where(np.isnan(ratings), fill, ratings)
        for values, context, who in columns:
            a, b = values[i], values[j]
            unrated = np.isnan(a) | np.isnan(b)
            same = ~unrated & (a == b)
            keep = ~unrated & ~same
            missing += int(unrated.sum())
            ties += int(same.sum())
            win = np.where(a > b, i, j)[keep]
            lose = np.where(a > b, j, i)[keep]
            prompts += [context] * len(win)
            chosen += [replies[k] for k in win]
            rejected += [replies[k] for k in lose]
            users += [who] * len(win)
            attr_w.append(shown[win])
            attr_l.append(shown[lose])
    if not prompts:
        raise DataError("no pair of completions with different ratings", file=path,
                        expected="prompts with at least two completions rated differently")
    score = "ratings" if mode == "aspects" else f"{mode} scores"
    steps = (Step("UltraFeedback prompts read", len(records), f"{completions:,} completions, from {path}"),
             Step("prompts with fewer than two completions dropped", short, "nothing to compare"),
             Step(f"pairs with equal {score} dropped", ties, "ties say neither is better"),
             Step("pairs with an N/A rating or score dropped", missing, "unrated on that criterion"),
             Step("N/A ratings filled in option attributes", int(np.isnan(rated).sum()),
                  "with the aspect's mean over the file's rated completions"))
    who = np.array(users, dtype=object)
    pairs = rows_as_text_pairs(np.array(prompts, dtype=object), np.array(chosen, dtype=object),
                               np.array(rejected, dtype=object), who if user == "aspect" and mode == "aspects" else None,
                               path)
    attributes = np.zeros((pairs.n_options, len(ASPECTS)), np.float32)
    sides = np.stack([pairs.winner, pairs.loser], 1).ravel()  # each option's appearances, in file order
    values = np.stack([np.concatenate(attr_w), np.concatenate(attr_l)], 1).reshape(-1, len(ASPECTS))
    attributes[sides[::-1]] = values[::-1]  # the last write lands: the first appearance wins
    pairs = replace(pairs, steps=steps + pairs.steps, name=path.stem, option_attributes=attributes,
                    attribute_names=np.array(ASPECTS, dtype=object))
    same = pairs.winner == pairs.loser
    return pairs.subset(~same, Step("identical replies dropped", int(same.sum()),
                                    "two completions with the same text"))
