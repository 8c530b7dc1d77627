"""The vocabulary of a conversation: what a system can do in a turn (:class:`Action`), how an
answer changes the state (:func:`apply_answer`), and the protocol's sizes. Policies, sessions and
the simulated user all speak it. What an episode produced (:class:`EpisodeResult`) is the record
the metrics read, so it is defined with them in :mod:`penchant.eval.conversation`."""

from __future__ import annotations

from dataclasses import dataclass

from penchant.converse.state import ConversationState
from penchant.data.attribute_graph import AttributeGraph
from penchant.eval.conversation import MAX_TURNS  # noqa: F401  (the turn budget, part of the vocabulary)

LIST_SIZE = 10


@dataclass(frozen=True)
class Action:
    """``kind`` is ``ask`` (``values``: one value, or several of one type in the multi-choice
    variant) or ``recommend`` (``items``, best first)."""

    kind: str
    values: tuple[int, ...] = ()
    items: tuple[int, ...] = ()


def apply_answer(state: ConversationState, graph: AttributeGraph, values: tuple[int, ...], answers: list[bool]) -> None:
    """Update the state with the user's answers about ``values``."""
    for v, yes in zip(values, answers):
        if yes:
            state.accept(graph, v)
        else:
            state.reject(v)


