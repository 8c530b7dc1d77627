"""Policies for :class:`~penchant.simulate.long_term.LongTermWorld`, and training one for the long run.

Each is a :class:`~penchant.models.protocols.SlatePolicy` built with the world's
:class:`~penchant.simulate.long_term.Catalogue` (item metadata) that first ``observe``\\ s each step's
:class:`~penchant.simulate.long_term.Observation` (what a platform logs: who is in a session,
consumed items, recent clicks, the signals its last lists earned, creators' exposure); none is given
the world or its hidden state, except :class:`Oracle`.

* :class:`HistoryGreedy` — the greedy use of a fitted recommender: its top-k of the available items
  the user has not consumed.
* :class:`Rerank` — the recommender's standardised score plus θ · features, with features a
  recommender can compute: genre repetition in the user's recent clicks (a boredom proxy), the
  novelty of each item against them, that novelty weighted by the user's observed appetite for
  novelty over all their clicks and over the current session (the hierarchical, user- and
  session-level intent), the under-exposure of the item's creator, and the item's quality as the
  policy's own log shows it (:class:`ItemLog`: its mean watch time per click, shrunk to the mean
  over all clicks by :data:`PRIOR_CLICKS` pseudo-clicks, in standard deviations of a click's watch
  time; 0 for an item never clicked). The world's quality term itself is hidden.
* :class:`Oracle` — the top-k of the true current utility: the myopic best with full knowledge.

:func:`train_rerank` fits θ by the cross-entropy method (a derivative-free policy search) on the
200-step return of training users, keeps the θ that does best on validation users, and stops when
validation has not improved for ``patience`` rounds; with ``floor`` it is constrained: a candidate
whose share of users above the floor is below ``floor_share`` ranks below every one that keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant.simulate.bandits import top_k
from penchant.simulate.long_term import SIGNALS, Catalogue, LongTermWorld, Observation, novelty

FEATURES = ("genre_repetition", "novelty", "novelty_x_user_appetite", "novelty_x_session_appetite",
            "creator_underexposure", "item_observed_watch")
#: pseudo-clicks at the mean watch time that an item's observed watch time is shrunk with
PRIOR_CLICKS = 2.0


def catalogue_of(source: Catalogue | Any) -> Catalogue:
    """The :class:`~penchant.simulate.long_term.Catalogue` of ``source`` (a catalogue, or a world
    whose ``catalogue`` it is): what a policy keeps of the world it is built for."""
    return source if isinstance(source, Catalogue) else source.catalogue


class ItemLog:
    """Per-item estimates from the clicks a policy's own lists earned, updated as it serves:
    clicks (M,) and watch time summed (M,), and the mean and spread of a click's watch time."""

    def __init__(self, n_items: int) -> None:
        self.clicks, self.watch = np.zeros(n_items), np.zeros(n_items)
        self.moments = np.zeros(3)  # clicks, Σ watch, Σ watch² over every item

    def add(self, obs: Observation) -> None:
        """Fold in the last step's clicks and their watch times."""
        users = np.flatnonzero(obs.clicked >= 0)
        if not len(users):
            return
        items, watch = obs.clicked[users], obs.signals["watch"][users]
        self.clicks += np.bincount(items, minlength=len(self.clicks))
        self.watch += np.bincount(items, weights=watch, minlength=len(self.clicks))
        self.moments += (len(users), watch.sum(), (watch ** 2).sum())

    def observed_watch(self) -> np.ndarray:
        """float (M,): each item's shrunk mean watch per click less the mean over all clicks, in standard
        deviations of a click's watch time (see the module); zeros before two clicks."""
        n, total, squares = self.moments
        if n < 2:
            return np.zeros(len(self.clicks))
        mean = total / n
        sd = np.sqrt(max(squares / n - mean ** 2, 1e-6))
        return ((self.watch + PRIOR_CLICKS * mean) / (self.clicks + PRIOR_CLICKS) - mean) / sd


def _masked_top_k(scores: np.ndarray, obs: dict, users: np.ndarray, k: int) -> np.ndarray:
    """Top-k of available items, consumed ones only when nothing else is left."""
    scores = scores - 1e6 * obs["consumed"][users]
    scores[:, ~obs["available"]] = -np.inf
    return top_k(scores, k)


class HistoryGreedy:
    """The top-k of a fitted recommender's scores ``scores`` (real users × world items)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.obs: dict | None = None

    def observe(self, obs: dict) -> None:
        self.obs = obs

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.obs is not None, "observe() first"
        return _masked_top_k(self.scores[self.obs["base_user"][users]], self.obs, users, k), np.ones((len(users), k))


class Oracle:
    """The myopic best: the top-k of the world's true current utility (``world`` None: unbound,
    to be given the world it will act in by :meth:`bind`)."""

    #: reads the world's hidden state: a reference for reports, not a policy a platform could run
    oracle = True

    def __init__(self, world: LongTermWorld | None) -> None:
        self.world = world
        self.obs: dict | None = None

    def bind(self, world: LongTermWorld) -> Oracle:
        """The oracle acting in ``world``."""
        return Oracle(world)

    def observe(self, obs: dict) -> None:
        self.obs = obs

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.obs is not None and self.world is not None, "bind a world and observe() first"
        return _masked_top_k(self.world.utility(users), self.obs, users, k), np.ones((len(users), k))


class Rerank(HistoryGreedy):
    """score = z(recommender) + θ · features (see the module); deterministic top-k. Built with the
    recommender's ``scores`` (real users × items), ``theta`` (6,) and the world's ``catalogue``
    (a :class:`~penchant.simulate.long_term.Catalogue`, or a world: only its catalogue is kept)."""

    def __init__(self, scores: np.ndarray, theta: np.ndarray, catalogue: Catalogue | Any) -> None:
        super().__init__(scores)
        self.catalogue = catalogue = catalogue_of(catalogue)
        self.z = (self.scores - self.scores.mean(axis=1, keepdims=True)) / (self.scores.std(axis=1, keepdims=True) + 1e-12)
        self.theta = np.asarray(theta, dtype=np.float64)
        self.similarity, self.creators = catalogue.similarity, catalogue.creators
        self.genres = np.asarray(catalogue.genres, dtype=np.float64)
        self.genre_counts = np.maximum(self.genres.sum(axis=1), 1.0)
        self._appetite: np.ndarray | None = None  # (n, 4): novelty sums and counts, all clicks and this session
        self._in_session: np.ndarray | None = None
        self.items: ItemLog | None = None

    def observe(self, obs: Observation) -> None:
        history = obs.history
        n = len(history)
        if self._appetite is None or obs.step == 0:
            self._appetite = np.zeros((n, 4))
            self._in_session, self.items = np.zeros(n, dtype=bool), ItemLog(len(self.genres))
        assert self._in_session is not None and self.items is not None
        users = np.flatnonzero(obs.clicked >= 0)
        if len(users):  # the novelty of each new click against the clicks before it
            nov = novelty(self.similarity, history[users, 1:], history[users, :1])[:, 0]
            self._appetite[users] += np.c_[nov, np.ones(len(users)), nov, np.ones(len(users))]
        self.items.add(obs)
        started = obs.in_session & ~self._in_session
        self._appetite[started, 2:] = 0.0
        self._in_session = obs.in_session.copy()
        self.obs = obs

    def _parts(self, users: np.ndarray) -> tuple[np.ndarray, ...]:
        """The features' factors for ``users``: repetition (n, M), novelty (n, M), the user's and the
        session's appetite for novelty (n,), creator under-exposure (M,), observed watch (M,)."""
        obs = self.obs
        assert obs is not None and self._appetite is not None and self.items is not None
        history = obs["history"][users]
        recent = np.where((history >= 0)[:, :, None], self.genres[np.maximum(history, 0)], 0.0).sum(axis=1)
        repetition = (recent @ self.genres.T) / (self.genre_counts * history.shape[1])
        nov = novelty(self.similarity, history)
        a = self._appetite[users]
        user_appetite = (a[:, 0] + 0.5) / (a[:, 1] + 1.0)  # a prior of one half-novel click
        session_appetite = (a[:, 2] + 0.5) / (a[:, 3] + 1.0)
        fair = 1.0 / max(int(obs["creator_active"].sum()), 1)
        under = (np.clip(fair - obs["creator_exposure"], 0.0, None) / fair)[self.creators]
        return repetition, nov, user_appetite, session_appetite, under, self.items.observed_watch()

    def features(self, users: np.ndarray) -> np.ndarray:
        """float (n, M, 6) of :data:`FEATURES` for ``users``."""
        rep, nov, ua, sa, under, watch = self._parts(users)
        return np.stack([rep, nov, ua[:, None] * nov, sa[:, None] * nov, np.broadcast_to(under, rep.shape),
                         np.broadcast_to(watch, rep.shape)], axis=2)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.obs is not None, "observe() first"
        return self._rank(users, self.theta[None, :], k)

    def _rank(self, users: np.ndarray, theta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top-k of z + θ · features, θ one row (1, 6) for everyone or one per user (n, 6); propensity 1."""
        assert self.obs is not None
        rep, nov, ua, sa, under, watch = self._parts(users)
        t = theta.T[:, :, None]  # (6, n or 1, 1): θ · features, without building them
        scores = (self.z[self.obs["base_user"][users]] + t[0] * rep + nov * (t[1] + t[2] * ua[:, None] + t[3] * sa[:, None])
                  + t[4] * under + t[5] * watch)
        return _masked_top_k(scores, self.obs, users, k), np.ones((len(users), k))


@dataclass(frozen=True)
class Episode:
    """One run of a policy over a population, per user (float (n,) each) and per step.

    Attributes:
        returns: signal -> total per user over the run.
        retained: 1.0 for a user who has not left by the end.
        active_share: the share of steps each user spent in a session.
        novelty: mean novelty of each user's clicks (NaN without clicks).
        creator_survival: the share of creators still active at the end, of ``creators``.
        per_step: signal -> mean per user at each step (steps,); ``retained`` too.
    """

    returns: dict[str, np.ndarray]
    retained: np.ndarray
    active_share: np.ndarray
    novelty: np.ndarray
    creator_survival: float
    creators: int = 0
    per_step: dict[str, np.ndarray] = field(default_factory=dict)


def run_episode(world: LongTermWorld, policy, steps: int = 200, *, seed: int = 0,
                on_step: Callable[[dict[str, np.ndarray], np.ndarray], None] | None = None) -> Episode:
    """Run ``policy`` in ``world`` from ``reset(seed=seed)`` for ``steps`` steps. ``on_step`` is
    called after each step with the signals (name -> float (n,)) and each user's click novelty
    (float (n,), 0 without a click): what a learner records as its rewards."""
    obs, _ = world.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    n, k = world.n_users, world.params.slate_size
    totals = {name: np.zeros(n) for name in SIGNALS}
    per_step = {name: np.zeros(steps) for name in (*SIGNALS, "retained")}
    in_session, nov_sum, clicks = np.zeros(n), np.zeros(n), np.zeros(n)
    slates = np.zeros((n, k), dtype=np.int64)  # users not in a session are shown nothing (the world ignores them)
    for t in range(steps):
        policy.observe(obs)
        active = obs["in_session"]
        users = np.flatnonzero(active)
        if len(users):
            slates[users] = policy.act(users, k, rng)[0]
        obs, signals, _, _, info = world.step(slates)
        in_session += active
        hit = signals["click"] > 0
        click_novelty = np.zeros(n)
        if hit.any():  # the novelty of each click against the clicks before it
            users = np.flatnonzero(hit)
            click_novelty[users] = novelty(world.similarity, obs["history"][users, 1:], obs["history"][users, :1])[:, 0]
            nov_sum[users] += click_novelty[users]
            clicks[users] += 1
        if on_step is not None:
            on_step(signals, click_novelty)
        for name in SIGNALS:
            totals[name] += signals[name]
            per_step[name][t] = signals[name].mean()
        per_step["retained"][t] = 1.0 - info["left"] / n
    s = world.state
    assert s is not None
    return Episode(totals, (~s.left).astype(np.float64), in_session / steps,
                   np.divide(nov_sum, clicks, out=np.full(n, np.nan), where=clicks > 0),
                   float(s.creator_active.mean()), world.n_creators, per_step)


def train_rerank(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *, signal: str = "click",
                 floor: tuple[str, float] | None = None, floor_share: float = 0.97, iterations: int = 12,
                 population: int = 16, elite: int = 4, patience: int = 3, steps: int = 200,
                 init: np.ndarray | None = None, seed: int = 0, progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[dict]]:
    """θ for :class:`Rerank` by the cross-entropy method (see the module).

    Args:
        make_world: ``(split, seed) -> world`` for split ``"train"`` or ``"valid"`` (disjoint users).
        scores: the recommender's scores, real users × world items.
        signal: the return to maximise (one of :data:`~penchant.simulate.long_term.SIGNALS`).
        floor: ``(signal, value)``: keep each user's mean of that signal per click (or the mean
            novelty of their clicks, signal ``"novelty"``) at or above value for at least
            ``floor_share`` of users (:func:`floor_kept`). Candidates that keep it rank by return,
            the others below them by the share they keep.
        init: the search's starting mean (e.g. an unconstrained θ); default zeros (the greedy policy).
        patience: rounds without a better validation θ (one that keeps the floor) before stopping;
            counted from the first such θ. Without any, the θ whose validation share is highest is returned.
    Returns:
        the chosen θ (one weight per feature) and one record per iteration (train and validation objective, θ).
    """
    rng = np.random.default_rng(seed)
    mean = np.zeros(len(FEATURES)) if init is None else np.asarray(init, dtype=np.float64).copy()
    std = np.full(len(FEATURES), 1.0)
    best, best_theta, since, history = -np.inf, None, 0, []
    closest, closest_theta = -1.0, mean.copy()

    def score(theta: np.ndarray, split: str, world_seed: int) -> tuple[float, float]:
        world = make_world(split, world_seed)
        ep = run_episode(world, Rerank(scores, theta, world.catalogue), steps, seed=world_seed)
        value = float(ep.returns[signal].mean())
        if floor is None:
            return value, 1.0
        return value, floor_kept(ep, *floor)

    for it in range(iterations):
        thetas = mean + std * rng.standard_normal((population, len(FEATURES)))
        results = [score(t, "train", 1000 + it) for t in thetas]  # one world seed per round: common random numbers
        order = sorted(range(population), reverse=True,
                       key=lambda i: (1, results[i][0]) if results[i][1] >= floor_share else (0, results[i][1]))
        elites = thetas[order[:elite]]
        mean, std = elites.mean(axis=0), np.maximum(elites.std(axis=0), 0.05)
        valid, kept = score(mean, "valid", 7)
        feasible = kept >= floor_share
        history.append({"iteration": it, "train": results[order[0]][0], "valid": valid, "valid_floor_share": kept,
                        "theta": mean.tolist()})
        if progress is not None:
            progress(f"round {it + 1}: validation {signal} {valid:.3f}")
        if not feasible and kept > closest:
            closest, closest_theta = kept, mean.copy()
        if feasible and valid > best:
            best, best_theta, since = valid, mean.copy(), 0
        elif best_theta is not None:
            since += 1
            if since >= patience:
                break
    return (closest_theta if best_theta is None else best_theta), history


def floor_kept(episode: Episode, signal: str, value: float) -> float:
    """The share of users whose mean ``signal`` per click (or, for ``"novelty"``, the mean novelty of
    their clicks) is at least ``value``; users without a click count as below."""
    clicks = episode.returns["click"]
    if signal == "novelty":
        per_click = np.nan_to_num(episode.novelty, nan=-np.inf)
    else:
        per_click = np.divide(episode.returns[signal], clicks, out=np.full_like(clicks, -np.inf), where=clicks > 0)
    return float(np.mean(per_click >= value))
