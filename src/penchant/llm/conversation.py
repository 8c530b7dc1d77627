"""Conversations in words: the policy still chooses what to ask, the language model phrases the
question, a language-model user (after RecLLM's simulator: it knows the film it wants and answers
in free text) replies, and the language model reads the reply back into accepted and rejected
values. Lists are judged as in the attribute simulator (the wanted film is in the list or not), so
success and turns compare with attribute conversations on the same episodes, and every misread
answer shows in ``understood`` (the share of asked values read as the attribute user would have
answered them).
"""

from __future__ import annotations

import re

import numpy as np

from penchant.data.attribute_graph import AttributeGraph
from penchant.llm.client import LLMClient
from penchant.converse.simulator import SimulatedUser


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "value"


class TextUser(SimulatedUser):
    """The simulated user of :mod:`penchant.converse.simulator`, reached through text.

    Args:
        graph, target, rng: as :class:`~penchant.converse.simulator.SimulatedUser`.
        client: the language model for the recommender's phrasing, the user and the reading.
        title: the wanted item's title (the LLM user knows it; it is told not to say it). The prompts
            name what the catalogue holds by the graph's noun (``film`` for MovieLens).
    """

    def __init__(self, graph: AttributeGraph, target: int, rng: np.random.Generator, *, client: LLMClient,
                 title: str) -> None:
        super().__init__(graph, target, rng)
        self.client, self.title = client, title
        self.transcript: list[dict[str, str]] = []
        self.understood: list[bool] = []

    def answer(self, values: tuple[int, ...]) -> list[bool]:
        g = self.graph
        noun = g.noun  # what the catalogue holds, from the data: "film" for MovieLens, else its own word or "item"
        article = "an" if noun[:1].lower() in "aeiou" else "a"
        offered = [g.label(v) for v in values]
        question = self.client.chat(
            [{"role": "system", "content": f"You are {article} {noun} recommender "
                                           "talking with a person. Ask short, friendly questions."},
             {"role": "user", "content": f"Ask the person, in one sentence, whether they want {article} {noun} with: "
                                         + "; ".join(offered) + "."}], max_tokens=40).strip()
        wanted = ", ".join(g.label(v) for v in sorted(self.values))
        reply = self.client.chat(
            [{"role": "system", "content": f"You are a person looking for {article} {noun}. You want {self.title}, "
                                           f"whose attributes are: {wanted}. Answer the recommender truthfully in one "
                                           "short sentence, saying which of the things it asks about you want. Never "
                                           f"name the {noun}."},
             {"role": "user", "content": question}], max_tokens=40).strip()
        keys = {_key(label) + f"_{j}": v for j, (label, v) in enumerate(zip(offered, values))}
        schema = {"type": "object", "properties": {k: {"type": "boolean"} for k in keys}, "required": list(keys),
                  "additionalProperties": False}
        read = self.client.chat_json(
            [{"role": "system", "content": "You read a person's reply to a recommender's question."},
             {"role": "user", "content": f"The recommender asked about: {'; '.join(offered)}.\nThe person replied: "
                                         f"{reply}\n\nFor each thing asked about, did the person say they want it? "
                                         f"Answer with JSON of true/false for the keys {', '.join(keys)}."}],
            schema, max_tokens=60)
        answers = [bool(read[k]) for k in keys]
        truth = super().answer(values)
        self.understood += [a == t for a, t in zip(answers, truth)]
        self.transcript.append({"asked": "; ".join(offered), "question": question, "reply": reply,
                                "read": ", ".join(f"{o}: {'yes' if a else 'no'}" for o, a in zip(offered, answers))})
        return answers
