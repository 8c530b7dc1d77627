"""A world where recommendations change what users do next: boredom, novelty-seeking, sessions
that end and users who leave, several feedback signals, and creators who leave when unexposed.

One environment holds a population of ``n_users`` simulated users (gymnasium API: ``reset(seed=)``,
``step(slates)``; the action is one list per user, ignored for users not in a session). Tastes come
from real data: each simulated user is a real user of a fitted model (``affinity``: the model's
standardised scores, plus noise), items keep their real genres and their real mean rating as quality
(:meth:`LongTermWorld.from_dataset`). Per step, for each user in a session:

* **utility** of item j at slot l: affinity + β_q·quality_j − β_b·boredom(u, genres of j)
  + mode_u·β_n·novelty(u, j) + log κ_l, where novelty = 1 − the largest cosine similarity between j
  and the user's last ``history`` clicked items, and κ_l = (l + 1)^-η;
* **choice**: conditional logit over the list and a no-click option of utility ``no_click``, every
  logit (the no-click option's too) divided by the choice ``temperature`` (1: the documented world);
* **signals** of a click: ``click`` 1; ``watch`` = σ(1.5·quality + 0.5·affinity − boredom + noise)
  in (0, 1); ``like`` ~ Bernoulli(σ(2·quality + affinity − 2.5)); ``share`` ~ Bernoulli(σ(2·quality
  + affinity − 4));
* **boredom** per genre decays by ``boredom_decay`` and grows by 1 for each genre of a clicked item;
* **satisfaction** s ← 0.7 s + 0.3 e, with e the watch time of a click, ``miss_penalty`` otherwise;
* **novelty-seeking**, hierarchically ("Hierarchical RL for Modeling User Novelty-Seeking Intent"):
  a static propensity ν_u ~ Beta(2, 3) per user; at each session start the session's mode is
  novelty-seeking with probability ν_u (mode 1 weighs novelty by β_n, mode 0 not at all);
* **sessions and retention** ("Sequential Recommendation for Optimizing Both Immediate Feedback and
  Long-term Retention"): a session ends with probability 0.05 + 0.45·σ(−6(s − 0.35)); at its end the
  user leaves for good with probability ``leave_rate``·σ(−10(s − 0.1)) (``leave_rate`` 0.3), else is
  away and returns each step with probability 0.1 + 0.5·σ(6(s − 0.4)) (boredom × 0.3 on return);
* **creators** ("CreAgent"): each item has a creator; a creator's motivation follows its share of
  exposure relative to a fair share (m ← 0.9 m + 0.1·share·n_active); it publishes an unpublished
  item with probability 0.3·min(1, m) per step, and leaves (its items withdrawn) when m < 0.25 after
  the first 10 steps. 70% of each creator's items are published at the start.

**What a policy sees, and what it does not.** A policy is given the :class:`Catalogue` (what a
platform knows of its items: genres, creators, its own model's item similarities) and, each step, an
:class:`Observation` (what a platform logs: who is visiting, what can be shown, each user's consumed
items and recent clicks, the lists it served at the last step with what was clicked and the signals
each click emitted, creators' exposure). Item quality, tastes, boredom, satisfaction, the session's
mode and whether a user has left for good are hidden: they are reachable only through the oracle and
report API, :meth:`LongTermWorld.truth` and :meth:`LongTermWorld.utility`;
:class:`~penchant.simulate.long_term_policies.Oracle` acts on it, the reference for "fraction of the best".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.special import expit

from penchant.errors import DataError
from penchant.models.protocols import ItemVectors
from penchant.simulate.choice import draw_choice, logit_probabilities

SIGNALS = ("click", "watch", "like", "share")


@dataclass(frozen=True)
class WorldParams:
    """The world's constants (see the module); the defaults are the documented world."""

    slate_size: int = 5
    quality_weight: float = 0.6
    boredom_weight: float = 0.5
    novelty_weight: float = 2.0
    boredom_decay: float = 0.8
    position_decay: float = 0.5
    no_click: float = 0.5
    miss_penalty: float = -0.2
    affinity_noise: float = 0.3
    history: int = 5
    published_share: float = 0.7
    temperature: float = 1.0
    leave_rate: float = 0.3


@dataclass(frozen=True)
class Catalogue:
    """What a platform knows of its items, all a policy is built with (never the item quality).

    Attributes:
        genres: float (M, G) 0/1, each item's genres (the data's metadata).
        creators: int (M,), each item's creator.
        similarity: float32 (M + 1, M), cosines of the platform's own model's item vectors, with a
            last row of −inf standing for an empty history slot (see :func:`novelty`).
    """

    genres: np.ndarray
    creators: np.ndarray
    similarity: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.genres.shape[0])


@dataclass(frozen=True)
class Observation:
    """What a platform logs, the only thing a policy is given each step (n simulated users, M items,
    C creators, H recent clicks). ``obs.name`` or ``obs["name"]``.

    Attributes:
        step: steps taken since reset.
        in_session: bool (n,), who is visiting now (and is to be shown a list).
        available: bool (M,), what can be shown now (published by a creator still active).
        consumed: bool (n, M), what each user has clicked before.
        history: int (n, H), each user's last H clicked items, newest first, −1 = empty.
        creator_exposure: float (C,), each creator's share of the last step's shown slots.
        creator_active: bool (C,), creators still publishing.
        base_user: int (n,), the real user each simulated user is (the id a fitted model knows).
        shown: bool (n,), who was shown a list at the last step.
        clicked: int (n,), the item each user clicked at the last step, −1 for none.
        signals: name -> float (n,), the last step's :data:`SIGNALS` (0 without a click).
    """

    step: int
    in_session: np.ndarray
    available: np.ndarray
    consumed: np.ndarray
    history: np.ndarray
    creator_exposure: np.ndarray
    creator_active: np.ndarray
    base_user: np.ndarray
    shown: np.ndarray
    clicked: np.ndarray
    signals: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


@dataclass
class _State:
    base_user: np.ndarray           # (n,) the real user each simulated user is
    affinity: np.ndarray            # (n, M)
    novelty_propensity: np.ndarray  # (n,)
    mode: np.ndarray                # (n,) 1: this session seeks novelty
    boredom: np.ndarray             # (n, G)
    satisfaction: np.ndarray        # (n,)
    in_session: np.ndarray          # (n,) bool
    left: np.ndarray                # (n,) bool
    history: np.ndarray             # (n, H) item indices, -1 = empty, newest first
    consumed: np.ndarray            # (n, M) bool
    motivation: np.ndarray          # (C,)
    creator_active: np.ndarray      # (C,) bool
    published: np.ndarray           # (M,) bool
    step: int = 0
    exposure: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (C,) share of the last step's slots
    shown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))     # (n,) shown a list last step
    clicked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (n,) item clicked, −1
    signals: dict[str, np.ndarray] = field(default_factory=dict)                    # the last step's signals


def novelty(similarity: np.ndarray, history: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
    """float (n, k): 1 − the largest cosine similarity of each of ``items`` (n, k; None: every item)
    to the ``history`` (n, H) items (−1 = empty; a user with no history: 1). ``similarity`` is
    (M + 1, M): item cosines with a last row of −inf standing for an empty history slot."""
    rows = np.where(history >= 0, history, similarity.shape[0] - 1)
    sims = similarity[rows] if items is None else similarity[rows[:, :, None], items[:, None, :]]
    return 1.0 - np.clip(sims.max(axis=1), 0.0, 1.0)


class LongTermWorld(gym.Env):
    """See the module. ``users`` (the real-user pool simulated users are drawn from) lets train,
    validation and test populations come from disjoint real users. ``quality`` (M,) is hidden:
    only :meth:`truth` and :meth:`utility` (the oracle and report API) read it; policies get
    :attr:`catalogue` and the :class:`Observation` of each step."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, affinity: np.ndarray, genres: np.ndarray, quality: np.ndarray, creators: np.ndarray,
                 item_vectors: np.ndarray, *, n_users: int = 200, users: np.ndarray | None = None,
                 params: WorldParams | None = None, seed: int | None = None) -> None:
        self.base_affinity = np.asarray(affinity, dtype=np.float64)
        self.genres = np.asarray(genres, dtype=np.float64)
        self._quality = np.asarray(quality, dtype=np.float64)  # hidden: the oracle and report API only
        self.creators = np.asarray(creators, dtype=np.int64)
        v = np.asarray(item_vectors, dtype=np.float64)
        unit = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        # (M + 1, M) cosines; the last row (−inf) stands for an empty history slot (see novelty())
        self.similarity = np.vstack([unit @ unit.T, np.full((1, len(unit)), -np.inf, np.float32)])
        self.catalogue = Catalogue(self.genres, self.creators, self.similarity)
        self.n_users, self.params = int(n_users), params or WorldParams()
        self.user_pool = np.arange(self.base_affinity.shape[0]) if users is None else np.asarray(users)
        self.n_items, self.n_creators = self.base_affinity.shape[1], int(self.creators.max()) + 1
        self.examination = (np.arange(self.params.slate_size) + 1.0) ** -self.params.position_decay
        self.genre_counts = np.maximum(self.genres.sum(axis=1), 1.0)
        self.observation_space = gym.spaces.Dict({"in_session": gym.spaces.MultiBinary(self.n_users)})
        self.action_space = gym.spaces.MultiDiscrete(np.full((self.n_users, self.params.slate_size), self.n_items))
        self._rng = np.random.default_rng(seed)
        self.state: _State | None = None

    @classmethod
    def from_dataset(cls, dataset: Any, model: Any, *, n_items: int = 300, n_creators: int = 40,
                     seed: int = 0, **kwargs: Any) -> tuple[LongTermWorld, np.ndarray]:
        """A world over the ``n_items`` most popular items of ``dataset`` (ML-100K: genres from its
        ``class`` attribute, quality = the standardised mean rating), tastes from ``model``'s scores
        (a fitted Ranker with item vectors, for the items' similarities). Creators are assigned to
        items at random (seeded): the data has none. Returns the world and the item indices kept.

        A log without genres (an item attribute ``class`` or ``genre``) or ratings, or a model
        without item vectors, is refused (DataError naming what is missing): the world's boredom,
        quality and novelty are made of them."""
        genre_attr = dataset.item_attributes.get("class") or dataset.item_attributes.get("genre")
        missing = [what for what, absent in (
            ("genres (an item attribute 'class' or 'genre')", genre_attr is None),
            ("ratings", dataset.ratings is None),
            (f"item vectors (the model {type(model).__name__} has none)", not isinstance(model, ItemVectors)))
            if absent]
        if missing:
            name = getattr(dataset, "name", None) or "the log"
            raise DataError(f"{name}: cannot build a long-term world without {' or '.join(missing)}")
        counts = np.bincount(dataset.items, minlength=dataset.n_items)
        items = np.sort(np.argsort(-counts, kind="stable")[:n_items])
        scores = np.asarray(model.score(np.arange(dataset.n_users)), dtype=np.float64)[:, items]
        affinity = (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-12)
        genres = np.asarray(genre_attr.matrix[items].todense())
        sums = np.bincount(dataset.items, weights=dataset.ratings, minlength=dataset.n_items)[items]
        mean = sums / np.maximum(counts[items], 1)
        quality = (mean - mean.mean()) / (mean.std() + 1e-12)
        vectors = model.item_vectors()[items]
        creators = np.random.default_rng(seed).integers(0, n_creators, size=len(items))
        return cls(affinity, genres, quality, creators, vectors, seed=seed, **kwargs), items

    def population(self, n_users: int, users: np.ndarray | None = None, seed: int | None = None) -> LongTermWorld:
        """The same catalogue with another population: ``n_users`` simulated users drawn from the
        real users ``users`` (default: this world's pool)."""
        other = copy.copy(self)
        other.n_users = int(n_users)
        other.user_pool = self.user_pool if users is None else np.asarray(users)
        other.observation_space = gym.spaces.Dict({"in_session": gym.spaces.MultiBinary(other.n_users)})
        other.action_space = gym.spaces.MultiDiscrete(np.full((other.n_users, self.params.slate_size), self.n_items))
        other._rng, other.state = np.random.default_rng(seed), None
        return other

    # --- gymnasium ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng, p, n = self._rng, self.params, self.n_users
        base = self.user_pool[rng.integers(0, len(self.user_pool), size=n)]
        nu = rng.beta(2.0, 3.0, size=n)
        published = np.zeros(self.n_items, dtype=bool)
        published[rng.random(self.n_items) < p.published_share] = True
        self.state = _State(
            base_user=base, affinity=self.base_affinity[base] + p.affinity_noise * rng.standard_normal((n, self.n_items)),
            novelty_propensity=nu, mode=(rng.random(n) < nu).astype(np.float64),
            boredom=np.zeros((n, self.genres.shape[1])), satisfaction=np.full(n, 0.5),
            in_session=np.ones(n, dtype=bool), left=np.zeros(n, dtype=bool),
            history=np.full((n, p.history), -1, dtype=np.int64), consumed=np.zeros((n, self.n_items), dtype=bool),
            motivation=np.ones(self.n_creators), creator_active=np.ones(self.n_creators, dtype=bool),
            published=published, exposure=np.full(self.n_creators, 1.0 / self.n_creators),
            shown=np.zeros(n, dtype=bool), clicked=np.full(n, -1, dtype=np.int64),
            signals={name: np.zeros(n) for name in SIGNALS})
        return self.observation(), {}

    def observation(self) -> Observation:
        """What a platform logs (:class:`Observation`), copied: a policy cannot reach the state through it."""
        s = self._require()
        return Observation(s.step, s.in_session.copy(), self.available(), s.consumed.copy(), s.history.copy(),
                           s.exposure.copy(), s.creator_active.copy(), s.base_user.copy(), s.shown.copy(),
                           s.clicked.copy(), {name: v.copy() for name, v in s.signals.items()})

    def available(self) -> np.ndarray:
        """bool (M,): items that can be shown now (published by a creator still active)."""
        s = self._require()
        return s.published & s.creator_active[self.creators]

    def truth(self) -> dict:
        """The hidden state, for oracles and reports: tastes (n, M), boredom (n, G), the session's mode,
        satisfaction, novelty propensity and whether each user has left for good (n,), item quality (M,)."""
        s = self._require()
        return {"affinity": s.affinity, "boredom": s.boredom, "mode": s.mode, "satisfaction": s.satisfaction,
                "novelty_propensity": s.novelty_propensity, "left": s.left.copy(), "quality": self._quality.copy()}

    def utility(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """True current utility (without the slot's examination term), float (n, k) of ``items``
        (n, k) for ``users`` (n,), or (n, M) of every item."""
        s, p = self._require(), self.params
        if items is None:
            items = np.broadcast_to(np.arange(self.n_items), (len(users), self.n_items))
        rows = np.arange(len(users))[:, None]
        bore = ((s.boredom[users] @ self.genres.T) / self.genre_counts)[rows, items]
        return (s.affinity[users[:, None], items] + p.quality_weight * self._quality[items] - p.boredom_weight * bore
                + (s.mode[users] * p.novelty_weight)[:, None] * self.novelty(users, items))

    def novelty(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float (n, k): 1 − the largest cosine similarity of each of ``items`` (n, k) to the user's
        recent clicks (1 with no clicks yet)."""
        return novelty(self.similarity, self._require().history[users], items)

    def step(self, action: Any) -> tuple[dict, dict, bool, bool, dict]:
        """Show ``action`` (n_users, slate_size) item indices; returns (observation, signals,
        terminated, truncated, info) where signals maps each of :data:`SIGNALS` to float (n_users,)."""
        s, p, rng = self._require(), self.params, self._rng
        slates = np.asarray(action, dtype=np.int64)
        if slates.shape != (self.n_users, p.slate_size):
            raise ValueError(f"an action is one list of {p.slate_size} items per user: shape "
                             f"({self.n_users}, {p.slate_size}), not {slates.shape}")
        active = np.flatnonzero(s.in_session)
        signals = {name: np.zeros(self.n_users) for name in SIGNALS}
        exposure = np.zeros(self.n_creators)
        s.shown = s.in_session.copy()
        s.clicked = np.full(self.n_users, -1, dtype=np.int64)
        if len(active):
            shown = slates[active]
            if shown.min() < 0 or shown.max() >= self.n_items or not self.available()[shown].all():
                raise ValueError("a list shows an item that does not exist or is not available now")
            probs = logit_probabilities((self.utility(active, shown) + np.log(self.examination)) / p.temperature,
                                        p.no_click / p.temperature)
            clicked, slot = draw_choice(probs, rng)
            users, item = active[clicked], shown[clicked, slot[clicked]]
            aff = s.affinity[users, item]
            bore = (s.boredom[users] * self.genres[item]).sum(axis=1) / self.genre_counts[item]
            q = self._quality[item]
            watch = expit(1.5 * q + 0.5 * aff - bore + 0.3 * rng.standard_normal(len(users)))
            signals["click"][users] = 1.0
            signals["watch"][users] = watch
            signals["like"][users] = rng.random(len(users)) < expit(2 * q + aff - 2.5)
            signals["share"][users] = rng.random(len(users)) < expit(2 * q + aff - 4.0)
            s.consumed[users, item] = True
            s.clicked[users] = item
            s.history[users] = np.c_[item, s.history[users, :-1]]
            s.boredom[active] *= p.boredom_decay
            s.boredom[users] += self.genres[item]
            experience = np.full(len(active), p.miss_penalty)
            experience[clicked] = watch
            s.satisfaction[active] = 0.7 * s.satisfaction[active] + 0.3 * experience
            exposure = np.bincount(self.creators[shown.ravel()], minlength=self.n_creators) / shown.size
            # sessions end; some users leave for good
            ends = active[rng.random(len(active)) < 0.05 + 0.45 * expit(-6 * (s.satisfaction[active] - 0.35))]
            leaving = ends[rng.random(len(ends)) < p.leave_rate * expit(-10 * (s.satisfaction[ends] - 0.1))]
            s.in_session[ends] = False
            s.left[leaving] = True
        away = np.flatnonzero(~s.in_session & ~s.left)
        away = away[~np.isin(away, active)]  # who ended a session this step stays away at least a step
        back = away[rng.random(len(away)) < 0.1 + 0.5 * expit(6 * (s.satisfaction[away] - 0.4))]
        s.in_session[back] = True
        s.boredom[back] *= 0.3
        s.mode[back] = rng.random(len(back)) < s.novelty_propensity[back]
        self._creators_step(exposure)
        s.signals = {name: v.copy() for name, v in signals.items()}
        s.step += 1
        info = {"in_session": int(s.in_session.sum()), "left": int(s.left.sum()),
                "creators_active": int(s.creator_active.sum())}
        return self.observation(), signals, bool(s.left.all()), False, info

    def _creators_step(self, exposure: np.ndarray) -> None:
        s, rng = self._require(), self._rng
        active = s.creator_active
        s.exposure = exposure
        s.motivation[active] = 0.9 * s.motivation[active] + 0.1 * exposure[active] * active.sum()
        if s.step >= 10:
            s.creator_active &= s.motivation >= 0.25
        unpublished = ~s.published & s.creator_active[self.creators]
        publishing = np.flatnonzero(s.creator_active & (rng.random(self.n_creators) < 0.3 * np.minimum(1.0, s.motivation)))
        if len(publishing) and unpublished.any():
            # one unpublished item of each publishing creator (the first in a seeded random order)
            order = rng.permutation(self.n_items)
            candidates = order[unpublished[order]]
            owners = self.creators[candidates]
            first = np.unique(owners, return_index=True)
            pick = candidates[first[1][np.isin(first[0], publishing)]]
            s.published[pick] = True

    def _require(self) -> _State:
        if self.state is None:
            raise RuntimeError("call reset() first")
        return self.state
