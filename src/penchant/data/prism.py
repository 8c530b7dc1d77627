"""PRISM's individualised conversations as pairs: each participant's choices among the replies
rated at one turn, read under the conversation so far and, where the survey is given, what the
participant said they want from a language model.

The published layout (HannahRoseKirk/prism-alignment on HuggingFace; Kirk et al. 2024, "The PRISM
Alignment Project", arXiv:2404.16019; field names checked against the dataset card and the
release scripts ``src/data_processing/prepare_conversations.py`` and ``prepare_survey.py`` of
github.com/HannahKirk/prism-alignment)::

    conversations.jsonl: {"conversation_id": "c0", "user_id": "user0", "conversation_type": ...,
        "conversation_history": [
            {"turn": 0, "role": "user", "content": "the participant's prompt"},
            {"turn": 0, "role": "model", "content": "a reply", "model_provider": ..., "model_name": ...,
             "score": 72, "if_chosen": true, "within_turn_id": 0}, ...],
        "open_feedback": ..., ...}
    survey.jsonl: {"user_id": "user0", "system_string": "how the participant wants the model to
        behave, in their words", "stated_prefs": {"factuality": 90, ...},
        "order_stated_prefs": {"factuality": 1, "safety": 2, ...}, "self_description": ..., ...}

At turn 0 four models answer, later turns two samples of the chosen model; every reply is scored
1-100 and the highest-rated is ``if_chosen`` (the conversation continues with it).

What becomes a pair (``pairs``): ``chosen`` (default): at each turn, the chosen reply against each
other reply; ``scores``: every two replies of a turn whose scores differ, the higher winning.
User = the PRISM ``user_id`` (individualised); context (the prompt the text models read) = the
conversation up to that turn, as ``Human: ... Assistant: ...`` turns with the chosen replies of
earlier turns, prefixed with the participant's stated criterion when a survey file is given:
``"[stated: factuality, safety, helpfulness; <system_string>] "`` (the three aspects they ranked
first, then their own words). Counted and dropped, never silently: turns with fewer than two
replies, turns without exactly one chosen reply (``chosen``), tied scores (``scores``, and in
``chosen`` mode a chosen reply scored level with another is kept and counted: the choice broke the
tie), identical reply texts, and participants missing from the survey.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from penchant.data.comparisons import ASSISTANT_TURN, _read_jsonl
from penchant.data.dataset import Step
from penchant.data.pair_files import rows_as_text_pairs
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError

PAIRINGS = ("chosen", "scores")
#: the fields that tell this layout apart from the other comparison files
FIELDS = ("conversation_id", "conversation_history")
#: the survey file beside a conversations file that :func:`penchant.data.pair_files.read_pairs` reads
SURVEY = "survey.jsonl"
HUMAN_TURN = "\n\nHuman:"


def read_stated(path: str | Path) -> dict[str, str]:
    """{user_id: stated criterion} from PRISM's ``survey.jsonl``: ``"[stated: a, b, c; words] "``,
    the aspects ranked 1-3 in ``order_stated_prefs`` (else the three highest ``stated_prefs``) and
    ``system_string``; a participant who stated neither maps to ``""``."""
    path = Path(path)
    stated = {}
    for row in _read_jsonl(path):
        line = row["__line__"]
        user = row.get("user_id")
        if not isinstance(user, (str, int)) or isinstance(user, bool):
            raise DataError("missing or not an id", file=path, line=line, column="user_id", expected="a user id")
        parts = []
        for field, highest in (("order_stated_prefs", False), ("stated_prefs", True)):
            ranks = row.get(field)
            if ranks is None:
                continue
            if not isinstance(ranks, dict):
                raise DataError("not an object", file=path, line=line, column=field, expected="{aspect: number}")
            for aspect, value in ranks.items():
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not math.isfinite(value)):
                    raise DataError(f"{value!r} is not a number", file=path, line=line, column=f"{field}.{aspect}",
                                    expected="a rank (order_stated_prefs) or a 0-100 rating (stated_prefs)")
            named = sorted(((-v if highest else v), a) for a, v in ranks.items() if v is not None and a != "other")
            if named:
                parts.append(", ".join(a for _, a in named[:3]))
                break
        words = row.get("system_string")
        if words is not None and not isinstance(words, str):
            raise DataError("not a string", file=path, line=line, column="system_string",
                            expected="the participant's own words")
        if words and words.strip():
            parts.append(" ".join(words.split()))
        stated[str(user)] = f"[stated: {'; '.join(parts)}] " if parts else ""
    return stated


def _turns(row: dict, path: Path) -> list[tuple[str, list[tuple[str, float, bool]]]]:
    """One conversation as [(context before this turn's replies, [(reply, score, chosen), ...])], in
    turn order; the context is the dialogue so far, the chosen replies standing for earlier turns."""
    line = row["__line__"]
    history = row.get("conversation_history")
    if not isinstance(history, list):
        raise DataError("not a list", file=path, line=line, column="conversation_history",
                        expected="a list of turns {turn, role, content, ...}")
    prompts: dict[int, str] = {}
    replies: dict[int, list[tuple[str, float, bool]]] = {}
    for k, entry in enumerate(history):
        where = f"conversation_history[{k}]"
        if not isinstance(entry, dict):
            raise DataError("not an object", file=path, line=line, column=where, expected="{turn, role, content}")
        turn, role, content = entry.get("turn"), entry.get("role"), entry.get("content")
        if isinstance(turn, bool) or not isinstance(turn, int):
            raise DataError(f"turn {turn!r}", file=path, line=line, column=f"{where}.turn", expected="an integer")
        if not isinstance(content, str):
            raise DataError("missing or not a string", file=path, line=line, column=f"{where}.content",
                            expected="the text of the turn")
        if role == "user":
            prompts[turn] = content
        elif role == "model":
            score, chosen = entry.get("score"), entry.get("if_chosen")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise DataError(f"score {score!r}", file=path, line=line, column=f"{where}.score",
                                expected="a number (1-100)")
            if not isinstance(chosen, bool):
                raise DataError(f"if_chosen {chosen!r}", file=path, line=line, column=f"{where}.if_chosen",
                                expected="true or false")
            replies.setdefault(turn, []).append((content, float(score), chosen))
        else:
            raise DataError(f"role {role!r}", file=path, line=line, column=f"{where}.role", expected="user or model")
    missing = sorted(set(replies) - set(prompts))
    if missing:
        raise DataError(f"model replies at turn {missing[0]} answer no user turn", file=path, line=line,
                        column="conversation_history", expected="a user turn before each turn's replies")
    out, dialogue = [], ""
    for turn in sorted(prompts):
        dialogue += f"{HUMAN_TURN} {prompts[turn]}{ASSISTANT_TURN}"
        options = replies.get(turn, [])
        out.append((dialogue, options))
        picked = [text for text, _, chosen in options if chosen]
        dialogue += f" {picked[0]}" if len(picked) == 1 else ""
    return out


def read_prism(path: str | Path, survey: str | Path | None = None, *, pairs: str = "chosen") -> PreferencePairs:
    """PRISM's ``conversations.jsonl`` (optionally gzipped) as pairs; see the module docstring.

    Args:
        survey: PRISM's ``survey.jsonl``: each participant's stated criterion is prefixed to the
            contexts of their pairs. None: contexts are the conversation alone.
        pairs: ``chosen`` (the chosen reply against each other reply of its turn) or ``scores``
            (every two replies of a turn with different scores).

    Returns pairs over options = distinct (context, reply), user = PRISM ``user_id``, group = context.
    """
    if pairs not in PAIRINGS:
        raise ConfigError(f"pairs must be one of {', '.join(PAIRINGS)}, not {pairs!r}")
    path = Path(path)
    stated = read_stated(survey) if survey is not None else None
    prompts, chosen, rejected, users = [], [], [], []
    turns = short = unchosen = ties = kept_ties = unsurveyed = conversations = 0
    for row in _read_jsonl(path):
        user = row.get("user_id")
        if not isinstance(user, (str, int)) or isinstance(user, bool):
            raise DataError("missing or not an id", file=path, line=row["__line__"], column="user_id",
                            expected="the participant's user_id")
        user = str(user)
        prefix = ""
        if stated is not None:
            if user in stated:
                prefix = stated[user]
            else:
                unsurveyed += 1
        conversations += 1
        for context, options in _turns(row, path):
            turns += 1
            if len(options) < 2:
                short += 1
                continue
            texts = [t for t, _, _ in options]
            scores = np.array([s for _, s, _ in options])
            if pairs == "chosen":
                picked = [k for k, (_, _, c) in enumerate(options) if c]
                if len(picked) != 1:
                    unchosen += 1
                    continue
                w = picked[0]
                losers = [k for k in range(len(options)) if k != w]
                kept_ties += int((scores[losers] == scores[w]).sum())
                won = [(w, k) for k in losers]
            else:
                i, j = np.triu_indices(len(options), k=1)
                same = scores[i] == scores[j]
                ties += int(same.sum())
                won = [(a, b) if scores[a] > scores[b] else (b, a) for a, b in zip(i[~same], j[~same])]
            prompts += [prefix + context] * len(won)
            chosen += [texts[a] for a, _ in won]
            rejected += [texts[b] for _, b in won]
            users += [user] * len(won)
    if not prompts:
        raise DataError("no turn with two or more rated replies to compare", file=path,
                        expected="conversations whose turns have several scored replies")
    steps = (Step("PRISM conversations read", conversations, f"{turns:,} turns, from {path}"),
             Step("turns with fewer than two replies dropped", short, "nothing to compare"))
    if pairs == "chosen":
        steps += (Step("turns without exactly one chosen reply dropped", unchosen, "if_chosen names no winner"),
                  Step("chosen replies level in score with the other kept", kept_ties, "the choice broke the tie"))
    else:
        steps += (Step("pairs with equal scores dropped", ties, "ties say neither is better"),)
    if stated is not None:
        steps += (Step("conversations whose participant is not in the survey", unsurveyed,
                       f"read without a stated criterion; survey {survey}"),)
    out = rows_as_text_pairs(np.array(prompts, dtype=object), np.array(chosen, dtype=object),
                             np.array(rejected, dtype=object), np.array(users, dtype=object), path)
    out = replace(out, steps=steps + out.steps)
    same = out.winner == out.loser
    return out.subset(~same, Step("identical replies dropped", int(same.sum()), "two replies with the same text"))
