"""Actor-critic policies for the long-term world, and the two-stage constrained actor-critic.

After "Two-Stage Constrained Actor-Critic for Short Video Recommendation" (Cai et al., WWW 2023):
maximise one signal's long-run return while keeping auxiliary signals healthy.

* **Action**: as in the paper, the actor does not pick items; it outputs, per user and step, the
  weights θ ∈ R⁶ of a ranking function: the list is the top-k of the recommender's standardised score
  plus θ · the :data:`~penchant.simulate.long_term_policies.FEATURES` of each item (the re-ranker of
  :class:`~penchant.simulate.long_term_policies.Rerank`, with θ chosen per user and step rather than fixed).
* **State** (:data:`STATE`): what the service can see of a user: their appetite for novelty over all
  clicks and over this session, how long the session has run, its click rate, misses in a row, the
  user's click rate overall, the time, and a bias.
* **Actor** π(θ | s) = N(W s, diag σ²); **critic** V(s) a small network; advantages by GAE(γ, λ) over
  each user's own sequence of lists (steps away from the service are not decisions), the actor moved
  by the policy gradient of the advantage, the critic by regression on the returns.
* **Stage one** trains one actor-critic per auxiliary signal for that signal alone. **Stage two**
  trains the main actor for the main signal while keeping it close to each auxiliary actor:
  maximise E[A_main] − Σᵢ λᵢ KL(π ‖ πᵢ) (the paper's stage-two objective; we follow its gradient with
  the closed-form Gaussian KL, on-policy, rather than the paper's closed-form importance weighting of
  logged data, since the simulator can always collect fresh data).

Training is on the training users' worlds (a fresh seed each iteration), model selection and early
stopping on validation users (the deterministic policy, θ = W s): the validation return of the
signal trained for, and with a floor, only among iterations whose validation users keep the floor;
when none does, the iteration that came closest, its record marked ``"floor_met": false``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from penchant.models.training import torch_single_threaded
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation
from penchant.simulate.long_term_policies import FEATURES, Rerank, floor_kept, run_episode

STATE = ("user_appetite", "session_appetite", "session_steps", "session_click_rate", "misses_in_a_row",
         "click_rate", "time", "bias")
REWARDS = ("click", "watch", "like", "share", "novelty")
VALID_SEED = 7  # the validation world's seed, and its run's: every iteration is judged on the same users and draws


class GaussianActor(nn.Module):
    """π(θ | s) = N(W s, diag σ²) over the ranking weights; W starts at ``init`` on the last input
    (the bias of :data:`STATE`); ``n_state`` inputs (default those of :data:`STATE`)."""

    def __init__(self, init: np.ndarray | None = None, log_std: float = np.log(0.5), n_state: int = len(STATE)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(len(FEATURES), n_state, dtype=torch.float64))
        if init is not None:
            with torch.no_grad():
                self.weight[:, -1] = torch.as_tensor(np.asarray(init, dtype=np.float64))
        self.log_std = nn.Parameter(torch.full((len(FEATURES),), float(log_std), dtype=torch.float64))

    def mean(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.weight.T

    def log_prob(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean(states)) / self.log_std.exp()
        return (-0.5 * z ** 2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

    def kl(self, states: torch.Tensor, other: GaussianActor) -> torch.Tensor:
        """KL(self(·|s) ‖ other(·|s)) per state, closed form for diagonal Gaussians."""
        v1, v2 = (2 * self.log_std).exp(), (2 * other.log_std).exp()
        diff = self.mean(states) - other.mean(states).detach()
        return (other.log_std.detach() - self.log_std + (v1 + diff ** 2) / (2 * v2.detach()) - 0.5).sum(-1)


class ActorRerank(Rerank):
    """A :class:`Rerank` whose θ comes from ``actor`` for each user's state (see the module);
    ``explore``: sample θ (training) rather than take the mean, recording states and actions.
    ``steps``: the horizon the state's time is a share of (the one it was trained for).
    ``catalogue``: the world's :class:`~penchant.simulate.long_term.Catalogue` (or a world: only its
    catalogue is kept)."""

    def __init__(self, scores: np.ndarray, catalogue: Catalogue | LongTermWorld, actor: GaussianActor, *,
                 steps: int = 200, explore: bool = False, seed: int = 0) -> None:
        super().__init__(scores, np.zeros(len(FEATURES)), catalogue)
        self.actor, self.explore, self.steps = actor, explore, int(steps)
        self._noise = np.random.default_rng(seed)
        self._counts: np.ndarray | None = None  # (n, 5): session steps, session clicks, misses, steps, clicks
        self.record: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (step, users, states, actions)

    def observe(self, obs: Observation) -> None:
        n = len(obs.history)
        if self._counts is None or obs.step == 0:
            self._counts = np.zeros((n, 5))
        elif self._in_session is not None:
            shown = obs.shown                                # who was shown a list at the last step
            clicked = (obs.clicked >= 0) & shown
            c = self._counts
            c[shown, 0] += 1
            c[shown, 3] += 1
            c[clicked, 1] += 1
            c[clicked, 4] += 1
            c[clicked, 2] = 0
            c[shown & ~clicked, 2] += 1
            started = obs["in_session"] & ~self._in_session
            c[started, :3] = 0
        super().observe(obs)

    def state(self, users: np.ndarray) -> np.ndarray:
        """float64 (n, len(STATE)) for ``users``."""
        assert self._appetite is not None and self._counts is not None and self.obs is not None
        a, c = self._appetite[users], self._counts[users]
        return np.c_[(a[:, 0] + 0.5) / (a[:, 1] + 1.0), (a[:, 2] + 0.5) / (a[:, 3] + 1.0),
                     np.minimum(c[:, 0], 20) / 20, (c[:, 1] + 0.5) / (c[:, 0] + 1.0), np.minimum(c[:, 2], 5) / 5,
                     (c[:, 4] + 0.5) / (c[:, 3] + 1.0), np.full(len(users), self.obs["step"] / self.steps),
                     np.ones(len(users))]

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.obs is not None, "observe() first"
        states = self.state(users)
        with torch.no_grad():
            theta = self.actor.mean(torch.from_numpy(states)).numpy()
            if self.explore:
                theta = theta + self.actor.log_std.exp().numpy() * self._noise.standard_normal(theta.shape)
        if self.explore:
            self.record.append((self.obs["step"], users.copy(), states, theta))
        return self._rank(users, theta, k)


@dataclass
class Rollout:
    """One training episode as per-user sequences of lists: states (T, n, S), actions (T, n, 6),
    rewards (T, n) of the trained signal, ``acted`` (T, n) bool."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    acted: np.ndarray


@dataclass
class Recorded:
    """An exploring policy's episode: signals (name -> float (T, n), :data:`REWARDS`, ``novelty`` being
    the click's novelty), and its states (T, n, S), actions (T, n, 6) and ``acted`` (T, n) bool."""

    signals: dict[str, np.ndarray]
    states: np.ndarray
    actions: np.ndarray
    acted: np.ndarray


def record_episode(world: LongTermWorld, policy: ActorRerank, seed: int) -> Recorded:
    """Run an exploring ``policy`` for its ``steps`` and gather what it did and earned."""
    steps, n = policy.steps, world.n_users
    signals = {name: np.zeros((steps, n)) for name in REWARDS}
    t = [0]

    def on_step(earned: dict[str, np.ndarray], click_novelty: np.ndarray) -> None:
        for name in REWARDS:
            signals[name][t[0]] = click_novelty if name == "novelty" else earned[name]
        t[0] += 1

    run_episode(world, policy, steps, seed=seed, on_step=on_step)
    states = np.zeros((steps, n, policy.actor.weight.shape[1]))
    actions = np.zeros((steps, n, len(FEATURES)))
    acted = np.zeros((steps, n), dtype=bool)
    for step, users, s, a in policy.record:
        states[step, users], actions[step, users], acted[step, users] = s, a, True
    return Recorded(signals, states, actions, acted)


def rollout(world: LongTermWorld, scores: np.ndarray, actor: GaussianActor, signal: str, steps: int,
            seed: int) -> Rollout:
    """Run ``actor`` exploring in ``world`` for ``steps`` steps and collect its transitions, rewarded by ``signal``."""
    rec = record_episode(world, ActorRerank(scores, world.catalogue, actor, steps=steps, explore=True, seed=seed), seed)
    return Rollout(rec.states, rec.actions, rec.signals[signal] * rec.acted, rec.acted)


def advantages(values: np.ndarray, rollout: Rollout, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE over each user's own sequence of lists: (advantages, returns), float (T, n) each, zero
    where the user did not act. A user's sequence ends with the episode (a user who left earns 0)."""
    steps, n = rollout.rewards.shape
    adv = np.zeros((steps, n))
    next_value, next_adv = np.zeros(n), np.zeros(n)
    for t in range(steps - 1, -1, -1):
        a = rollout.acted[t]
        delta = rollout.rewards[t, a] + gamma * next_value[a] - values[t, a]
        adv[t, a] = delta + gamma * lam * next_adv[a]
        next_value[a], next_adv[a] = values[t, a], adv[t, a]
    return adv, (adv + values) * rollout.acted


def make_critic(n_state: int) -> nn.Module:
    """V(s): one hidden layer of 32 tanh units."""
    return nn.Sequential(nn.Linear(n_state, 32), nn.Tanh(), nn.Linear(32, 1)).double()


def update(actor: nn.Module, actor_opt: torch.optim.Optimizer, critic: nn.Module, critic_opt: torch.optim.Optimizer,
           data: Rollout, gamma: float, lam: float, actor_steps: int,
           references: list[tuple[GaussianActor, float]] = ()) -> None:
    """One actor-critic update on a rollout: GAE advantages from the critic (normalised), ``actor_steps``
    Adam steps on −A · log π(a | s) (+ Σ λ KL(π ‖ reference)), then 20 critic steps towards the returns.
    ``actor`` is anything with ``log_prob(states, actions)`` (and ``kl`` when given references)."""
    s = torch.from_numpy(data.states)
    with torch.no_grad():
        values = critic(s)[..., 0].numpy()
    adv, returns = advantages(values, data, gamma, lam)
    mask = torch.from_numpy(data.acted)
    s_act, a_act = s[mask], torch.from_numpy(data.actions)[mask]
    adv_t = torch.from_numpy(adv)[mask]
    adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
    for _ in range(actor_steps):
        actor_opt.zero_grad()
        loss = -(adv_t * actor.log_prob(s_act, a_act)).mean()
        for reference, weight in references:
            loss = loss + weight * actor.kl(s_act, reference).mean()
        loss.backward()
        actor_opt.step()
    ret_t = torch.from_numpy(returns)[mask]
    for _ in range(20):
        critic_opt.zero_grad()
        nn.functional.mse_loss(critic(s_act)[:, 0], ret_t).backward()
        critic_opt.step()


@torch_single_threaded()
def train_actor_critic(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *, signal: str = "click",
                       references: list[tuple[GaussianActor, float]] = (), floor: tuple[str, float] | None = None,
                       floor_share: float = 0.97, init: np.ndarray | None = None, iterations: int = 30,
                       patience: int = 8, steps: int = 200, gamma: float = 0.95, lam: float = 0.9,
                       actor_steps: int = 5, lr: float = 0.01, seed: int = 0,
                       progress: Callable[[str], None] | None = None) -> tuple[GaussianActor, list[dict]]:
    """An actor for ``signal``'s long-run return (see the module).

    Args:
        make_world: ``(split, seed) -> world`` for ``"train"`` and ``"valid"`` (disjoint users).
        references: ``(actor, λ)`` pairs: stage two's auxiliary actors and their KL weights.
        floor: ``(signal, value)`` as in :func:`~penchant.simulate.long_term_policies.floor_kept`: only
            iterations whose validation users keep it (share ≥ ``floor_share``) can be selected.
        init: the actor's starting θ (its bias column); default zeros, the greedy recommender.
    Returns:
        the selected actor and one record per iteration (trained on one thread: reproducible from the seed).
    """
    if signal not in REWARDS:
        raise ValueError(f"unknown signal {signal!r}; choose from {', '.join(REWARDS)}")
    torch.manual_seed(seed)
    actor, critic = GaussianActor(init), make_critic(len(STATE))
    actor_opt = torch.optim.Adam(actor.parameters(), lr=lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=0.01)
    selection, history = Selection(patience, floor_share), []
    for it in range(iterations):
        data = rollout(make_world("train", 1000 + it), scores, actor, signal, steps, seed + it)
        update(actor, actor_opt, critic, critic_opt, data, gamma, lam, actor_steps, references)
        world = make_world("valid", VALID_SEED)
        valid, kept = evaluate_policy(world, ActorRerank(scores, world.catalogue, actor, steps=steps), signal, floor)
        history.append({"iteration": it, "train": float(data.rewards.sum(axis=0).mean()), "valid": valid,
                        "valid_floor_share": kept, "std": actor.log_std.exp().tolist()})
        if progress is not None:
            progress(f"iteration {it + 1}: validation {signal} {valid:.3f}")
        if selection.offer(it, valid, kept, actor):
            break
    return selection.result(history), history


class Selection:
    """Model selection on validation users: the best iteration among those keeping the floor
    (``kept`` ≥ ``floor_share``; 1 without a floor), stopping ``patience`` iterations after it; when
    none keeps it, the one that came closest. :meth:`result` marks the chosen record."""

    def __init__(self, patience: int, floor_share: float = 0.97) -> None:
        self.patience, self.floor_share = patience, floor_share
        self.best, self.best_model, self.best_it, self.since = -np.inf, None, 0, 0
        self.closest, self.closest_model, self.closest_it = -1.0, None, 0

    def offer(self, it: int, valid: float, kept: float, model: object) -> bool:
        """Consider iteration ``it``'s model (copied if kept); True when training should stop."""
        if kept >= self.floor_share and valid > self.best:
            self.best, self.best_model, self.best_it, self.since = valid, copy.deepcopy(model), it, 0
        elif self.best_model is not None:
            self.since += 1
            return self.since >= self.patience
        elif kept > self.closest:
            self.closest, self.closest_model, self.closest_it = kept, copy.deepcopy(model), it
        return False

    def result(self, history: list[dict]) -> object:
        met = self.best_model is not None
        it = self.best_it if met else self.closest_it
        history[it]["selected"], history[it]["floor_met"] = True, met
        return self.best_model if met else self.closest_model


def evaluate_policy(world: LongTermWorld, policy: ActorRerank, signal: str = "click",
                    floor: tuple[str, float] | None = None) -> tuple[float, float]:
    """A deterministic ``policy``'s mean return of ``signal`` per user over its ``steps`` in ``world``
    (validation users, seed :data:`VALID_SEED`), and the share keeping ``floor`` (1 without)."""
    totals = np.zeros(world.n_users)

    def on_step(signals: dict[str, np.ndarray], click_novelty: np.ndarray) -> None:
        totals[:] += click_novelty if signal == "novelty" else signals[signal]

    episode = run_episode(world, policy, policy.steps, seed=VALID_SEED, on_step=on_step)
    return float(totals.mean()), (1.0 if floor is None else floor_kept(episode, *floor))


def train_two_stage(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *, main: str = "click",
                    auxiliary: dict[str, float], floor: tuple[str, float] | None = None, init: np.ndarray | None = None,
                    seed: int = 0, **kwargs) -> tuple[GaussianActor, dict]:
    """Stage one: an actor per auxiliary signal (name -> its KL weight λ); stage two: the main actor
    with the KL terms. Returns the main actor and each stage's records."""
    stage_one, records = [], {}
    for i, (name, weight) in enumerate(auxiliary.items()):
        actor, history = train_actor_critic(make_world, scores, signal=name, init=init, seed=seed + 100 * (i + 1),
                                            **kwargs)
        stage_one.append((actor, weight))
        records[f"stage one: {name}"] = history
    actor, history = train_actor_critic(make_world, scores, signal=main, references=stage_one, floor=floor,
                                        init=init, seed=seed, **kwargs)
    records["stage two"] = history
    return actor, records
