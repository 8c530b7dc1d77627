"""A hierarchical policy for users whose appetite for novelty changes from session to session.

After "Hierarchical Reinforcement Learning for Modeling User Novelty-Seeking Intent in Recommender
Systems" (Li et al., 2023): a high-level policy reads the user's state and sets an intent, a
low-level policy ranks for that intent.

* **High level**: at the start of each session and every ``option_steps`` lists after, a softmax
  policy over :data:`INTENTS` (``familiar`` or ``novel``) from the user's observable state
  (:data:`~penchant.simulate.actor_critic.STATE`: their appetite for novelty over all clicks and in
  this session among it). Its reward is the clicks earned until its next decision; its own critic
  and GAE over the user's sequence of decisions.
* **Low level**: the Gaussian ranking-weight actor of :mod:`penchant.simulate.actor_critic`, given the
  intent (one-hot) with the state. Its reward is the click plus an intrinsic reward for serving the
  intent: η · novelty of the click under ``novel``, η · (1 − novelty) under ``familiar``.
* Both learn together on fresh training worlds; the pair is selected on validation users' clicks
  (deterministic: the likelier intent, the mean weights) with early stopping.

In the long-term world each session is novelty-seeking or not (drawn from the user's static
propensity), which the world hides: :func:`intent_agreement` measures how often the high level's
intent matches the true session mode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from penchant.models.training import torch_single_threaded
from penchant.simulate.actor_critic import (
    STATE,
    VALID_SEED,
    ActorRerank,
    GaussianActor,
    Rollout,
    Selection,
    evaluate_policy,
    make_critic,
    record_episode,
    update,
)
from penchant.simulate.long_term import LongTermWorld
from penchant.simulate.long_term_policies import run_episode

INTENTS = ("familiar", "novel")


class IntentActor(nn.Module):
    """π(g | s) = softmax(V z(s)) over :data:`INTENTS`, z standardising the inputs (see ``standardise``)."""

    def __init__(self, n_state: int = len(STATE)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(len(INTENTS), n_state, dtype=torch.float64))
        # inputs are standardised by the first batch of decisions seen (the bias input kept at 1): with
        # every raw input positive, each weight's gradient has the bias's sign and the policy cannot
        # learn to depend on the state
        self.register_buffer("shift", torch.zeros(n_state, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_state, dtype=torch.float64))
        self.standardised = False

    def standardise(self, states: np.ndarray) -> None:
        """Fix the input standardisation from ``states`` (m, n_state), once."""
        if self.standardised or len(states) < 2:
            return
        shift, scale = states.mean(axis=0), states.std(axis=0)
        shift[-1], scale[-1] = 0.0, 1.0
        self.shift.copy_(torch.from_numpy(shift))
        self.scale.copy_(torch.from_numpy(np.where(scale > 1e-6, scale, 1.0)))
        self.standardised = True

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return ((states - self.shift) / self.scale) @ self.weight.T

    def log_prob(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π(g | s) for intents ``actions`` (…, 1) given as floats."""
        return torch.log_softmax(self.logits(states), dim=-1).gather(-1, actions.long()).squeeze(-1)


class HierarchicalRerank(ActorRerank):
    """See the module; ``explore`` samples both levels and records their decisions."""

    def __init__(self, scores: np.ndarray, world: LongTermWorld, low: GaussianActor, high: IntentActor, *,
                 option_steps: int = 3, steps: int = 200, explore: bool = False, seed: int = 0) -> None:
        super().__init__(scores, world, low, steps=steps, explore=explore, seed=seed)
        self.high, self.option_steps = high, int(option_steps)
        self.intent: np.ndarray | None = None   # (n,) index into INTENTS
        self.decisions: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (step, users, states, intents)

    def observe(self, obs: dict) -> None:
        super().observe(obs)
        assert self._counts is not None
        if self.intent is None or obs["step"] == 0:
            self.intent = np.zeros(len(obs["history"]), dtype=np.int64)
        users = np.flatnonzero(obs["in_session"] & (self._counts[:, 0] % self.option_steps == 0))
        if not len(users):
            return
        states = ActorRerank.state(self, users)
        with torch.no_grad():
            logits = self.high.logits(torch.from_numpy(states)).numpy()
        if self.explore:
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            intents = (self._noise.random(len(users)) < p[:, 1]).astype(np.int64)
            self.decisions.append((obs["step"], users, states, intents))
        else:
            intents = logits.argmax(axis=1)
        self.intent[users] = intents

    def state(self, users: np.ndarray) -> np.ndarray:
        """float64 (n, 2 + len(STATE)): the intent one-hot, then the user's state (the bias last)."""
        assert self.intent is not None
        return np.c_[np.eye(len(INTENTS))[self.intent[users]], super().state(users)]


def _decision_rollout(policy: HierarchicalRerank, clicks: np.ndarray) -> Rollout:
    """The high level's transitions: one per decision, rewarded with the clicks until the user's next
    decision (or the end)."""
    steps, n = clicks.shape
    states, actions = np.zeros((steps, n, len(STATE))), np.zeros((steps, n, 1))
    decided = np.zeros((steps, n), dtype=bool)
    for step, users, s, g in policy.decisions:
        states[step, users], actions[step, users, 0], decided[step, users] = s, g, True
    cumulative = np.vstack([np.zeros(n), np.cumsum(clicks, axis=0)])
    rewards, next_decision = np.zeros((steps, n)), np.full(n, steps)
    for t in range(steps - 1, -1, -1):
        d = np.flatnonzero(decided[t])
        rewards[t, d] = cumulative[next_decision[d], d] - cumulative[t, d]
        next_decision[d] = t
    return Rollout(states, actions, rewards, decided)


@torch_single_threaded()
def train_hierarchical(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *, eta: float = 0.5,
                       option_steps: int = 3, iterations: int = 30, patience: int = 8, steps: int = 200,
                       gamma: float = 0.95, lam: float = 0.9, actor_steps: int = 5, lr: float = 0.01, seed: int = 0,
                       progress: Callable[[str], None] | None = None) -> tuple[HierarchicalRerank, list[dict]]:
    """Train both levels (see the module) on ``make_world("train", ·)``, select on validation users
    (on one thread: reproducible from the seed). Returns the deterministic policy and one record per iteration."""
    torch.manual_seed(seed)
    low, high = GaussianActor(n_state=len(INTENTS) + len(STATE)), IntentActor()
    low_critic, high_critic = make_critic(len(INTENTS) + len(STATE)), make_critic(len(STATE))
    opts = [torch.optim.Adam(m.parameters(), lr=rate) for m, rate in
            ((low, lr), (low_critic, 0.01), (high, lr), (high_critic, 0.01))]
    selection, history = Selection(patience), []
    for it in range(iterations):
        world = make_world("train", 1000 + it)
        policy = HierarchicalRerank(scores, world, low, high, option_steps=option_steps, steps=steps, explore=True,
                                    seed=seed + it)
        rec = record_episode(world, policy, seed + it)
        s, a, acted = rec.states, rec.actions, rec.acted
        clicks, novelty = rec.signals["click"], rec.signals["novelty"]
        novel = s[..., 1]  # the intent each list was ranked for
        intrinsic = clicks * np.where(novel > 0.5, novelty, 1.0 - novelty)
        update(low, opts[0], low_critic, opts[1], Rollout(s, a, (clicks + eta * intrinsic) * acted, acted),
               gamma, lam, actor_steps)
        decisions = _decision_rollout(policy, clicks * acted)
        high.standardise(decisions.states[decisions.acted])
        update(high, opts[2], high_critic, opts[3], decisions, gamma, lam, actor_steps)
        valid_world = make_world("valid", VALID_SEED)
        valid, _ = evaluate_policy(valid_world, HierarchicalRerank(scores, valid_world, low, high,
                                                                   option_steps=option_steps, steps=steps))
        history.append({"iteration": it, "train": float((clicks * acted).sum(axis=0).mean()), "valid": valid,
                        "novel_share": float(novel[acted].mean())})
        if progress is not None:
            progress(f"iteration {it + 1}: validation click {valid:.3f}")
        if selection.offer(it, valid, 1.0, (low, high)):
            break
    low, high = selection.result(history)
    return HierarchicalRerank(scores, world, low, high, option_steps=option_steps, steps=steps), history


def intent_agreement(world: LongTermWorld, policy: HierarchicalRerank, steps: int = 200, *, seed: int = 0) -> dict:
    """Run ``policy`` and compare, for every list shown, its intent with the session's hidden mode:
    the share of lists ranked for ``novel`` in novelty-seeking sessions and in the others."""
    novel_in, lists_in, novel_out, lists_out = 0.0, 0.0, 0.0, 0.0

    def on_step(signals: dict[str, np.ndarray], click_novelty: np.ndarray) -> None:
        nonlocal novel_in, lists_in, novel_out, lists_out
        assert policy.intent is not None and policy._in_session is not None
        users = np.flatnonzero(policy._in_session)  # who was shown a list this step, and for which intent
        mode, intent = world.truth()["mode"][users] > 0.5, policy.intent[users] == 1
        novel_in, lists_in = novel_in + intent[mode].sum(), lists_in + mode.sum()
        novel_out, lists_out = novel_out + intent[~mode].sum(), lists_out + (~mode).sum()

    run_episode(world, policy, steps, seed=seed, on_step=on_step)
    return {"novel_share_in_novelty_sessions": float(novel_in / max(lists_in, 1)),
            "novel_share_in_other_sessions": float(novel_out / max(lists_out, 1)),
            "lists": int(lists_in + lists_out)}
