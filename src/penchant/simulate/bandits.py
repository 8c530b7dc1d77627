"""Slate policies for worlds with users arriving one list at a time (see :mod:`penchant.models.protocols`).

Every policy answers ``act(users, k, rng) -> (slates, propensity)``; the propensity of a shown item
is its probability at its slot, exact where the policy has a closed form (greedy, ε-greedy,
softmax, LinUCB) and a Monte-Carlo estimate from ``propensity_draws`` posterior draws for the
Thompson samplers (the probability that the item wins its slot).

* :class:`Greedy` — the top-k of any fitted recommender's scores (:meth:`Greedy.from_model`).
* :class:`EpsilonGreedy` — each slot independently: the greedy item with probability 1 − ε, else
  a uniformly random item of the catalogue.
* :class:`Softmax` — each slot independently from softmax(scores / temperature).
* :class:`BetaThompson` — Beta–Bernoulli Thompson sampling per (user, item) (Chapelle & Li 2011):
  sample θ ~ Beta(1 + clicks, 1 + shown − clicks), show the top-k of the sample.
* :class:`LinearThompson` / :class:`LinUCB` — per-user ridge regression of the reward on item
  vectors (Agrawal & Goyal 2013; Li et al. 2010): A_u = λI + Σ x xᵀ, b_u = Σ r x, θ̂_u = A_u⁻¹ b_u;
  Thompson samples θ ~ N(θ̂_u, v² A_u⁻¹), UCB scores x·θ̂_u + α √(xᵀ A_u⁻¹ x).
"""

from __future__ import annotations

import numpy as np

from penchant.models.protocols import Ranker
from penchant.models.ranking import top_k as rank


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """int64 (n, k): the k highest-scoring columns of each row, best first (ties by item index)."""
    return rank(scores, k)[0].astype(np.int64)


class Greedy:
    """Always the top-k of ``scores`` (n_users, n_items); propensity 1."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)

    @classmethod
    def from_model(cls, model: Ranker, users: np.ndarray | None = None) -> Greedy:
        """The greedy use of a fitted recommender: its scores for ``users`` (model indices; default all)."""
        users = np.arange(model.n_users_) if users is None else np.asarray(users)  # type: ignore[attr-defined]
        return cls(model.score(users))

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self.scores[users], k), np.ones((len(users), k))

    def slot_probabilities(self, users: np.ndarray, k: int) -> np.ndarray:
        probs = np.zeros((len(users), k, self.scores.shape[1]))
        slates = top_k(self.scores[users], k)
        probs[np.arange(len(users))[:, None], np.arange(k)[None, :], slates] = 1.0
        return probs


class EpsilonGreedy(Greedy):
    """The greedy item in each slot with probability 1 − ε, else a uniform item (independently per slot)."""

    def __init__(self, scores: np.ndarray, epsilon: float = 0.1) -> None:
        super().__init__(scores)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        greedy = top_k(self.scores[users], k)
        n_items = self.scores.shape[1]
        explore = rng.random(greedy.shape) < self.epsilon
        slates = np.where(explore, rng.integers(0, n_items, size=greedy.shape), greedy)
        propensity = self.epsilon / n_items + (1.0 - self.epsilon) * (slates == greedy)
        return slates, propensity

    def slot_probabilities(self, users: np.ndarray, k: int) -> np.ndarray:
        return self.epsilon / self.scores.shape[1] + (1.0 - self.epsilon) * super().slot_probabilities(users, k)


class Softmax:
    """Each slot independently from softmax(scores[user] / temperature)."""

    def __init__(self, scores: np.ndarray, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        z = np.asarray(scores, dtype=np.float64) / temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.probs = e / e.sum(axis=1, keepdims=True)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cumulative = np.cumsum(self.probs[users], axis=1)
        draws = rng.random((len(users), k))
        slates = np.minimum((cumulative[:, None, :] < draws[:, :, None]).sum(axis=2), self.probs.shape[1] - 1)
        return slates, np.take_along_axis(self.probs[users], slates, axis=1)

    def slot_probabilities(self, users: np.ndarray, k: int) -> np.ndarray:
        return np.repeat(self.probs[users][:, None, :], k, axis=1)


class _Thompson:
    """What both Thompson samplers do with their posterior: show the top-k of one draw of every
    item's score per user (:meth:`_sample`, float (n_users, n_items)); the propensity of a shown item
    is the share of ``propensity_draws`` fresh draws in which it lands at its slot (NaN when 0)."""

    propensity_draws: int

    def _sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        slates = top_k(self._sample(users, rng), k)
        if not self.propensity_draws:
            return slates, np.full(slates.shape, np.nan)
        hits = np.zeros(slates.shape)  # Monte-Carlo probability (n, k) that each shown item wins its slot
        for _ in range(self.propensity_draws):
            hits += top_k(self._sample(users, rng), k) == slates
        return slates, np.maximum(hits / self.propensity_draws, 1.0 / self.propensity_draws)


class BetaThompson(_Thompson):
    """Beta–Bernoulli Thompson sampling per (user, item); see the module."""

    def __init__(self, n_users: int, n_items: int, propensity_draws: int = 0) -> None:
        self.shown = np.zeros((n_users, n_items))
        self.clicks = np.zeros((n_users, n_items))
        self.propensity_draws = int(propensity_draws)

    def _sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, s = self.clicks[users], self.shown[users]
        return rng.beta(1.0 + c, 1.0 + s - c)

    def update(self, users: np.ndarray, slates: np.ndarray, rewards: np.ndarray) -> None:
        rows = np.repeat(users, slates.shape[1])
        np.add.at(self.shown, (rows, slates.ravel()), 1.0)
        np.add.at(self.clicks, (rows, slates.ravel()), np.minimum(rewards.ravel(), 1.0))


class _LinearPosterior:
    """Per-user ridge posterior over item vectors (see the module)."""

    def __init__(self, item_vectors: np.ndarray, n_users: int, ridge: float = 1.0) -> None:
        self.x = np.asarray(item_vectors, dtype=np.float64)
        d = self.x.shape[1]
        self.A = np.repeat(ridge * np.eye(d)[None], n_users, axis=0)
        self.b = np.zeros((n_users, d))

    def mean_and_inverse(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inv = np.linalg.inv(self.A[users])
        return np.einsum("nde,ne->nd", inv, self.b[users]), inv

    def update(self, users: np.ndarray, slates: np.ndarray, rewards: np.ndarray) -> None:
        rows = np.repeat(users, slates.shape[1])
        x = self.x[slates.ravel()]
        np.add.at(self.A, rows, np.einsum("nd,ne->nde", x, x))
        np.add.at(self.b, rows, rewards.ravel()[:, None] * x)


class LinearThompson(_LinearPosterior, _Thompson):
    """Linear Thompson sampling over item vectors, per user; see the module."""

    def __init__(self, item_vectors: np.ndarray, n_users: int, *, ridge: float = 1.0, noise: float = 0.5,
                 propensity_draws: int = 0) -> None:
        super().__init__(item_vectors, n_users, ridge)
        self.noise, self.propensity_draws = float(noise), int(propensity_draws)

    def _sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean, inv = self.mean_and_inverse(users)
        chol = np.linalg.cholesky(inv)
        theta = mean + self.noise * np.einsum("nde,ne->nd", chol, rng.standard_normal(mean.shape))
        return theta @ self.x.T


class LinUCB(_LinearPosterior):
    """Per-user LinUCB over item vectors; deterministic, so propensity 1."""

    def __init__(self, item_vectors: np.ndarray, n_users: int, *, ridge: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__(item_vectors, n_users, ridge)
        self.alpha = float(alpha)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mean, inv = self.mean_and_inverse(users)
        width = np.sqrt(np.einsum("id,nde,ie->ni", self.x, inv, self.x))
        return top_k(mean @ self.x.T + self.alpha * width, k), np.ones((len(users), k))
