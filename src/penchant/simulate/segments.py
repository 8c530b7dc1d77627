"""Preferences between trajectory segments explained by regret rather than partial return
(Knox et al., "Models of Human Preference for Learning Reward Functions", 2022).

A synthetic human compares two length-k segments σ of a gridworld with a known reward. Two models
of how they choose:

* **partial return**: P(σ1 ≻ σ2) = logistic(G(σ1) − G(σ2)), G(σ) = Σ_t γ^t r(s_t, a_t);
* **regret** (the paper's deterministic-transition form): P(σ1 ≻ σ2) = logistic(regret(σ2) −
  regret(σ1)), regret(σ) = V*(s_0) − (G(σ) + γ^k V*(s_k)) = −Σ_t γ^t A*(s_t, a_t): how much worse
  the segment is than what the optimal policy would have done from where it started.

A reward r̂ = ŵ · φ (linear in cell-type features) is fitted under each model by maximum likelihood
on preferences labelled under each model, and judged by the true return of the policy optimal for
r̂. The regret model needs V*_ŵ: it is computed exactly by policy iteration at every evaluation,
and its gradient in ŵ is the successor features ψ^{π*_ŵ} of the optimal policy (the envelope
theorem: V*_w(s) = max_π w · ψ^π(s)), the paper's successor-feature device with the optimal
policy's own features (exact in a tabular MDP) instead of a max over a fixed set of policies.

The world (the paper's "delivery domain", simplified): a square grid whose cells are empty,
roadblocks (a penalty on entering), coins (a small bonus on entering; they do not disappear, so
their bonus is drawn below the step cost and cannot be farmed under the true reward), goals
(terminal, a large bonus) or hazards (terminal, a large penalty); every move costs 1; moving into
the edge stays put. Rewards are drawn per world from a seed. Returns are discounted (γ = 0.99 by
default) so that a learned reward that pays for looping still has finite values; the paper's
segments are undiscounted.

Shapes: S states (one per cell, row-major), A = 4 actions, d = len(:data:`FEATURES`) features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

#: what a transition's reward is linear in: the move, and the type of the cell entered
FEATURES = ("step", "roadblock", "coin", "goal", "hazard")
CELL_TYPES = ("empty", *FEATURES[1:])
PREFERENCE_MODELS = ("partial-return", "regret")
_MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right


@dataclass(frozen=True)
class Gridworld:
    """A deterministic MDP with a reward linear in transition features.

    Attributes:
        cells: int (H, W) index into :data:`CELL_TYPES`.
        next_state: int (S, A): where each action leads (terminal states lead to themselves).
        features: float (S, A, d): φ(s, a) of the transition (zero out of a terminal state).
        terminal: bool (S,).
        weights: float (d,) the true reward weights w (r = w · φ).
        gamma: the discount.
    """

    cells: np.ndarray
    next_state: np.ndarray
    features: np.ndarray
    terminal: np.ndarray
    weights: np.ndarray
    gamma: float = 0.99

    @classmethod
    def from_cells(cls, cells: np.ndarray, weights: np.ndarray, gamma: float = 0.99) -> Gridworld:
        """The gridworld of a layout ``cells`` (H, W) of :data:`CELL_TYPES` indices with reward ``weights`` (d,)."""
        cells = np.asarray(cells, dtype=np.int64)
        h, w = cells.shape
        rows, cols = np.divmod(np.arange(h * w), w)
        to_r = np.clip(rows[:, None] + _MOVES[None, :, 0], 0, h - 1)
        to_c = np.clip(cols[:, None] + _MOVES[None, :, 1], 0, w - 1)
        flat = cells.ravel()
        terminal = np.isin(flat, [CELL_TYPES.index("goal"), CELL_TYPES.index("hazard")])
        nxt = np.where(terminal[:, None], np.arange(h * w)[:, None], to_r * w + to_c)
        entered = flat[nxt]  # (S, A) type of the cell entered
        phi = np.zeros((h * w, 4, len(FEATURES)))
        phi[:, :, 0] = 1.0
        for f in range(1, len(FEATURES)):
            phi[:, :, f] = entered == CELL_TYPES.index(FEATURES[f])
        phi[terminal] = 0.0
        return cls(cells, nxt, phi, terminal, np.asarray(weights, dtype=np.float64), float(gamma))

    @classmethod
    def random(cls, seed: int, size: int = 6, gamma: float = 0.99) -> Gridworld:
        """A ``size`` × ``size`` world drawn from ``seed``: cells empty 60%, roadblock 20%, coin 12%,
        hazard 5%, goal 3% (at least one goal); weights: step −1, roadblock −U(1, 10), coin U(0.2, 0.9),
        goal U(10, 50), hazard −U(10, 50)."""
        rng = np.random.default_rng(seed)
        cells = rng.choice(len(CELL_TYPES), size=(size, size), p=[0.60, 0.20, 0.12, 0.03, 0.05])
        if not (cells == CELL_TYPES.index("goal")).any():
            cells.flat[rng.integers(size * size)] = CELL_TYPES.index("goal")
        weights = np.array([-1.0, -rng.uniform(1, 10), rng.uniform(0.2, 0.9), rng.uniform(10, 50), -rng.uniform(10, 50)])
        return cls.from_cells(cells, weights, gamma)

    @property
    def n_states(self) -> int:
        return len(self.terminal)

    def successor_features(self, policy: np.ndarray) -> np.ndarray:
        """float (S, d): ψ^π(s) = Σ_t γ^t φ(s_t, π(s_t)) from s, for a deterministic ``policy`` (S,) of
        actions or a stochastic one (S, A) of probabilities; zero at terminal states."""
        s = np.arange(self.n_states)
        transition = np.zeros((self.n_states, self.n_states))
        if policy.ndim == 1:
            transition[s, self.next_state[s, policy]] = 1.0
            phi = self.features[s, policy]
        else:
            np.add.at(transition, (np.repeat(s, 4), self.next_state.ravel()), policy.ravel())
            phi = np.einsum("sa,sad->sd", policy, self.features)
        transition[self.terminal] = 0.0
        return np.linalg.solve(np.eye(self.n_states) - self.gamma * transition, phi)

    def optimal(self, weights: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The optimal policy for reward ``weights`` (d,) by policy iteration from ``start`` (actions
        (S,); default all 0): actions (S,), V* (S,) and ψ^{π*} (S, d) (so V* = ψ^{π*} · weights, and
        ψ^{π*} is V*'s gradient in the weights)."""
        r = self.features @ weights  # (S, A)
        policy = np.zeros(self.n_states, dtype=np.int64) if start is None else start
        for _ in range(10 * self.n_states):
            psi = self.successor_features(policy)
            v = psi @ weights
            q = r + self.gamma * v[self.next_state] * ~self.terminal[self.next_state]
            current = q[np.arange(self.n_states), policy]
            better = q.max(axis=1) > current + 1e-9 * (1.0 + np.abs(current))
            if not better.any():
                return policy, v, psi
            policy = np.where(better, q.argmax(axis=1), policy)
        raise RuntimeError("policy iteration did not converge")  # cannot happen for γ < 1

    def q_values(self, weights: np.ndarray, v: np.ndarray) -> np.ndarray:
        """float (S, A): r + γ V(next) for reward ``weights`` and values ``v`` (S,)."""
        return self.features @ weights + self.gamma * v[self.next_state] * ~self.terminal[self.next_state]

    def policy_value(self, policy: np.ndarray) -> float:
        """The mean true value of ``policy`` (actions (S,) or probabilities (S, A)) over non-terminal start states."""
        return float((self.successor_features(policy) @ self.weights)[~self.terminal].mean())


@dataclass(frozen=True)
class Segments:
    """``n`` segments of length k. states: int (n, k + 1); actions: int (n, k); phi: float (n, d),
    Σ_t γ^t φ(s_t, a_t) (so G = phi · w)."""

    states: np.ndarray
    actions: np.ndarray
    phi: np.ndarray

    def regret(self, world: Gridworld, weights: np.ndarray, v: np.ndarray) -> np.ndarray:
        """float (n,): V*(s_0) − G − γ^k V*(s_k) for reward ``weights`` with its optimal values ``v`` (S,)."""
        k = self.actions.shape[1]
        return v[self.states[:, 0]] - self.phi @ weights - world.gamma ** k * v[self.states[:, -1]]


def sample_segments(world: Gridworld, n: int, length: int, rng: np.random.Generator) -> Segments:
    """``n`` segments of ``length`` steps: uniform non-terminal start states, uniform random actions;
    a segment that reaches a terminal state stays there (with zero features)."""
    starts = rng.choice(np.flatnonzero(~world.terminal), size=n)
    return segments_from(world, starts, rng.integers(0, 4, size=(n, length)))


def segments_from(world: Gridworld, starts: np.ndarray, actions: np.ndarray) -> Segments:
    """The segments taking ``actions`` (n, k) from states ``starts`` (n,)."""
    n, length = actions.shape
    states = np.empty((n, length + 1), dtype=np.int64)
    states[:, 0] = starts
    phi = np.zeros((n, world.features.shape[2]))
    for t in range(length):  # over the segment's k steps, vectorised over segments
        phi += world.gamma ** t * world.features[states[:, t], actions[:, t]]
        states[:, t + 1] = world.next_state[states[:, t], actions[:, t]]
    return Segments(states, actions, phi)


def preference_logits(world: Gridworld, first: Segments, second: Segments, model: str,
                      weights: np.ndarray | None = None) -> np.ndarray:
    """float (n,): the logit of P(first ≻ second) under ``model`` (one of :data:`PREFERENCE_MODELS`)
    for reward ``weights`` (default the true ones)."""
    w = world.weights if weights is None else weights
    if model == "partial-return":
        return (first.phi - second.phi) @ w
    if model == "regret":
        _, v, _ = world.optimal(w)
        return second.regret(world, w, v) - first.regret(world, w, v)
    raise ValueError(f"preference model must be one of {', '.join(PREFERENCE_MODELS)}, not {model!r}")


def label(world: Gridworld, first: Segments, second: Segments, model: str, rng: np.random.Generator,
          noiseless: bool = False) -> np.ndarray:
    """float (n,) 1 where the synthetic human prefers ``first``: drawn from logistic(logit) under
    ``model``, or (``noiseless``) the more likely one, ties broken at random."""
    logits = preference_logits(world, first, second, model)
    if noiseless:
        return np.where(np.abs(logits) < 1e-9, rng.random(len(logits)) < 0.5, logits > 0).astype(np.float64)
    return (rng.random(len(logits)) < expit(logits)).astype(np.float64)


def fit_reward(world: Gridworld, first: Segments, second: Segments, labels: np.ndarray, model: str,
               *, l2: float = 1e-3) -> np.ndarray:
    """ŵ (d,) maximising the log-likelihood of ``labels`` (n,) under ``model`` minus ``l2``·|ŵ|² (which
    keeps ŵ finite on separable data), by BFGS. Partial return is logistic regression (convex,
    from ŵ = 0). Regret is not convex (V* is a max over policies) and its gradient, V*'s envelope
    gradient ψ^{π*_ŵ}, jumps where the optimal policy changes: it is fitted from ŵ = 0 and from the
    partial-return fit, keeping the more likely. ``world``'s own weights are not read."""
    y = np.asarray(labels, dtype=np.float64)
    k = first.actions.shape[1]
    dphi = first.phi - second.phi
    last = [None]  # the previous evaluation's optimal policy: policy iteration's warm start

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        if model == "partial-return":
            z, dz = dphi @ w, dphi
        elif model == "regret":
            last[0], v, psi = world.optimal(w, last[0])
            z = second.regret(world, w, v) - first.regret(world, w, v)
            g = world.gamma ** k
            dz = (psi[second.states[:, 0]] - g * psi[second.states[:, -1]]
                  - psi[first.states[:, 0]] + g * psi[first.states[:, -1]] + dphi)
        else:
            raise ValueError(f"preference model must be one of {', '.join(PREFERENCE_MODELS)}, not {model!r}")
        nll = -(y * log_expit(z) + (1 - y) * log_expit(-z)).sum()
        grad = -((y - expit(z))[:, None] * dz).sum(axis=0)
        return float(nll + l2 * w @ w), grad + 2 * l2 * w

    starts = [np.zeros(len(FEATURES))]
    if model == "regret":
        starts.append(fit_reward(world, first, second, y, "partial-return", l2=l2))
    fits = [minimize(loss, start, jac=True, method="BFGS") for start in starts]
    return min(fits, key=lambda f: f.fun).x


def normalised_return(world: Gridworld, weights: np.ndarray) -> float:
    """(J(π̂) − J(uniform)) / (J(π*) − J(uniform)): the true return of the policy optimal for
    ``weights`` as a share of the way from the uniformly random policy to the optimum (1 = optimal);
    J is the mean true value over non-terminal start states."""
    learned, _, _ = world.optimal(weights)
    best, _, _ = world.optimal(world.weights)
    rand = world.policy_value(np.full((world.n_states, 4), 0.25))
    return (world.policy_value(learned) - rand) / (world.policy_value(best) - rand)


def learning_curves(*, worlds: int = 20, sizes: tuple[int, ...] = (10, 30, 100, 300, 1000), length: int = 3,
                    grid: int = 6, noiseless: bool = False, near_optimal: float = 0.9, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """For ``worlds`` random gridworlds, preferences labelled under each generator model, and
    rewards fitted under each model on the first n of them for each n in ``sizes``.

    Returns ``{"curves": {generator: {model: {"n": sizes, "normalised_return": [[per world] per n],
    "mean", "ci", "near_optimal"}}}, "settings": ...}``: ``near_optimal`` is the share of worlds
    whose learned policy reaches ``near_optimal`` of the optimum (:func:`normalised_return`), ``ci``
    a 95% normal interval over worlds. ``progress(done, total)`` is called after each world.
    """
    largest = max(sizes)
    scores = {g: {m: np.zeros((len(sizes), worlds)) for m in PREFERENCE_MODELS} for g in PREFERENCE_MODELS}
    for i in range(worlds):
        world = Gridworld.random(seed * 100_003 + i, size=grid)
        rng = np.random.default_rng([seed, i])
        first, second = (sample_segments(world, largest, length, rng) for _ in range(2))
        for generator in PREFERENCE_MODELS:
            y = label(world, first, second, generator, rng, noiseless)
            for j, n in enumerate(sizes):
                a, b = _head(first, n), _head(second, n)
                for model in PREFERENCE_MODELS:
                    scores[generator][model][j, i] = normalised_return(world, fit_reward(world, a, b, y[:n], model))
        if progress is not None:
            progress(i + 1, worlds)
    curves = {g: {m: _summary(s, near_optimal) | {"n": list(sizes)} for m, s in by.items()} for g, by in scores.items()}
    return {"curves": curves, "settings": {"worlds": worlds, "sizes": list(sizes), "length": length, "grid": grid,
                                           "noiseless": noiseless, "near_optimal": near_optimal, "seed": seed}}


def _head(segments: Segments, n: int) -> Segments:
    return Segments(segments.states[:n], segments.actions[:n], segments.phi[:n])


def _summary(scores: np.ndarray, near_optimal: float) -> dict:
    """scores (n sizes, worlds) → mean, 95% interval and near-optimal share per size."""
    mean = scores.mean(axis=1)
    half = 1.96 * scores.std(axis=1, ddof=1) / np.sqrt(scores.shape[1]) if scores.shape[1] > 1 else np.zeros(len(mean))
    return {"mean": mean.tolist(), "ci": np.c_[mean - half, mean + half].tolist(),
            "near_optimal": (scores >= near_optimal).mean(axis=1).tolist(), "normalised_return": scores.tolist()}
