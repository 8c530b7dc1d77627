"""The vocabulary of a conversation: what a system can do in a turn (:class:`Action`), how an
answer changes the state (:func:`apply_answer`), what an episode produced (:class:`EpisodeResult`),
and the protocol's sizes. Policies, sessions and the simulator all speak it; it lives here, in
``converse``, and the simulator imports it."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class EpisodeResult:
    """What happened in one episode. ``turn``: the success turn (1-based) or None; ``rank``: the
    target's 1-based position in the accepted list; ``asked``: (value, accepted) per value asked."""

    user: int
    target: int
    turn: int | None
    rank: int | None
    asked: list[tuple[int, bool]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    #: the simulated user the episode was played against (its transcript, for text conversations)
    user_model: object = field(default=None, repr=False)


def apply_answer(state: ConversationState, graph: AttributeGraph, values: tuple[int, ...], answers: list[bool]) -> None:
    """Update the state with the user's answers about ``values``."""
    for v, yes in zip(values, answers):
        if yes:
            state.accept(graph, v)
        else:
            state.reject(v)


