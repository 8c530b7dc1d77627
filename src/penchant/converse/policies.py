"""Elicitation policies: what to ask, and when to stop asking and recommend.

All share :class:`~penchant.converse.state.ConversationState` and a
:class:`~penchant.converse.state.Scorer`; ``act(state, scorer)`` returns one
:class:`~penchant.converse.simulator.Action`.

* ``maxent``: ask the value that splits the candidates most evenly (maximum binary entropy of
  the share of candidates that have it); recommend the scorer's top 10 once at most 10 candidates
  remain or no value splits them. Untrained.
* ``greedy``: always recommend the scorer's top 10 (absolute greedy).
* ``ear`` (EAR: estimation with an attribute-aware FM, a policy network over which value to ask or
  whether to recommend, reflection on rejected lists) lives in :mod:`penchant.converse.ear`, ``cpr``
  (SCPR: weighted-entropy path reasoning over the values adjacent to the candidates, a DQN deciding
  when to recommend) in :mod:`penchant.converse.cpr`; both share :mod:`penchant.converse.fm`.
* ``tree`` (FacT-CRS) and ``popularity-tree`` (max-entropy asking under a popularity prior) live in
  :mod:`penchant.converse.tree`.

``multi_choice`` > 0 (the multi-choice variant) makes an asking policy offer that many values of
the chosen value's type at once.
"""

from __future__ import annotations

import numpy as np

from penchant.converse.state import ConversationState, Scorer
from penchant.converse.vocabulary import LIST_SIZE, Action
from penchant.data.attribute_graph import AttributeGraph
from penchant.models.registry import create, model_names, register


def policy_names() -> list[str]:
    """The conversation policies of the one registry."""
    return model_names("conversation")


def create_policy(name: str, graph: AttributeGraph, **params) -> Policy:
    """A policy over ``graph`` by registry name; an unknown name or parameter is a ConfigError."""
    return create(name, graph, family="conversation", **params)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in bits, elementwise; 0 at p ∈ {0, 1}."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h)


class Policy:
    """Base: subclasses set ``name`` and implement ``act``; learned ones also ``fit``."""

    name = ""
    family = "conversation"
    learned = False
    #: acts sensibly with no training of its own (the service runs these; EAR and CPR must first
    #: learn when to recommend on the simulator)
    ready_untrained = True
    #: per-epoch selection scores of a learned policy's training, else None
    history_: list[float] | None = None

    def __init__(self, graph: AttributeGraph, *, multi_choice: int = 0, list_size: int = LIST_SIZE) -> None:
        self.graph, self.multi_choice, self.list_size = graph, multi_choice, list_size
        self._by_value = graph.items.T.tocsr().astype(np.float64)  # (V, n_items)

    def use_popularity(self, popularity: np.ndarray) -> None:
        """Told how often each item was chosen, float (n_items,), where no training episodes are
        at hand (the service); policies that do not use it ignore it."""

    def shares(self, weights: np.ndarray) -> np.ndarray:
        """Weighted share of each value among the weighted items: float64 (V,)."""
        total = weights.sum()
        return self._by_value @ weights / total if total > 0 else np.zeros(self.graph.n_values)

    def ask(self, state: ConversationState, ranking: np.ndarray) -> Action:
        """Ask the best unasked value by ``ranking`` (float (V,), −inf = never), or, in the
        multi-choice variant, the best ``multi_choice`` values of that value's type."""
        ranking = ranking.copy()
        if state.asked:
            ranking[list(state.asked)] = -np.inf
        best = int(np.argmax(ranking))
        if not self.multi_choice:
            return Action("ask", (best,))
        same = np.flatnonzero((self.graph.types == self.graph.types[best]) & np.isfinite(ranking))
        top = same[np.argsort(-ranking[same], kind="stable")][: self.multi_choice]
        return Action("ask", tuple(int(v) for v in top))

    def recommend(self, state: ConversationState, scorer: Scorer) -> Action:
        return Action("recommend", items=tuple(int(i) for i in scorer.top(state, self.list_size)))

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        raise NotImplementedError

    def fit(self, trainer) -> Policy:
        """Learn from validation episodes (see :class:`penchant.converse.training.PolicyTrainer`)."""
        return self

    def params(self) -> dict:
        return {"multi_choice": self.multi_choice}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """What training learned, as named arrays (an artefact keeps them); {} when nothing was."""
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` returned, over the same graph."""
        if arrays:
            raise ValueError(f"{self.name} learns nothing, yet was given {sorted(arrays)}")


@register
class MaxEntropy(Policy):
    name = "maxent"

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        n = int(state.candidates.sum())
        if n <= self.list_size:
            return self.recommend(state, scorer)
        h = binary_entropy(self.shares(state.candidates.astype(np.float64)))
        h[list(state.asked)] = 0.0
        if h.max() <= 0:
            return self.recommend(state, scorer)
        return self.ask(state, np.where(h > 0, h, -np.inf))


@register
class Greedy(Policy):
    name = "greedy"

    def act(self, state: ConversationState, scorer: Scorer) -> Action:
        return self.recommend(state, scorer)


def ready_policies() -> tuple[str, ...]:
    """The registered conversation policies that need no training of their own (what the service
    runs), in the registry's order; never an oracle (it needs the target, which a person keeps)."""
    from penchant.models.registry import entry, model_names

    return tuple(n for n in model_names("conversation")
                 if (c := entry(n, "conversation").cls).ready_untrained and not getattr(c, "oracle", False))
