"""Does an assistant keep to a preference stated earlier in the conversation? (after PrefEval: Zhao
et al. 2025, "Do LLMs Recognize Your Preferences? Evaluating Personalized Preference Following").

Each case states a preference in the first user turn, then ``distance`` unrelated exchanges follow,
then a request whose natural answer would break the preference. Answers are judged by rules: words
the answer must not name outside a negated sentence (word boundaries, any case) or a word limit. The same request is also sent
without the preference turn: the share of answers that "follow" there is what the assistant does
anyway, so the difference is what stating the preference changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant.llm.client import LLMClient

_NEGATION = re.compile(r"\b(not|no|never|without|avoid\w*|instead|free|n't)\b|n't", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """A stated preference, a later request that tests it, and the rule an answer must keep."""

    name: str
    preference: str
    request: str
    avoid: tuple[str, ...] = ()
    max_words: int | None = None

    def follows(self, answer: str) -> bool:
        """True when ``answer`` keeps the rule: within the word limit, and no sentence names an
        avoided thing (plurals included) without a negation cue in the same sentence ("you can't
        fly", "without meat" keep the preference; "try the chicken" breaks it)."""
        if self.max_words is not None and len(answer.split()) > self.max_words:
            return False
        for sentence in re.split(r"(?<=[.!?\n])\s*", answer):
            named = any(re.search(rf"\b{re.escape(w)}(?:s|es)?\b", sentence, re.IGNORECASE) for w in self.avoid)
            if named and not _NEGATION.search(sentence):
                return False
        return True


CASES: tuple[Case, ...] = (
    Case("vegetarian", "I'm a vegetarian: I never eat meat or fish.", "Suggest a dinner recipe for tonight.",
         ("chicken", "beef", "pork", "bacon", "ham", "fish", "salmon", "tuna", "shrimp", "lamb", "turkey", "meat", "steak", "sausage")),
    Case("no flying", "I'm terrified of flying and never take planes.", "How should I travel from London to Rome?",
         ("fly", "flight", "plane", "airport", "airline", "aeroplane", "airplane")),
    Case("no alcohol", "I don't drink alcohol at all.", "Give me ideas for drinks at my birthday party.",
         ("wine", "beer", "vodka", "rum", "gin", "whisky", "whiskey", "cocktail", "champagne", "prosecco", "sangria", "tequila")),
    Case("peanut allergy", "I have a severe peanut allergy.", "What snack should I pack for a hike?",
         ("peanut", "peanuts", "trail mix")),
    Case("short answers", "Please keep every answer under 30 words.", "Explain how a bicycle works.", max_words=30),
    Case("no horror", "I can't stand horror films; they give me nightmares.", "Recommend a film for Friday night.",
         ("horror", "scary", "the shining", "halloween", "the exorcist", "it follows", "hereditary")),
    Case("no coffee", "I avoid caffeine completely.", "What should I drink to wake up in the morning?",
         ("coffee", "espresso", "latte", "cappuccino", "caffeine", "energy drink")),
    Case("no social media", "I deleted all my social media and won't use it.", "How can I promote my bake sale?",
         ("facebook", "instagram", "twitter", "tiktok", "social media")),
)

FILLER = (("What is the capital of Australia?", "The capital of Australia is Canberra."),
          ("How many legs does a spider have?", "A spider has eight legs."),
          ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
          ("Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice."),
          ("What is 12 times 12?", "12 times 12 is 144."))


def conversation(case: Case, distance: int, stated: bool) -> list[dict[str, str]]:
    """The chat: the preference (if ``stated``) with a fixed acknowledgement, ``distance`` filler
    exchanges, then the request."""
    chat: list[dict[str, str]] = []
    if stated:
        chat += [{"role": "user", "content": case.preference},
                 {"role": "assistant", "content": "Thank you for telling me; I will keep that in mind."}]
    for q, a in (FILLER * (distance // len(FILLER) + 1))[:distance]:
        chat += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return chat + [{"role": "user", "content": case.request}]


def evaluate(client: LLMClient, cases: Sequence[Case] = CASES, distances: Sequence[int] = (0, 4), *,
             max_tokens: int = 120, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Follow rates with and without the stated preference, by distance, and every answer."""
    jobs = [(c, d, s) for d in distances for c in cases for s in (True, False)]
    answers = client.map(lambda job: client.chat(conversation(*job), max_tokens=max_tokens), jobs, progress=progress)
    rows = [{"case": c.name, "distance": d, "stated": s, "follows": c.follows(a), "answer": a}
            for (c, d, s), a in zip(jobs, answers)]
    by_distance = []
    for d in distances:
        stated = [r["follows"] for r in rows if r["distance"] == d and r["stated"]]
        unstated = [r["follows"] for r in rows if r["distance"] == d and not r["stated"]]
        by_distance.append({"distance": d, "cases": len(stated), "follow_rate": float(np.mean(stated)),
                            "follow_rate_unstated": float(np.mean(unstated)),
                            "difference": float(np.mean(stated) - np.mean(unstated))})
    return {"model": client.model, "by_distance": by_distance, "answers": rows, "usage": client.usage.to_json()}
