"""What a model can do, as runtime-checkable protocols: callers ask ``isinstance``, never ``hasattr``.

Families (what a model is):

* :class:`Ranker` ranks a catalogue for users (every ``ranking``, ``rating`` and ``sequential`` model).
* :class:`RatingPredictor` predicts explicit ratings.
* :class:`SessionScorer` scores from the order of recent items, for known users or anonymous sessions.
* :class:`PairwiseModel` gives P(a ≻ b) for a user and two options.
* :class:`ConversationPolicy` decides what to ask next in a conversation.
* :class:`SlatePolicy` chooses a list for each arriving user and says how likely each shown item was
  (the propensities that off-policy evaluation needs); :class:`LearningPolicy` also learns from the
  rewards it earns, and :class:`StochasticPolicy` gives its whole per-slot distribution.

Capabilities (what some models of a family also do):

* :class:`Incremental` — ``partial_fit(events)``: the events (a :class:`~penchant.data.Dataset` with
  external ids) are *added* to what the model knows about those users, new users included, without
  a refit. Every model that has it gives it this one meaning.
* :class:`FoldIn` — ``score_history(items)``: scores for a user known only by their items, the
  model unchanged (an unseen user answered by fold-in).
* :class:`ItemVectors` — one vector per item (latent factors), for similar items and nearest-neighbour indexes.
* :class:`DotProduct` — scores that are inner products of a user query and an item key, so an
  approximate inner-product index (:mod:`penchant.models.ann`) finds a user's best items.
* :class:`TextScorer` — P(first ≻ second) for options given as text it has never seen, through its
  fitted text pipeline (every preference model has it; one fitted on option ids says so when asked).
* :class:`Persistent` — one self-describing artefact (:mod:`penchant.models.artefact`).

"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np


@runtime_checkable
class Persistent(Protocol):
    def save(self, path: str | Path) -> Path: ...


@runtime_checkable
class Ranker(Protocol):
    """Scores and top-K over a fixed item vocabulary (``item_ids_``), users by index (``user_ids_``).

    What the answer core (:mod:`penchant.experiment.answers`) needs besides scores: ``seen_items()``,
    CSR (n_users, n_items) of what each user already has (never recommended to them), and
    ``item_popularity()``, float64 (n_items,) training users per item (the fallback's order).
    """

    user_ids_: np.ndarray
    item_ids_: np.ndarray

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray: ...

    def recommend(self, users: np.ndarray, k: int = 10, exclude: Any = "train") -> tuple[np.ndarray, np.ndarray]: ...

    def seen_items(self) -> Any: ...

    def item_popularity(self) -> np.ndarray: ...


@runtime_checkable
class RatingPredictor(Protocol):
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class SessionScorer(Protocol):
    def score_sessions(self, sessions: list[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class PairwiseModel(Protocol):
    def prob(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...

    def margin(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ConversationPolicy(Protocol):
    def act(self, state: Any, scorer: Any) -> Any: ...


@runtime_checkable
class Incremental(Protocol):
    def partial_fit(self, events: Any) -> Self: ...


@runtime_checkable
class FoldIn(Protocol):
    """Scores for a user the model was not fitted on, from that user's items, leaving the model as it
    was (safe under concurrent requests)."""

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class ItemVectors(Protocol):
    def item_vectors(self) -> np.ndarray: ...


@runtime_checkable
class DotProduct(Protocol):
    """``score(u)[i] == query_vectors([u])[0] @ key_vectors()[i]`` (float32 (n, d) and (n_items, d))."""

    def query_vectors(self, users: np.ndarray) -> np.ndarray: ...

    def key_vectors(self) -> np.ndarray: ...


@runtime_checkable
class TextScorer(Protocol):
    def prob_text(self, first: Any, second: Any, contexts: Any = None, users: Any = None) -> np.ndarray: ...


@runtime_checkable
class SlatePolicy(Protocol):
    """``act(users (n,), k, rng) -> (slates int64 (n, k), propensity float64 (n, k))``: the items shown
    to each user, best slot first, and the probability that each was shown at its slot."""

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class LearningPolicy(Protocol):
    """``update(users (n,), slates (n, k), rewards (n, k))``: learn from what the shown lists earned."""

    def update(self, users: np.ndarray, slates: np.ndarray, rewards: np.ndarray) -> None: ...


@runtime_checkable
class StochasticPolicy(Protocol):
    """``slot_probabilities(users (n,), k) -> float64 (n, k, n_items)``: the chance of each item at each slot."""

    def slot_probabilities(self, users: np.ndarray, k: int) -> np.ndarray: ...
