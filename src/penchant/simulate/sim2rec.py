"""Sim2Rec: a policy trained across a family of simulated worlds that recognises the world it is in.

After "Sim2Rec: A Simulator-based Decision-making Approach to Optimize Real-World Long-term User
Engagement in Sequential Recommender Systems" (Chen et al., ICDE 2023). A simulator is never the real
world (a *reality gap*); instead of trusting one, train in a *set of simulators* spanning what users
might be like, with an *environment-parameter extractor* that reads a user's own trajectory and says
which world this user behaves like, and a *context-aware policy* that acts on the extractor's answer.

* **The simulator set** (:class:`WorldFamily`): the long-term world
  (:class:`~penchant.simulate.long_term.LongTermWorld`) with four of its constants drawn from
  ranges: the choice ``temperature``, ``boredom_weight`` (how much boredom with a genre costs),
  ``novelty_weight`` (novelty-seeking sessions' appetite) and ``leave_rate`` (the leaving hazard).
  :meth:`WorldFamily.beyond` draws held-out worlds *outside* the ranges: the reality gap.
* **The extractor** (:class:`Extractor`): a GRU over each user's own sequence of lists: per list
  shown, what the platform logged (the click and its slot, watch, like, share, the clicked item's
  novelty and genre repetition against the user's earlier clicks, the list's mean novelty and
  repetition, whether the list opened a session and after how long away) and the action taken (the
  ranking weights θ). A linear head reads the state as the world's parameters, standardised to the
  training ranges (−1 … 1 inside them).
* **The policy** (:class:`Sim2RecRerank`): the Gaussian ranking-weight actor of
  :mod:`penchant.simulate.actor_critic` (θ ~ N(W s, σ²), the list the top-k of the recommender's score
  plus θ · the re-ranking features), its state the actor-critic's observable :data:`STATE` plus the
  extractor's estimate of the world's parameters. Trained by the same actor-critic update
  (:func:`~penchant.simulate.actor_critic.update`: GAE over each user's lists, a critic) on rollouts
  from several worlds of the family per iteration; model selection on validation users of fixed
  worlds of the family.

**What each part sees.** The extractor and the policy see only :class:`~penchant.simulate.long_term.Observation`
contents and the policy's own served lists and actions; never ``truth()``, ``utility()`` or the
world's parameters when acting. The parameters are the extractor's *supervised target during
training*: in sim-to-real training the simulators' parameters are known by construction.

**Simplifications, stated.** The paper trains the extractor through the policy's reinforcement-learning
loss (end to end); here it is trained by regression on the simulators' known parameters (an auxiliary
loss on the same rollouts, over the last :data:`BUFFER` worlds), and the policy reads its estimate,
detached. The paper's simulator set is learned from logs (an ensemble of user models); here it is the
hand-written world with four constants drawn from ranges. The policy is linear in its state (the
project's actor), so it adapts θ linearly in the estimated parameters.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from torch import nn

from penchant.models.training import TrainingStatus, torch_single_threaded
from penchant.simulate.actor_critic import (
    STATE,
    VALID_SEED,
    ActorRerank,
    GaussianActor,
    Rollout,
    Selection,
    make_critic,
    record_episode,
    update,
)
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation, WorldParams, novelty
from penchant.simulate.long_term_policies import Episode, run_episode

#: the extractor's inputs for one list shown to one user (see the module)
INPUTS = ("bias", "clicked", "slot_0", "slot_1", "slot_2", "slot_3", "slot_4", "watch", "like", "share",
          "click_novelty", "click_repetition", "list_novelty", "list_repetition", "session_start", "log_away",
          "theta_0", "theta_1", "theta_2", "theta_3", "theta_4", "theta_5")
#: worlds whose recorded trajectories the extractor is trained on (the latest ones)
BUFFER = 8
#: constants a family may not vary: they shape the action and the catalogue, not the users
STRUCTURAL = ("slate_size", "position_decay", "history", "published_share")


@dataclass(frozen=True)
class ParamRange:
    """One world constant (a float field of :class:`~penchant.simulate.long_term.WorldParams`) drawn
    uniformly from [low, high]."""

    name: str
    low: float
    high: float

    @property
    def centre(self) -> float:
        return (self.low + self.high) / 2

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


DEFAULT_RANGES = (ParamRange("temperature", 0.8, 1.25), ParamRange("boredom_weight", 0.3, 0.8),
                  ParamRange("novelty_weight", 1.0, 3.0), ParamRange("leave_rate", 0.15, 0.45))


@dataclass(frozen=True)
class WorldFamily:
    """A set of simulators: ``base`` with each of ``ranges`` drawn uniformly (see the module).

    Raises ValueError for a constant WorldParams lacks, a structural one (:data:`STRUCTURAL`), a name
    given twice, an empty or inverted range, or a non-positive temperature."""

    ranges: tuple[ParamRange, ...] = DEFAULT_RANGES
    base: WorldParams = field(default_factory=WorldParams)

    def __post_init__(self) -> None:
        known = {f.name for f in fields(WorldParams)} - set(STRUCTURAL)
        names = [r.name for r in self.ranges]
        for r in self.ranges:
            if r.name not in known:
                raise ValueError(f"a world family varies one of {', '.join(sorted(known))}, not {r.name!r}")
            if not r.low < r.high:
                raise ValueError(f"{r.name}: the range [{r.low}, {r.high}] is empty")
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"a world family needs distinct parameters, not {names}")
        if any(r.name == "temperature" and r.low <= 0 for r in self.ranges):
            raise ValueError("temperature must stay above 0")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.ranges)

    def draw(self, rng: np.random.Generator, n: int) -> list[WorldParams]:
        """``n`` worlds' constants, each range drawn uniformly."""
        lows, highs = np.array([r.low for r in self.ranges]), np.array([r.high for r in self.ranges])
        return [self.params(v) for v in lows + (highs - lows) * rng.random((n, len(self.ranges)))]

    def beyond(self, rng: np.random.Generator, n: int, margin: tuple[float, float] = (0.15, 0.6)) -> list[WorldParams]:
        """``n`` held-out worlds *outside* every range: each constant drawn uniformly from
        [high + m₀·w, high + m₁·w] or [low − m₁·w, low − m₀·w] (a fair coin per constant and world; w the
        range's width), kept ≥ 0 (temperature ≥ 0.1). The reality gap the policy is judged across."""
        r = self.ranges
        width = np.array([x.high - x.low for x in r])
        offset = width * (margin[0] + (margin[1] - margin[0]) * rng.random((n, len(r))))
        above = rng.random((n, len(r))) < 0.5
        values = np.where(above, np.array([x.high for x in r]) + offset, np.array([x.low for x in r]) - offset)
        floor = np.array([0.1 if x.name == "temperature" else 0.0 for x in r])
        return [self.params(v) for v in np.maximum(values, floor)]

    def params(self, values: np.ndarray) -> WorldParams:
        """``base`` with the family's constants set to ``values`` (k,)."""
        return replace(self.base, **{name: float(v) for name, v in zip(self.names, values)})

    def values(self, params: WorldParams) -> np.ndarray:
        """float (k,): the family's constants of ``params``."""
        return np.array([getattr(params, name) for name in self.names], dtype=np.float64)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """(values − centre) / half-width per constant: −1 … 1 inside the ranges; (…, k) → (…, k)."""
        centre = np.array([r.centre for r in self.ranges])
        return (np.asarray(values, dtype=np.float64) - centre) / np.array([r.half_width for r in self.ranges])

    def world(self, template: LongTermWorld, params: WorldParams, n_users: int, users: np.ndarray,
              seed: int) -> LongTermWorld:
        """A world of this family: ``template``'s catalogue with ``n_users`` simulated users drawn from
        the real ``users``, acting under ``params`` (which must keep the template's structural constants)."""
        changed = [name for name in STRUCTURAL if getattr(params, name) != getattr(template.params, name)]
        if changed:
            raise ValueError(f"a family's worlds share the template's {', '.join(changed)}")
        world = template.population(n_users, users, seed)
        world.params = params
        return world


class Extractor(nn.Module):
    """The environment-parameter extractor: a GRU over one user's lists (float64).

    ``step(x (n, len(INPUTS)), h (n, hidden)) -> h`` after one more list; ``read(h) -> (n, k)``
    standardised parameters; :meth:`sequence` runs whole sequences (training)."""

    def __init__(self, n_params: int, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = hidden
        self.gru = nn.GRU(len(INPUTS), hidden, batch_first=True).double()
        self.head = nn.Linear(hidden, n_params).double()

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.gru(x[:, None], h[None].contiguous())[1][0]

    def read(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h)

    def sequence(self, lists: torch.Tensor) -> torch.Tensor:
        """Estimates after each of a user's lists: ``lists`` (n, L, F) -> (n, L, k)."""
        return self.head(self.gru(lists)[0])


def per_user(inputs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's own sequence of lists from per-step records: ``inputs`` (T, n, F) and ``mask``
    (T, n) bool -> (n, L, F) (padded with zeros after a user's last list; L the most lists) and the
    valid positions (n, L) bool."""
    steps, users = np.nonzero(mask)
    position = (np.cumsum(mask, axis=0) - 1)[steps, users]
    length = int(mask.sum(axis=0).max()) if mask.any() else 1
    lists = np.zeros((mask.shape[1], length, inputs.shape[2]))
    valid = np.zeros((mask.shape[1], length), dtype=bool)
    lists[users, position], valid[users, position] = inputs[steps, users], True
    return lists, valid


class Sim2RecRerank(ActorRerank):
    """The context-aware policy (see the module): :class:`~penchant.simulate.actor_critic.ActorRerank`
    whose state is :data:`STATE` plus the extractor's estimate (k,) of the world's standardised
    parameters (clipped to ±3), the extractor's GRU state moved by each list's logged outcome.

    ``extractor`` None: the same policy without the estimate (the family-trained ablation).
    ``record_inputs``: keep each step's extractor inputs (:meth:`trajectories`) for training it."""

    def __init__(self, scores: np.ndarray, catalogue: Catalogue | LongTermWorld, actor: GaussianActor,
                 extractor: Extractor | None, *, steps: int = 200, explore: bool = False, record_inputs: bool = False,
                 seed: int = 0) -> None:
        super().__init__(scores, catalogue, actor, steps=steps, explore=explore, seed=seed)
        self.extractor, self.record_inputs = extractor, record_inputs
        self.inputs: list[tuple[int, np.ndarray, np.ndarray]] = []  # (step, users, inputs (n, F))
        self._h: torch.Tensor | None = None
        self._served: np.ndarray | None = None  # (n, k) last list each user was shown
        self._offered: np.ndarray | None = None  # (n, 2 + 6): that list's mean novelty and repetition, θ
        self._away = np.zeros(0)
        self._new_session = np.zeros(0, dtype=bool)

    @torch_single_threaded()
    def observe(self, obs: Observation) -> None:
        n = len(obs.history)
        if self._h is None or obs.step == 0:
            hidden = 0 if self.extractor is None else self.extractor.hidden
            self._h = torch.zeros(n, hidden, dtype=torch.float64)
            self._served, self._offered = np.zeros((n, 5), dtype=np.int64), np.zeros((n, 8))
            self._away, self._new_session = np.zeros(n), np.zeros(n, dtype=bool)
            self.inputs = []
        else:
            users = np.flatnonzero(obs.shown)
            if len(users):
                x = self._inputs(obs, users)
                if self.record_inputs:
                    self.inputs.append((obs.step - 1, users, x))
                if self.extractor is not None:
                    with torch.no_grad():
                        self._h[users] = self.extractor.step(torch.from_numpy(x), self._h[users])
        previous = None if obs.step == 0 else self._in_session
        super().observe(obs)
        # how long each user was away before the list they are shown now opens a session
        started = obs.in_session & (np.zeros(n, dtype=bool) if previous is None else ~previous)
        self._new_session = started
        self._away = np.where(obs.in_session, np.where(started, self._away, 0.0), self._away + 1.0)

    def _inputs(self, obs: Observation, users: np.ndarray) -> np.ndarray:
        """float (n, len(INPUTS)): what was logged of the last list each of ``users`` was shown."""
        assert self._served is not None and self._offered is not None
        item = obs.clicked[users]
        hit = item >= 0
        slots = np.zeros((len(users), 5))
        if hit.any():
            served = self._served[users[hit]]
            slots[np.flatnonzero(hit), (served == item[hit, None]).argmax(axis=1)] = 1.0
        click_nov, click_rep = np.zeros(len(users)), np.zeros(len(users))
        if hit.any():
            before = obs.history[users[hit], 1:]  # the clicks before this one
            click_nov[hit] = novelty(self.similarity, before, item[hit, None])[:, 0]
            click_rep[hit] = self._repetition(before, item[hit, None])[:, 0]
        s = obs.signals
        return np.c_[np.ones(len(users)), hit, slots, s["watch"][users], s["like"][users], s["share"][users],
                     click_nov, click_rep, self._offered[users, :2], self._new_session[users],
                     np.log1p(self._away[users]) / 3.0, np.tanh(self._offered[users, 2:] / 3.0)]

    def _repetition(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float (n, k): the share of ``items``' (n, k) genres among the ``history`` (n, H) clicks' genres."""
        recent = np.where((history >= 0)[:, :, None], self.genres[np.maximum(history, 0)], 0.0).sum(axis=1)
        return np.einsum("ng,nkg->nk", recent, self.genres[items]) / (self.genre_counts[items] * history.shape[1])

    def estimate(self, users: np.ndarray) -> np.ndarray:
        """float (n, k): the extractor's standardised estimate of the world's parameters for ``users``."""
        assert self.extractor is not None and self._h is not None
        with torch.no_grad():
            return self.extractor.read(self._h[users]).numpy()

    def state(self, users: np.ndarray) -> np.ndarray:
        base = super().state(users)
        if self.extractor is None:
            return base
        return np.c_[base[:, :-1], np.clip(self.estimate(users), -3.0, 3.0), base[:, -1:]]  # the bias stays last

    @torch_single_threaded()
    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self.obs is not None and self._offered is not None and self._served is not None, "observe() first"
        states = self.state(users)
        with torch.no_grad():
            theta = self.actor.mean(torch.from_numpy(states)).numpy()
        if self.explore:
            theta = theta + self.actor.log_std.exp().detach().numpy() * self._noise.standard_normal(theta.shape)
            self.record.append((self.obs["step"], users.copy(), states, theta))
        slates, propensity = self._rank(users, theta, k)
        history = self.obs.history[users]
        self._served[users, :k] = slates
        self._offered[users] = np.c_[novelty(self.similarity, history, slates).mean(axis=1),
                                     self._repetition(history, slates).mean(axis=1), theta]
        return slates, propensity

    def trajectories(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The recorded extractor inputs as float (T, n, F) and the mask bool (T, n) of lists shown."""
        assert self._h is not None
        n = len(self._h)
        x, mask = np.zeros((steps, n, len(INPUTS))), np.zeros((steps, n), dtype=bool)
        for step, users, values in self.inputs:
            if step < steps:
                x[step, users], mask[step, users] = values, True
        return x, mask


def n_state(family: WorldFamily, extractor: bool = True) -> int:
    """The policy's state size: :data:`STATE` plus one estimate per family constant (with an extractor)."""
    return len(STATE) + (len(family.names) if extractor else 0)


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Per-user arrays (n_i, L_i, ...) stacked along users, padded with zeros to the longest L."""
    length = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, [(0, 0), (0, length - p.shape[1])] + [(0, 0)] * (p.ndim - 2)) for p in parts])


@torch_single_threaded()
def fit_extractor(extractor: Extractor, optimizer: torch.optim.Optimizer,
                  data: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator, *, steps: int = 10,
                  batch: int = 128, window: int = 64) -> list[float]:
    """``steps`` Adam steps of :func:`extractor_loss` on batches of ``batch`` users of ``data`` (per world:
    :func:`per_user`'s lists (n, L, F) and valid (n, L), and the standardised parameters (n, k)), each
    user's first ``window`` lists. Returns each step's loss."""
    lists, valid = (torch.from_numpy(_stack([d[i][:, :window] for d in data])) for i in (0, 1))
    target = torch.from_numpy(np.concatenate([d[2] for d in data]))
    losses = []
    for _ in range(steps):
        chosen = torch.from_numpy(rng.choice(len(lists), size=min(batch, len(lists)), replace=False))
        optimizer.zero_grad()
        loss = extractor_loss(extractor, lists[chosen], valid[chosen], target[chosen])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@torch_single_threaded()
def trajectory_data(policy: Sim2RecRerank, world: LongTermWorld, family: WorldFamily, steps: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``policy`` (recording its extractor inputs) run in ``world``: each user's lists (n, L, F), valid
    (n, L) and the world's standardised parameters (n, k), the extractor's training data (the target is
    known in a simulator; see the module)."""
    policy.record_inputs = True
    run_episode(world, policy, steps, seed=seed)
    lists, valid = per_user(*policy.trajectories(steps))
    target = np.broadcast_to(family.standardise(family.values(world.params)), (world.n_users, len(family.names)))
    return lists, valid, target.copy()


def extractor_loss(extractor: Extractor, lists: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the estimates after each list (``lists`` (n, L, F), ``valid`` (n, L) bool,
    from :func:`per_user`) against each user's world's standardised parameters ``targets`` (n, k)."""
    err = ((extractor.sequence(lists) - targets[:, None]) ** 2).mean(-1)
    return (err * valid).sum() / valid.sum().clamp(min=1)


@torch_single_threaded()
def train_sim2rec(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *,
                  family: WorldFamily = WorldFamily(), extractor: bool = True, iterations: int = 30,
                  worlds_per_iteration: int = 2, users_per_world: int | None = None, valid_worlds: int = 2,
                  patience: int = 8, steps: int = 200, gamma: float = 0.95, lam: float = 0.9, actor_steps: int = 5,
                  lr: float = 0.01, extractor_steps: int = 10, extractor_batch: int = 128, window: int = 64,
                  extractor_lr: float = 0.01, hidden: int = 32,
                  seed: int = 0, progress: Callable[[str], None] | None = None) -> tuple[Sim2RecRerank, list[dict]]:
    """Sim2Rec's training (see the module): each iteration draws ``worlds_per_iteration`` worlds of
    ``family`` (``users_per_world`` training users each), runs the exploring policy in each, takes one
    actor-critic update on all of them together and ``extractor_steps`` Adam steps of the extractor's
    regression (batches of ``extractor_batch`` users, each user's first ``window`` lists) on the
    last :data:`BUFFER` worlds' trajectories; the deterministic policy is scored on
    ``valid_worlds`` fixed worlds of the family (validation users) and the best iteration kept
    (early stopping after ``patience``). ``extractor=False``: the same without the extractor.

    Args:
        make_world: ``(split, seed) -> world`` (e.g. :class:`~penchant.simulate.experiment.Worlds`);
            its worlds' catalogue and user pools give the family's worlds.
        users_per_world: training users per world (default: as many as ``make_world("train", …)`` has);
            each validation world has ``make_world("valid", …)``'s users / ``valid_worlds``.
    Returns:
        the selected policy (deterministic, no recording) and one record per iteration.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    template, valid_template = make_world("train", seed), make_world("valid", seed)
    pools = {"train": template.user_pool, "valid": valid_template.user_pool}
    users_per_world = users_per_world or template.n_users
    valid_users = max(1, valid_template.n_users // valid_worlds)
    k = len(family.names)
    actor, critic = GaussianActor(n_state=n_state(family, extractor)), make_critic(n_state(family, extractor))
    ext = Extractor(k, hidden) if extractor else None
    actor_opt = torch.optim.Adam(actor.parameters(), lr=lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=0.01)
    ext_opt = torch.optim.Adam(ext.parameters(), lr=extractor_lr) if ext is not None else None
    valid_params = family.draw(np.random.default_rng(VALID_SEED), valid_worlds)
    buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    selection, history, start = Selection(patience), [], time.monotonic()

    def make(params: WorldParams, split: str, n: int, world_seed: int) -> LongTermWorld:
        return family.world(template, params, n, pools[split], world_seed)

    for it in range(iterations):
        parts, losses = [], []
        for j, params in enumerate(family.draw(rng, worlds_per_iteration)):
            world_seed = 1000 + it * worlds_per_iteration + j
            world = make(params, "train", users_per_world, world_seed)
            policy = Sim2RecRerank(scores, world.catalogue, actor, ext, steps=steps, explore=True,
                                   record_inputs=ext is not None, seed=seed + world_seed)
            rec = record_episode(world, policy, world_seed)
            parts.append(Rollout(rec.states, rec.actions, rec.signals["click"] * rec.acted, rec.acted))
            if ext is not None:
                lists, valid_lists = per_user(*policy.trajectories(steps))
                target = np.broadcast_to(family.standardise(family.values(params)), (world.n_users, k))
                buffer = [*buffer, (lists, valid_lists, target)][-BUFFER:]
        data = Rollout(*(np.concatenate([getattr(p, f) for p in parts], axis=1)
                         for f in ("states", "actions", "rewards", "acted")))
        update(actor, actor_opt, critic, critic_opt, data, gamma, lam, actor_steps)
        if ext is not None and ext_opt is not None:
            losses = fit_extractor(ext, ext_opt, buffer, rng, steps=extractor_steps, batch=extractor_batch, window=window)
        valid = float(np.mean([evaluate(make(p, "valid", valid_users, VALID_SEED), scores, actor, ext, steps).returns["click"].mean()
                               for p in valid_params]))
        history.append({"iteration": it, "train": float(data.rewards.sum(axis=0).mean()), "valid": valid,
                        "extractor_loss": float(np.mean(losses)) if losses else None,
                        "std": actor.log_std.exp().tolist()})
        if progress is not None:
            status = TrainingStatus(it + 1, iterations, valid, max(valid, selection.best), time.monotonic() - start)
            progress(f"iteration {it + 1}/{iterations}: validation clicks {valid:.2f} (best {status.best:.2f})"
                     + (f", extractor loss {np.mean(losses):.3f}" if losses else "")
                     + ("" if status.eta_seconds is None else f" · ETA ≤ {status.eta_seconds:.0f}s"))
        if selection.offer(it, valid, 1.0, (actor, ext)):
            break
    best_actor, best_ext = selection.result(history)
    return Sim2RecRerank(scores, template.catalogue, best_actor, best_ext, steps=steps), history


def evaluate(world: LongTermWorld, scores: np.ndarray, actor: GaussianActor, extractor: Extractor | None,
             steps: int, seed: int = VALID_SEED) -> Episode:
    """The deterministic policy of ``actor`` and ``extractor`` run in ``world`` for ``steps`` steps."""
    return run_episode(world, Sim2RecRerank(scores, world.catalogue, actor, extractor, steps=steps), steps, seed=seed)


@torch_single_threaded()
def recovery(policy: Sim2RecRerank, world: LongTermWorld, family: WorldFamily, *, steps: int = 200, seed: int = 0,
             min_lists: int = 10) -> dict:
    """How well the extractor recovers ``world``'s parameters (a report: reads ``world.params``).

    Runs ``policy`` in ``world``; for each user shown at least ``min_lists`` lists, the extractor's
    final estimate against the truth, in the family's standardised units (1 = a half-width of the
    training range). Returns per constant: the truth, the users' mean estimate, the root mean squared
    error of users' estimates, that of the mean predictor (the training ranges' centre, 0 standardised),
    and the error of the users' mean estimate; ``users`` counted; and ``episode`` (the run's Episode)."""
    if policy.extractor is None:
        raise ValueError("this policy has no extractor")
    acting = copy.copy(policy)
    acting.record_inputs = True
    episode = run_episode(world, acting, steps, seed=seed)
    _, mask = acting.trajectories(steps)
    users = np.flatnonzero(mask.sum(axis=0) >= min_lists)
    truth = family.standardise(family.values(world.params))
    est = acting.estimate(users) if len(users) else np.full((1, len(truth)), np.nan)
    out: dict = {"users": len(users), "episode": episode}
    for i, name in enumerate(family.names):
        e = est[:, i]
        out[name] = {"truth": float(truth[i]), "mean_estimate": float(e.mean()),
                     "rmse": float(np.sqrt(np.mean((e - truth[i]) ** 2))), "rmse_mean_predictor": float(abs(truth[i])),
                     "error_of_mean_estimate": float(abs(e.mean() - truth[i]))}
    return out


@torch_single_threaded()
def reality_gap(worlds: Callable[[str, int], LongTermWorld], policies: dict[str, object], family: WorldFamily, *,
                held_out: int = 6, in_range: int = 0, steps: int = 200, seed: int = 0) -> dict:
    """Each of ``policies`` (label -> a policy that observes and acts) on the test users of ``held_out``
    worlds drawn outside the family's ranges (:meth:`WorldFamily.beyond`) and ``in_range`` worlds drawn
    inside them, all from ``seed``; every policy meets the same worlds and draws (common random numbers).

    Returns ``{"worlds": [{"kind", "params", label: {"click", "watch", "retention"} per user, ...}],
    "recovery": {label: [per held-out world :func:`recovery`]}}`` (policies with an extractor), a report
    that reads the worlds' parameters."""
    rng = np.random.default_rng(seed)
    test = worlds("test", seed)
    drawn = [("held_out", p) for p in family.beyond(rng, held_out)] + [("in_range", p) for p in family.draw(rng, in_range)]
    rows, found = [], {label: [] for label, p in policies.items() if getattr(p, "extractor", None) is not None}
    for j, (kind, params) in enumerate(drawn):
        row: dict = {"kind": kind, "params": dict(zip(family.names, family.values(params).tolist()))}
        for label, policy in policies.items():
            world = family.world(test, params, test.n_users, test.user_pool, seed + j)
            if label in found:
                found[label].append(recovery(policy, world, family, steps=steps, seed=seed + j))
                ep = found[label][-1].pop("episode")
            else:
                ep = run_episode(world, policy, steps, seed=seed + j)
            row[label] = {"click": float(ep.returns["click"].mean()), "watch": float(ep.returns["watch"].mean()),
                          "retention": float(ep.retained.mean())}
        rows.append(row)
    return {"worlds": rows, "recovery": found}
