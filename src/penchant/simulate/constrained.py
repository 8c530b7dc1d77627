"""Composite proxy rewards, their over-optimisation, and constraints that stop it (Moskovitz et al.,
"Confronting Reward Model Overoptimization with Constrained RLHF", ICLR 2024).

In the long-term world (:mod:`penchant.simulate.long_term`) a platform sees clicks and what was
clicked, never the users' hidden satisfaction. Its proxy reward is a sum of components it can log,
per user and step (:data:`COMPONENTS`): ``click`` (clicks), ``novelty`` (the novelty of each click
against the user's recent clicks) and ``list_novelty`` (the mean novelty of the items of each list
served, against the user's recent clicks: a diversity-of-exposure goal). Past a point, more novelty
means less satisfaction (novel items a user does not care for are clicked less and watched less).

The policy is :class:`~penchant.simulate.long_term_policies.Rerank` (the recommender's score plus θ ·
observable features; θ on :data:`POLICY_FEATURES`, the rest 0), trained by an evolution strategy
(antithetic Gaussian perturbations of θ, one world seed per round for all of them — common random
numbers — and a normalised gradient step); each component's gradient is estimated from the same
perturbations, so any weighting of them can be followed.

* **fixed weights**: ascend Σ_i w_i v_i(θ) (v_i: component i per user and step). Its validation
  curve shows over-optimisation when the proxy keeps rising while satisfaction falls.
* **proxy points** (the paper's thresholds of usefulness): each component's value at the round
  where the fixed-weight run's validation satisfaction peaked. As in the paper, finding them reads
  the true objective (there: human ratings; here: the world's report of hidden satisfaction) of an
  unconstrained run; the constrained run itself never reads it.
* **constrained** (the paper's Lagrangian with components kept under their proxy points):
  maximise Σ_i w_i v_i subject to v_i ≤ τ_i, as max_θ min_{μ ≥ 0} Σ_i (w_i − μ_i) v_i + μ_i τ_i:
  the multipliers are dynamic weights, raised by gradient ascent while a constraint is violated
  (μ_i ← max(0, μ_i + η (v_i − τ_i) / |τ_i|)) and lowered while it is slack.
* **targets** (the paper's equality-constrained form as its reference code runs it: bounded
  multipliers, each component held at its proxy point while the policy otherwise stays close to
  the reference policy): the step follows (C − Σ_i s_i) ĝ_ref + Σ_i s_i ĝ_i with s_i = tanh(λ_i)
  ∈ (−1, 1), ĝ_i each component's gradient and ĝ_ref the gradient of −½|θ|² (towards the
  recommender alone, standing in for the KL to the pre-trained policy), each normalised to unit
  length (the code normalises each advantage); λ_i ← λ_i − η tanh'(λ_i) (v_i − τ_i) / |τ_i|, so a component
  under its point is pushed up and one over it pushed down.

Simplified from the paper: the policy is a 4-weight re-ranker searched by an evolution strategy,
not a language model fine-tuned by PPO with a KL penalty (the reference policy's pull is the
distance of θ from 0); the paper's Nelder–Mead search for the proxy points during one run is not
implemented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from penchant.simulate.long_term import LongTermWorld, novelty
from penchant.simulate.long_term_policies import FEATURES, Rerank, run_episode

#: the proxy reward's components, per user and step: clicks and the novelty of clicks
COMPONENTS = ("click", "novelty", "list_novelty")
#: the re-ranker's features the policy search moves (observable: from the policy's own log)
POLICY_FEATURES = ("genre_repetition", "novelty", "novelty_x_session_appetite", "item_observed_watch")


@dataclass(frozen=True)
class Rollout:
    """One policy run: ``components`` float (C,) per user and step, ``satisfaction`` the hidden
    satisfaction's mean over users and steps (from the world's report API), ``clicks`` per user."""

    components: np.ndarray
    satisfaction: float
    clicks: float


def rerank_theta(theta: np.ndarray) -> np.ndarray:
    """The re-ranker's full θ (len(FEATURES),) with ``theta`` (len(POLICY_FEATURES),) on :data:`POLICY_FEATURES`."""
    full = np.zeros(len(FEATURES))
    full[[FEATURES.index(f) for f in POLICY_FEATURES]] = theta
    return full


def rollout(world: LongTermWorld, scores: np.ndarray, theta: np.ndarray, steps: int, seed: int) -> Rollout:
    """Run the re-ranker with ``theta`` (len(POLICY_FEATURES),) in ``world`` for ``steps`` steps from
    ``reset(seed=seed)``; ``scores``: the recommender's scores, real users × world items."""
    totals = np.zeros(len(COMPONENTS))
    satisfaction = []
    policy = _ServedNovelty(Rerank(scores, rerank_theta(theta), world), world.catalogue.similarity)

    def record(signals: dict[str, np.ndarray], click_novelty: np.ndarray) -> None:
        totals[:2] += signals["click"].sum(), click_novelty.sum()
        satisfaction.append(float(world.truth()["satisfaction"].mean()))  # a report: the policy never sees it

    episode = run_episode(world, policy, steps, seed=seed, on_step=record)
    totals[2] = policy.total
    return Rollout(totals / (world.n_users * steps), float(np.mean(satisfaction)), float(episode.returns["click"].mean()))


class _ServedNovelty:
    """A policy that sums the mean novelty of each list it serves against the user's recent clicks
    (``total``), from what it observed: the ``list_novelty`` component."""

    def __init__(self, policy: Rerank, similarity: np.ndarray) -> None:
        self.policy, self.similarity, self.total = policy, similarity, 0.0

    def observe(self, obs) -> None:
        self.policy.observe(obs)
        self.history = obs.history

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        slates, propensities = self.policy.act(users, k, rng)
        self.total += float(novelty(self.similarity, self.history[users], slates).mean(axis=1).sum())
        return slates, propensities


def multiplier_step(mu: np.ndarray, values: np.ndarray, thresholds: np.ndarray, rate: float) -> np.ndarray:
    """Projected gradient ascent on the Lagrange multipliers (C,) of the constraints v ≤ τ: up while
    ``values`` exceed ``thresholds``, down (to no lower than 0) while they are under."""
    return np.maximum(0.0, mu + rate * (values - thresholds) / np.maximum(np.abs(thresholds), 1e-9))


def train(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, weights: np.ndarray, *,
          thresholds: np.ndarray | None = None, targets: bool = False, iterations: int = 20, pairs: int = 4, sigma: float = 0.5,
          step: float = 0.6, multiplier_rate: float = 10.0, steps: int = 50, seed: int = 0,
          progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[dict]]:
    """θ (len(POLICY_FEATURES),) ascending Σ_i w_i v_i, or with ``thresholds`` (C,) the Lagrangian
    of v_i ≤ τ_i, or with ``targets`` too the equality-constrained form (v_i = τ_i, ``weights`` not
    read; see the module), by an evolution strategy from θ = 0 (the recommender alone).

    Args:
        make_world: ``(split, seed) -> world`` for ``"train"`` and ``"valid"`` (disjoint users).
        scores: the recommender's scores, real users × world items.
        weights: w (C,), the fixed weight of each of :data:`COMPONENTS`.
        pairs: antithetic perturbation pairs per round; ``sigma`` their scale; ``step`` the length
            of each round's step in θ (along the normalised gradient estimate).
        multiplier_rate: η of :func:`multiplier_step` (the multipliers move on the training
            perturbations' mean component values); with ``targets`` η / 5 for λ.
    Returns:
        the last θ and one record per round: the validation components, proxy (Σ w_i v_i),
        satisfaction and clicks of that round's θ, the multipliers and θ.
    """
    rng = np.random.default_rng(seed)
    weights = np.asarray(weights, dtype=np.float64)
    theta, mu = np.zeros(len(POLICY_FEATURES)), np.zeros(len(COMPONENTS))
    history = []
    for it in range(iterations + 1):
        valid = rollout(make_world("valid", 7), scores, theta, steps, seed=7)
        history.append({"iteration": it, "components": valid.components.tolist(),
                        "proxy": float(weights @ valid.components), "satisfaction": valid.satisfaction,
                        "clicks": valid.clicks, "multipliers": mu.tolist(), "theta": theta.tolist()})
        if progress is not None:
            progress(it)
        if it == iterations:
            break
        eps = rng.standard_normal((pairs, len(theta)))
        world_seed = 1000 * (seed + 1) + it  # common random numbers within the round
        plus = np.array([rollout(make_world("train", world_seed), scores, theta + sigma * e, steps, world_seed).components
                         for e in eps])
        minus = np.array([rollout(make_world("train", world_seed), scores, theta - sigma * e, steps, world_seed).components
                          for e in eps])
        grads = (plus - minus).T @ eps / (2 * sigma * pairs)  # (C, p): each component's gradient in θ
        values = (plus + minus).mean(axis=0) / 2
        if targets:
            assert thresholds is not None, "targets need thresholds"
            # gradient descent on Σ_i tanh(λ_i) (v_i − τ_i): tanh' keeps a saturated multiplier from running away
            mu = mu - multiplier_rate / 5 * (1 - np.tanh(mu) ** 2) * (values - thresholds) / np.maximum(np.abs(thresholds), 1e-9)
            unit = grads / np.maximum(np.linalg.norm(grads, axis=1, keepdims=True), 1e-12)
            pull = -theta / max(float(np.linalg.norm(theta)), 1e-12)
            s = np.tanh(mu)
            direction = (len(s) - s.sum()) * pull + s @ unit
        elif thresholds is not None:
            mu = multiplier_step(mu, values, np.asarray(thresholds), multiplier_rate)
            direction = (weights - mu) @ grads
        else:
            direction = (weights - mu) @ grads
        theta = theta + step * direction / max(float(np.linalg.norm(direction)), 1e-12)
    return theta, history


def proxy_points(history: list[dict]) -> tuple[np.ndarray, int]:
    """The components' values (C,) at the round whose validation satisfaction is highest, and that round."""
    best = int(np.argmax([h["satisfaction"] for h in history]))
    return np.asarray(history[best]["components"]), best


def experiment(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *,
               weights: tuple[float, ...] = (1.0, 0.0, 4.0), seeds: int = 3, iterations: int = 25, steps: int = 40,
               pairs: int = 4, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """For each seed: the fixed-weight run, its proxy points, the constrained and targets runs with them, and
    each final θ on the test users (with the recommender alone, θ = 0, and the fixed-weight run's
    θ at its satisfaction peak, for reference). ``progress(label, done, total)`` after each round.

    Returns ``{"runs": [per seed: {"fixed", "constrained", "targets": history, "thresholds", "peak"}],
    "test": {policy: {"satisfaction", "clicks", "components": per seed}}, "settings"}``.
    """
    w = np.asarray(weights, dtype=np.float64)
    runs, test = [], {name: {"satisfaction": [], "clicks": [], "components": []}
                      for name in ("recommender alone", "fixed weights", "fixed weights at its peak", "constrained", "targets")}
    total = seeds * 3 * (iterations + 1)
    done = 0

    def tick(label: str) -> Callable[[int], None]:
        def call(_: int) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(label, done, total)
        return call

    for s in range(seeds):
        fixed_theta, fixed = train(make_world, scores, w, iterations=iterations, steps=steps, pairs=pairs, seed=s,
                                   progress=tick(f"seed {s}: fixed weights"))
        tau, peak = proxy_points(fixed)
        constrained_theta, constrained = train(make_world, scores, w, thresholds=tau, iterations=iterations,
                                               steps=steps, pairs=pairs, seed=s, progress=tick(f"seed {s}: constrained"))
        targets_theta, targets = train(make_world, scores, w, thresholds=tau, targets=True, iterations=iterations,
                                       steps=steps, pairs=pairs, seed=s, progress=tick(f"seed {s}: targets"))
        runs.append({"fixed": fixed, "constrained": constrained, "targets": targets, "thresholds": tau.tolist(),
                     "peak": peak})
        for name, theta in (("recommender alone", np.zeros(len(POLICY_FEATURES))), ("fixed weights", fixed_theta),
                            ("fixed weights at its peak", np.asarray(fixed[peak]["theta"])),
                            ("constrained", constrained_theta), ("targets", targets_theta)):
            r = rollout(make_world("test", 20_000 + s), scores, theta, steps, 20_000 + s)
            test[name]["satisfaction"].append(r.satisfaction)
            test[name]["clicks"].append(r.clicks)
            test[name]["components"].append(r.components.tolist())
    return {"runs": runs, "test": test, "settings": {"weights": list(weights), "components": list(COMPONENTS),
                                                     "policy_features": list(POLICY_FEATURES), "seeds": seeds,
                                                     "iterations": iterations, "steps": steps, "pairs": pairs}}
