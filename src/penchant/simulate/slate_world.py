"""A slate bandit world with known ground truth, as a gymnasium environment.

Each step one user arrives (uniformly at random, seeded); the policy shows ``slate_size`` items;
the user clicks. Users' tastes are a utility matrix ``utility`` (users × items, logits), made from a
fitted model's scores (:meth:`SlateWorld.from_model`, so the world is not arbitrary) or from random
latent vectors (:meth:`SlateWorld.synthetic`). Slot ``l`` (0 = top) has examination probability
``κ_l = (l + 1) ** -position_decay``. Two click models:

* ``independent`` (the position-based model): slot l is clicked with probability κ_l · σ(utility),
  independently of the other slots; the reward is the number of clicks. An item shown twice is two
  chances (only policies that fill slots independently show repeats).
* ``logit`` (conditional logit with a no-click option): the user clicks at most one item; slot l
  is chosen with probability exp(utility + log κ_l) / (exp(no_click) + Σ_j exp(utility_j + log κ_j)).

Ground truth: :meth:`click_probabilities` of any slate, :meth:`best_value` (the best list of distinct
items: the highest utilities in the most examined slots, optimal under both models), and
:meth:`policy_value`, the exact value of a policy that fills slots independently.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import expit

from penchant.models.protocols import Ranker
from penchant.models.ranking import top_k
from penchant.simulate.choice import draw_choice, logit_probabilities

CHOICE_MODELS = ("independent", "logit")


class SlateWorld(gym.Env):
    """Users arrive, see a slate, click (see the module).

    Args:
        utility: float (n_users, n_items) logits of each user's taste for each item.
        slate_size: items per list.
        choice: ``independent`` or ``logit``.
        position_decay: η in κ_l = (l + 1)^-η.
        no_click: the no-click option's utility (logit model).
        item_features: (n_items, d) what a policy may know about items (None: nothing).
        seed: seeds arrivals and clicks (``reset(seed=...)`` reseeds).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, utility: np.ndarray, slate_size: int = 3, *, choice: str = "independent",
                 position_decay: float = 1.0, no_click: float = 0.0, item_features: np.ndarray | None = None,
                 seed: int | None = None) -> None:
        if choice not in CHOICE_MODELS:
            raise ValueError(f"choice must be one of {', '.join(CHOICE_MODELS)}, got {choice!r}")
        self.utility = np.asarray(utility, dtype=np.float64)
        n_users, n_items = self.utility.shape
        if not 1 <= slate_size <= n_items:
            raise ValueError(f"slate_size must be in [1, {n_items}], got {slate_size}")
        self.slate_size, self.choice, self.no_click = int(slate_size), choice, float(no_click)
        self.examination = (np.arange(slate_size) + 1.0) ** -float(position_decay)
        self.item_features = item_features
        self.observation_space = gym.spaces.Discrete(n_users)
        self.action_space = gym.spaces.MultiDiscrete(np.full(slate_size, n_items))
        self._rng = np.random.default_rng(seed)
        self._user = 0

    @property
    def n_users(self) -> int:
        return self.utility.shape[0]

    @property
    def n_items(self) -> int:
        return self.utility.shape[1]

    @classmethod
    def synthetic(cls, n_users: int = 100, n_items: int = 50, dim: int = 8, *, scale: float = 1.5,
                  offset: float = -2.0, seed: int = 0, **kwargs: Any) -> SlateWorld:
        """Users and items with standard normal latent vectors; utility = offset + scale · u·v / √dim.
        The item vectors are the policies' ``item_features``."""
        rng = np.random.default_rng(seed)
        users, items = rng.normal(size=(n_users, dim)), rng.normal(size=(n_items, dim))
        utility = offset + scale * users @ items.T / np.sqrt(dim)
        return cls(utility, item_features=items, seed=seed, **kwargs)

    @classmethod
    def from_model(cls, model: Ranker, users: np.ndarray | None = None, *, scale: float = 1.5, offset: float = -2.0,
                   item_features: np.ndarray | None = None, seed: int = 0, **kwargs: Any) -> SlateWorld:
        """Tastes from a fitted model's scores: each user's scores standardised, then
        utility = offset + scale · z. ``users``: the model's user indices (default all)."""
        users = np.arange(model.n_users_) if users is None else np.asarray(users)  # type: ignore[attr-defined]
        scores = np.asarray(model.score(users), dtype=np.float64)
        z = (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-12)
        return cls(offset + scale * z, item_features=item_features, seed=seed, **kwargs)

    # -- ground truth --------------------------------------------------------------------------
    def click_probabilities(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """float64 (n, k): each slot's click probability for ``slates`` (n, k) shown to ``users`` (n,)."""
        slates = np.asarray(slates)
        u = self.utility[np.asarray(users)[:, None], slates]
        kappa = self.examination[: slates.shape[1]]
        if self.choice == "independent":
            return kappa * expit(u)
        return logit_probabilities(u + np.log(kappa), self.no_click)

    def best_slates(self, users: np.ndarray) -> np.ndarray:
        """int64 (n, k): the best list of distinct items for each user (highest utility on top)."""
        return top_k(self.utility[np.asarray(users)], self.slate_size)[0].astype(np.int64)

    def best_value(self, users: np.ndarray) -> np.ndarray:
        """float64 (n,): the expected reward of the best list for each user."""
        return self.click_probabilities(users, self.best_slates(users)).sum(axis=1)

    def policy_value(self, slot_probabilities: np.ndarray) -> float:
        """The exact expected reward per round of a policy that fills slots independently, given its
        probabilities (n_users, k, n_items) for every user (users arrive uniformly). Independent
        click model only: under the logit model a slot's click depends on the whole list."""
        if self.choice != "independent":
            raise ValueError("policy_value is exact for the independent click model only")
        attraction = expit(self.utility)  # (U, N)
        per_slot = np.einsum("ukn,un->uk", slot_probabilities, attraction)
        return float((per_slot * self.examination[: slot_probabilities.shape[1]]).sum(axis=1).mean())

    # -- interaction ---------------------------------------------------------------------------
    def arrivals(self, n: int) -> np.ndarray:
        """int64 (n,): the next n arriving users."""
        return self._rng.integers(0, self.n_users, size=n)

    def respond(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """float64 (n, k) clicks (0/1) of ``users`` shown ``slates``; many rounds at once."""
        p = self.click_probabilities(users, slates)
        if self.choice == "independent":
            return (self._rng.random(p.shape) < p).astype(np.float64)
        clicked, chosen = draw_choice(p, self._rng)
        out = np.zeros_like(p)
        out[np.flatnonzero(clicked), chosen[clicked]] = 1.0
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._user = int(self.arrivals(1)[0])
        return self._user, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict]:
        slate = np.asarray(action, dtype=np.int64).reshape(1, -1)
        if slate.shape[1] != self.slate_size or slate.min() < 0 or slate.max() >= self.n_items:
            raise ValueError(f"an action is {self.slate_size} item indices in [0, {self.n_items})")
        users = np.array([self._user])
        clicks = self.respond(users, slate)[0]
        info = {"user": self._user, "clicks": clicks,
                "expected": float(self.click_probabilities(users, slate).sum()),
                "best": float(self.best_value(users)[0])}
        self._user = int(self.arrivals(1)[0])
        return self._user, float(clicks.sum()), False, False, info
