"""A language model as the judge of A-versus-B pairs, its agreement with people, and a routing rule
that sends to people only the pairs the judge is unsure of (after "Hybrid Preferences", Miranda et
al. 2024, which routes to people the instances where a person's label is worth most).

The judge sees the conversation and two replies labelled A and B and answers ``{"better": "A"}`` or
``{"better": "B"}``. Its probability that the first reply is better is read from the answer's
token probabilities where the endpoint returns them (else the written letter counts as 0 or 1).
Judges favour a position, so by default each pair is judged in both orders and the two
probabilities averaged (as MT-Bench's judge is): ``p = (p(A first) + 1 − p(A second)) / 2``.

Routing: the judge's confidence in a pair is ``|2p − 1|``. With a budget of a share ``b`` of the
pairs for people, the ``b`` least confident pairs go to people and the rest keep the judge's label.
Against human labels this gives the hybrid set's agreement, reported beside random routing of the
same share (``b + (1 − b) · accuracy``): what the judge's own uncertainty is worth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant.llm.answers import AnswerFormatError
from penchant.llm.client import Completion, LLMAnswerError, LLMClient

SYSTEM = ("You are a careful judge of an AI assistant's replies. Given a conversation and two candidate replies, "
          "decide which reply is better: more helpful, honest and harmless.")
SCHEMA = {"type": "object", "properties": {"better": {"enum": ["A", "B"]}}, "required": ["better"],
          "additionalProperties": False}


def _clip(text: str, limit: int) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else "…" + text[-limit:]  # the end of a dialogue is what the reply answers


def first_better(answer: Completion) -> float:
    """P(reply A is better) from one answer: the A/B token probabilities where given, else 0 or 1."""
    for step in answer.logprobs or ():
        letters = {}
        for alt in step["top_logprobs"] + [step]:
            letter = alt["token"].strip().strip('"')
            if letter in ("A", "B"):
                letters[letter] = math.exp(alt["logprob"])
        if letters:
            total = sum(letters.values())
            return letters.get("A", 0.0) / total
    from penchant.llm.answers import check, extract_json

    return 1.0 if check(extract_json(answer.text), SCHEMA)["better"] == "A" else 0.0


class PairJudge:
    """Judges pairs of replies through an :class:`~penchant.llm.client.LLMClient`.

    Args:
        client: the endpoint (default: ``PENCHANT_LLM_URL`` or the embedded model).
        both_orders: judge each pair as (x, y) and (y, x) and average.
        max_chars: the conversation and each reply are cut to their last ``max_chars`` characters.
        logprobs: read the answer's token probabilities (False for endpoints that do not return them).
    """

    def __init__(self, client: LLMClient | None = None, *, both_orders: bool = True, max_chars: int = 700,
                 logprobs: bool = True) -> None:
        self.client = client or LLMClient(max_tokens=12)
        self.both_orders, self.max_chars, self.logprobs = both_orders, max_chars, logprobs

    def messages(self, prompt: str, a: str, b: str) -> list[dict[str, str]]:
        """The chat asking which of ``a`` and ``b`` better answers ``prompt``."""
        m = self.max_chars
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Conversation:\n{_clip(prompt, m)}\n\nReply A:\n{_clip(a, m)}\n\n"
                                            f"Reply B:\n{_clip(b, m)}\n\nWhich reply is better? "
                                            'Answer with JSON: {"better": "A"} or {"better": "B"}.'}]

    def _one(self, prompt: str, a: str, b: str) -> float:
        chat = self.messages(prompt, a, b)
        answer = self.client.complete(chat, schema=SCHEMA, top_logprobs=5 if self.logprobs else None)
        try:
            return first_better(answer)
        except AnswerFormatError as exc:  # the answer held no valid letter
            raise LLMAnswerError(f"{self.client.model} gave no verdict ({exc})", answer=answer.text,
                                 expected='{"better": "A"} or {"better": "B"}') from exc

    def judge(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str], *,
              progress: Callable[[int], None] | None = None) -> Judgements:
        """P(first better than second) for each pair, float64 (n,), and each order's probability."""
        jobs = [(p, x, y) for p, x, y in zip(prompts, first, second)]
        if self.both_orders:
            jobs += [(p, y, x) for p, x, y in zip(prompts, first, second)]
        done = self.client.map(lambda job: self._one(*job), jobs, progress=progress)
        n = len(prompts)
        forward = np.array(done[:n], np.float64)
        backward = 1.0 - np.array(done[n:], np.float64) if self.both_orders else forward
        return Judgements(forward, backward)


@dataclass
class Judgements:
    """A judge's probability that the first reply is better, from each presentation order, (n,) each."""

    forward: np.ndarray
    backward: np.ndarray

    @property
    def p(self) -> np.ndarray:
        """The two orders averaged: P(first better), float64 (n,)."""
        return (self.forward + self.backward) / 2

    @property
    def confidence(self) -> np.ndarray:
        """``|2p − 1|``: 0 when the judge cannot tell, 1 when it is sure."""
        return np.abs(2 * self.p - 1)

    def position_consistency(self) -> float:
        """Share of pairs where both orders give the same verdict (the same reply, or both a tie)."""
        return float(np.mean(np.sign(self.forward - 0.5) == np.sign(self.backward - 0.5)))


def agreement(p_first_better: np.ndarray) -> np.ndarray:
    """Per pair, 1 where the judge prefers the first reply (the people's choice), 0 where the second,
    0.5 at an exact tie; float64 (n,)."""
    p = np.asarray(p_first_better, np.float64)
    return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))


def route(confidence: np.ndarray, human_share: float) -> np.ndarray:
    """Mask (n,) of the pairs sent to people: the ``round(human_share · n)`` least confident (ties by
    position)."""
    n = len(confidence)
    k = int(round(human_share * n))
    routed = np.zeros(n, bool)
    routed[np.argsort(confidence, kind="stable")[:k]] = True
    return routed


def routing_report(judged: Judgements, budgets: Sequence[float]) -> list[dict[str, Any]]:
    """For each share of pairs sent to people: how many, the judge's agreement on the pairs it keeps
    and on those routed, the hybrid set's agreement with people, and random routing's expectation."""
    agree = agreement(judged.p)
    overall = float(agree.mean())
    rows = []
    for b in budgets:
        routed = route(judged.confidence, b)
        kept = ~routed
        hybrid = float((routed.sum() + agree[kept].sum()) / len(agree))
        share = float(routed.mean())
        rows.append({"human_share": share, "routed": int(routed.sum()),
                     "judge_agreement_kept": float(agree[kept].mean()) if kept.any() else None,
                     "judge_agreement_routed": float(agree[routed].mean()) if routed.any() else None,
                     "hybrid_agreement": hybrid,
                     "random_routing_agreement": share + (1 - share) * overall})
    return rows
