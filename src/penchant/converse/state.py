"""What a conversation knows so far, and the scorer that turns it into item scores.

The state every policy shares: the accepted and rejected attribute values, the rejected items, the
candidate set (items that have every accepted value and were neither rejected nor excluded), the
turn, and the user's history (the items the platform knows the user already has: what was excluded
at the start; empty for a user it has never seen). Accepting a value filters the candidates (the target has it); rejecting one only lowers
the scores of items that have it (the user may not know or care; the protocol does not let it
filter); a rejected recommendation removes its items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from penchant.data.attribute_graph import AttributeGraph


@dataclass
class ConversationState:
    """Mutable state of one conversation; ``candidates`` is bool (n_items,); ``history`` is int64
    (h,) the sorted item indices the platform knows the user has (a policy with its own user model
    builds the user from these, never from the user index; (0,) for a cold user)."""

    user: int
    candidates: np.ndarray
    accepted: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    rejected_items: list[int] = field(default_factory=list)
    turn: int = 0
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def start(cls, user: int, n_items: int, exclude: np.ndarray | None = None) -> ConversationState:
        """A fresh state; ``exclude`` (item indices: what the user already has) is never shown and
        is the state's ``history``."""
        cand = np.ones(n_items, dtype=bool)
        history = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
        cand[history] = False
        return cls(user, cand, history=history)

    @property
    def asked(self) -> set[int]:
        return set(self.accepted) | set(self.rejected)

    def accept(self, graph: AttributeGraph, value: int) -> None:
        self.accepted.append(int(value))
        col = graph.items[:, int(value)].toarray().ravel()
        self.candidates &= col

    def reject(self, value: int) -> None:
        self.rejected.append(int(value))

    def reject_items(self, items: np.ndarray) -> None:
        items = np.asarray(items, dtype=np.int64)
        self.rejected_items += [int(i) for i in items]
        self.candidates[items] = False

    def to_dict(self) -> dict:
        """JSON-ready (candidates as the indices still in play)."""
        return {"user": self.user, "n_items": len(self.candidates), "candidates": np.flatnonzero(self.candidates).tolist(),
                "accepted": self.accepted, "rejected": self.rejected, "rejected_items": self.rejected_items,
                "turn": self.turn, "history": self.history.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ConversationState:
        """The state :meth:`to_dict` wrote; a dict from before ``history`` existed gives an empty one."""
        cand = np.zeros(d["n_items"], dtype=bool)
        cand[np.asarray(d["candidates"], dtype=np.int64)] = True
        return cls(d["user"], cand, list(d["accepted"]), list(d["rejected"]), list(d["rejected_items"]), d["turn"],
                   np.asarray(d.get("history", []), dtype=np.int64))


class Scorer:
    """Item scores for a conversation: the user's learned preference plus the conversation so far.

    ``score = z(base_u) − reject_weight · #(rejected values the item has)``, where z() standardises
    the fitted model's scores of the user over the catalogue, and non-candidates get −inf. (Policies
    with a user model of their own, such as EAR's FM and its reflection, rank with it instead.)

    Args:
        graph: the attribute graph.
        base: float32 (n_users, n_items) the fitted model's scores (or a callable user → (n_items,)).
    """

    def __init__(self, graph: AttributeGraph, base, *, reject_weight: float = 1.0) -> None:
        self.graph, self.base, self.reject_weight = graph, base, reject_weight

    def user_scores(self, user: int) -> np.ndarray:
        s = np.asarray(self.base(user) if callable(self.base) else self.base[user], dtype=np.float64)
        return (s - s.mean()) / (s.std() + 1e-9)

    def scores(self, state: ConversationState) -> np.ndarray:
        """float64 (n_items,): higher is better; −inf outside the candidate set."""
        s = self.user_scores(state.user)
        if state.rejected and self.reject_weight:
            s = s - self.reject_weight * np.asarray(self.graph.items[:, state.rejected].sum(1)).ravel()
        return np.where(state.candidates, s, -np.inf)

    def top(self, state: ConversationState, k: int = 10) -> np.ndarray:
        """The k best candidates, best first (fewer if fewer remain)."""
        s = self.scores(state)
        n = min(k, int(state.candidates.sum()))
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        idx = np.argpartition(-s, n - 1)[:n]
        return idx[np.argsort(-s[idx], kind="stable")].astype(np.int64)
