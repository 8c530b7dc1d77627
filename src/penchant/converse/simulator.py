"""The standard user simulator of multi-round conversational recommendation (the protocol of EAR,
SCPR and UNICORN), and the loop that runs a policy against it.

One episode = one held-out (user, target item). The rules, exactly:

* **Opening** (turn 0, not counted): the user names one attribute value of the target, drawn at
  random (seeded) among the target's values; it is accepted.
* **Turns 1 … ``max_turns``** (15 by default): each turn the system does one thing: asks about one
  value, asks about one attribute type offering several of its values (the multi-choice variant),
  or shows a list of ``list_size`` (10) items. Every question and every list costs exactly one turn
  (the reference code's loop gives 14 actions for a budget of 15; here the budget is the number of
  system actions).
* **Answers**: a value is accepted if and only if the target has it; offered several values, the
  user accepts all the target has and rejects the rest; shown a list, the user accepts if the
  target is in it (success, at that turn and rank) and otherwise rejects every item of the list,
  which then leaves the candidate set.
* **Failure**: no success within ``max_turns`` turns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.converse.state import ConversationState
from penchant.converse.vocabulary import LIST_SIZE, MAX_TURNS, apply_answer
from penchant.data.attribute_graph import AttributeGraph
from penchant.data.dataset import Dataset
from penchant.eval.conversation import EpisodeResult


class SimulatedUser:
    """Answers as a user who wants ``target`` and knows its attributes."""

    #: what was said, turn by turn, and whether each answer was read right (users who talk in words)
    transcript: list[dict[str, str]] | None = None
    understood: list[bool] | None = None

    def __init__(self, graph: AttributeGraph, target: int, rng: np.random.Generator) -> None:
        self.graph, self.target, self.rng = graph, int(target), rng
        self.values = set(graph.item_values(target).tolist())

    def opening(self) -> int:
        if not self.values:
            raise ValueError(f"item {self.target} has no attribute value to open with")
        return int(self.rng.choice(sorted(self.values)))

    def answer(self, values: tuple[int, ...]) -> list[bool]:
        """Accept each offered value the target has."""
        return [v in self.values for v in values]

    def judge(self, items: tuple[int, ...]) -> int | None:
        """0-based rank of the target in the list, or None (rejected)."""
        return items.index(self.target) if self.target in items else None


def run_episode(policy, scorer, graph: AttributeGraph, user: int, target: int, *, exclude: np.ndarray | None,
                rng: np.random.Generator, max_turns: int = MAX_TURNS, list_size: int = LIST_SIZE,
                record=None, simulated_user=None) -> EpisodeResult:
    """Play one episode of ``policy`` (``act(state, scorer) -> Action``) against the simulated user.

    ``exclude``: items never to show (the user's training, and for test episodes validation,
    items). ``record(state, action, reward_info)``, if given, sees every step (policy training).
    ``simulated_user(graph, target, rng)`` makes the user (default :class:`SimulatedUser`; the
    text user of :mod:`penchant.llm.conversation` answers in words). An oracle (a policy whose
    ``oracle`` attribute is true, an upper bound such as :mod:`penchant.converse.oracle`) is told
    the target by ``policy.reveal(target, graph)`` before the opening; no other policy ever sees it."""
    if getattr(policy, "oracle", False):
        policy.reveal(int(target), graph)
    sim = (simulated_user or SimulatedUser)(graph, target, rng)
    state = ConversationState.start(user, graph.n_items, exclude)
    state.accept(graph, sim.opening())
    result = EpisodeResult(user, target, None, None)
    result.user_model = sim
    for turn in range(1, max_turns + 1):
        state.turn = turn
        action = policy.act(state, scorer)
        if action.kind == "ask":
            answers = sim.answer(action.values)
            apply_answer(state, graph, action.values, answers)
            result.asked += list(zip(action.values, answers))
            result.actions.append("ask")
            outcome = "ask_yes" if any(answers) else "ask_no"
        elif action.kind == "recommend":
            shown = tuple(int(i) for i in action.items[:list_size])
            rank = sim.judge(shown)
            result.actions.append("recommend")
            if rank is not None:
                result.turn, result.rank = turn, rank + 1
                outcome = "rec_hit"
            else:
                state.reject_items(np.array(shown, dtype=np.int64))
                outcome = "rec_miss"
        else:
            raise ValueError(f"unknown action {action.kind!r}")
        if record is not None:
            record(outcome, turn == max_turns)
        if result.turn is not None:
            break
    return result


def episodes_from(part: Dataset, n: int, seed: int, graph: AttributeGraph) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of ``n`` (user, target) pairs from the interactions of ``part`` (each
    interaction at most once), among targets with at least one attribute value; int64 (n,) each.
    Fewer when the part has fewer."""
    users, items = part.users.astype(np.int64), part.items.astype(np.int64)
    ok = graph.items.getnnz(1)[items] > 0
    pick = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(pick)[:n]
    return users[pick], items[pick]


def seen_items(*parts: Dataset) -> sp.csr_matrix:
    """Users × items the user already has in any of ``parts`` (never recommended)."""
    m = parts[0].csr.copy()
    for p in parts[1:]:
        m = m + p.csr
    return (m > 0).tocsr()
