"""A live conversation, for a terminal or an HTTP service: the system moves (``ask``), the person
answers (``answer``), ``recommend`` gives the best list at any time, and the whole state is plain
JSON (``to_dict`` / ``from_dict``) so a service can keep it between requests.

The same rules as the simulator: accepted values filter the candidates, rejected values lower
scores, a rejected list leaves the candidate set, every question or list is one turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.converse.state import ConversationState, Scorer
from penchant.converse.vocabulary import LIST_SIZE, MAX_TURNS, apply_answer
from penchant.data.attribute_graph import AttributeGraph


@dataclass(frozen=True)
class Move:
    """What the system says next: a ``question`` about ``values`` (``text`` in words) or a
    ``recommendation`` of ``items`` (with ``titles``)."""

    kind: str
    values: tuple[int, ...] = ()
    items: tuple[int, ...] = ()
    text: str = ""
    titles: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "values": list(self.values), "items": list(self.items), "text": self.text,
                "titles": list(self.titles)}


class Conversation:
    """One conversation with one person.

    Args:
        graph, scorer, policy: the attribute graph, the scorer (the person's learned preference)
            and the policy choosing each move.
        user: the person's user index in the scorer (−1 or any index the scorer accepts).
        exclude: items never to show (what the person already has).
        titles: (n_items,) display names of the items.
    """

    def __init__(self, graph: AttributeGraph, scorer: Scorer, policy, user: int, *, exclude: np.ndarray | None = None,
                 titles: np.ndarray | None = None, max_turns: int = MAX_TURNS, list_size: int = LIST_SIZE,
                 state: ConversationState | None = None) -> None:
        self.graph, self.scorer, self.policy = graph, scorer, policy
        self.titles = titles if titles is not None else np.array([f"item {i}" for i in range(graph.n_items)], dtype=object)
        self.max_turns, self.list_size = max_turns, list_size
        self.state = state or ConversationState.start(user, graph.n_items, exclude)
        self.pending: Move | None = None
        self.found: int | None = None

    @property
    def done(self) -> bool:
        return self.found is not None or self.state.turn >= self.max_turns or not self.state.candidates.any()

    def open(self, value: int) -> None:
        """The person's opening: a value they want (turn 0, not counted)."""
        self.state.accept(self.graph, value)

    def ask(self) -> Move | None:
        """The next move (a question or a list), or None when the conversation is over."""
        if self.done:
            return None
        if self.pending is not None:
            return self.pending
        self.state.turn += 1
        action = self.policy.act(self.state, self.scorer)
        if action.kind == "ask":
            text = (self.graph.question(action.values[0]) if len(action.values) == 1 else
                    self.graph.choices(action.values))
            move = Move("question", action.values, text=text)
        else:
            items = tuple(int(i) for i in action.items[: self.list_size])
            move = Move("recommendation", items=items, titles=tuple(str(self.titles[i]) for i in items))
        self.pending = move
        return move

    def answer(self, reply) -> None:
        """Answer the pending move. A question: True/False (one value) or the accepted values (a
        list, multi-choice). A recommendation: the accepted item, or None/False for "none of these"."""
        move = self.pending
        if move is None:
            raise ValueError("nothing was asked")
        if move.kind == "question":
            if isinstance(reply, (bool, np.bool_)):
                answers = [bool(reply)] * len(move.values) if len(move.values) == 1 else None
                if answers is None:
                    raise ValueError("a multi-choice question needs the list of accepted values")
            else:
                chosen = {int(v) for v in reply}
                if not chosen <= set(move.values):
                    raise ValueError(f"accepted values {sorted(chosen - set(move.values))} were not offered")
                answers = [v in chosen for v in move.values]
            apply_answer(self.state, self.graph, move.values, answers)
        else:
            if reply is None or reply is False:
                self.state.reject_items(np.array(move.items, dtype=np.int64))
            elif int(reply) in move.items:
                self.found = int(reply)
            else:
                raise ValueError(f"item {reply} was not in the list")
        self.pending = None

    def recommend(self, k: int | None = None) -> list[int]:
        """The current best ``k`` candidates (no turn is spent)."""
        return [int(i) for i in self.scorer.top(self.state, k or self.list_size)]

    def to_dict(self) -> dict:
        return {"state": self.state.to_dict(), "pending": None if self.pending is None else self.pending.to_dict(),
                "found": self.found, "max_turns": self.max_turns, "list_size": self.list_size}

    @classmethod
    def from_dict(cls, d: dict, graph: AttributeGraph, scorer: Scorer, policy, titles: np.ndarray | None = None) -> Conversation:
        conv = cls(graph, scorer, policy, d["state"]["user"], titles=titles, max_turns=d["max_turns"],
                   list_size=d["list_size"], state=ConversationState.from_dict(d["state"]))
        p = d["pending"]
        conv.pending = None if p is None else Move(p["kind"], tuple(p["values"]), tuple(p["items"]), p["text"],
                                                   tuple(p["titles"]))
        conv.found = d["found"]
        return conv
