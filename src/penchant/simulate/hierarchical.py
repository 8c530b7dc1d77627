"""A hierarchical policy for users whose appetite for novelty changes from session to session.

After "Hierarchical Reinforcement Learning for Modeling User Novelty-Seeking Intent in Recommender
Systems" (Li et al., 2023): a high-level policy infers the session's intent from what the user does
and sets it, a low-level policy ranks for that intent.

* **Intent inference** (:class:`IntentModel`), from the session's own signals only: each list's
  click or miss given how novel the list was (its mean novelty against the user's recent clicks,
  x). A novelty-seeking user finds novel lists more attractive; so the model is a mixture over the
  session's hidden mode m ∈ {0, 1} of P(click | m) = σ(c₀ + c₁ logit r + (c₂ + m β) x), r the user's
  click rate so far, with the prior of m the user's own past sessions' posteriors shrunk to the
  population's share π. Its parameters are fitted by EM on the policy's own training logs (the
  hidden mode is never read); acting, the belief b = log-odds of m = 1 starts each session at the
  user's prior and adds each list's log-likelihood ratio.
* **High level**: at the start of each session and every ``option_steps`` lists after, a softmax
  policy over :data:`INTENTS` (``familiar``, ``novel``) whose logit for ``novel`` is the belief b
  plus a learned correction from the user's observable state (:data:`~penchant.simulate.actor_critic.STATE`,
  standardised); its reward is the clicks earned until its next decision, its own critic and GAE
  over the user's sequence of decisions.
* **Low level**: the Gaussian ranking-weight actor of :mod:`penchant.simulate.actor_critic`, given the
  intent (one-hot) with the state. Its reward is the click plus an intrinsic reward for serving the
  intent: η · novelty of the click under ``novel``, η · (1 − novelty) under ``familiar``.
* Both learn together on fresh training worlds (the intent model refitted on each iteration's logs
  with the ones before); the set is selected on validation users' clicks (deterministic: the likelier
  intent, the mean weights) with early stopping.

Departure from the paper: its high level learns the intent from the reward alone; here that was
measured not to find the session's mode (it ranked for ``novel`` in 25% of the lists of
novelty-seeking sessions and 28% of the others), so the high level acts on an explicit belief
(a POMDP belief state) and RL learns only a correction to it.

:func:`intent_agreement` (a report: it reads the world's hidden mode) measures how often the high
level's intent matches each session's true mode, against chance and the majority mode.
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
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation, novelty
from penchant.simulate.long_term_policies import run_episode

INTENTS = ("familiar", "novel")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


class IntentModel:
    """P(click | m, x, r) = σ(c₀ + c₁ logit r + (c₂ + m β) x) with P(m = 1) = π (see the module);
    ``coef`` = (c₀, c₁, c₂, β). The default (β = 0) carries no evidence: every belief stays at the prior."""

    def __init__(self, coef: np.ndarray | None = None, share: float = 0.5) -> None:
        self.coef = np.zeros(4) if coef is None else np.asarray(coef, dtype=np.float64)
        self.share = float(share)

    def _logits(self, x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c0, c1, c2, beta = self.coef
        base = c0 + c1 * _logit(r) + c2 * x
        return base, base + beta * x

    def evidence(self, clicked: np.ndarray, x: np.ndarray, r: np.ndarray) -> np.ndarray:
        """float (n,): log P(outcome | m = 1) − log P(outcome | m = 0) of lists of mean novelty ``x``
        (n,) shown to users of click rate ``r`` (n,), ``clicked`` (n,) bool."""
        z0, z1 = self._logits(x, r)
        sign = np.where(clicked, 1.0, -1.0)
        return _log_sigmoid(sign * z1) - _log_sigmoid(sign * z0)

    @classmethod
    def fit(cls, session: np.ndarray, x: np.ndarray, r: np.ndarray, clicked: np.ndarray, *,
            iterations: int = 30) -> IntentModel:
        """EM over logged lists: ``session`` (N,) int ids, ``x`` list novelty, ``r`` the user's click rate
        before it, ``clicked`` bool, all (N,). E-step: each session's posterior of m = 1 from all its lists;
        M-step: the click model by weighted logistic regression (Newton steps) and π the mean posterior.
        The mode is the component whose clicks rise more with novelty (β ≥ 0)."""
        _, sid = np.unique(session, return_inverse=True)
        y = clicked.astype(np.float64)
        lr = _logit(r)
        design = np.c_[np.ones(len(x)), lr, x]
        model = cls(np.r_[cls._newton(design, y, np.ones(len(x)), np.zeros(3)), 1.0], 0.5)
        for _ in range(iterations):
            z0, z1 = model._logits(x, r)
            sign = 2 * y - 1
            gap = np.bincount(sid, _log_sigmoid(sign * z1) - _log_sigmoid(sign * z0))
            q = 1.0 / (1.0 + np.exp(-np.clip(_logit(np.array(model.share)) + gap, -30, 30)))
            w = q[sid]
            both = np.r_[np.c_[design, np.zeros(len(x))], np.c_[design, x]]
            coef = cls._newton(both, np.r_[y, y], np.r_[1 - w, w], model.coef)
            model = cls(coef, float(np.clip(q.mean(), 0.02, 0.98)))
        if model.coef[3] < 0:  # name the component whose clicks rise with novelty "novelty-seeking"
            c0, c1, c2, beta = model.coef
            model = cls(np.array([c0, c1, c2 + beta, -beta]), 1.0 - model.share)
        return model

    @staticmethod
    def _newton(design: np.ndarray, y: np.ndarray, weight: np.ndarray, start: np.ndarray, steps: int = 8) -> np.ndarray:
        """Weighted logistic regression by Newton's method (a small ridge keeps it finite)."""
        coef = start.astype(np.float64).copy()
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-(design @ coef)))
            grad = design.T @ (weight * (y - p)) - 1e-3 * coef
            hess = (design * (weight * p * (1 - p))[:, None]).T @ design + 1e-3 * np.eye(len(coef))
            coef += np.linalg.solve(hess, grad)
        return coef


class IntentActor(nn.Module):
    """π(g | s) = softmax of (0, b + V z(s)) over :data:`INTENTS`: the belief b (the first input) plus a
    learned correction from the rest of the state, z standardising those inputs (see ``standardise``)."""

    def __init__(self, n_state: int = 1 + len(STATE)) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, n_state - 1, dtype=torch.float64))
        # inputs are standardised by the first batch of decisions seen (the bias input kept at 1): with
        # every raw input positive, each weight's gradient has the bias's sign and the policy cannot
        # learn to depend on the state
        self.register_buffer("shift", torch.zeros(n_state - 1, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_state - 1, dtype=torch.float64))
        self.standardised = False

    def standardise(self, states: np.ndarray) -> None:
        """Fix the input standardisation from ``states`` (m, n_state), once (the belief is not standardised)."""
        if self.standardised or len(states) < 2:
            return
        rest = states[:, 1:]
        shift, scale = rest.mean(axis=0), rest.std(axis=0)
        shift[-1], scale[-1] = 0.0, 1.0
        self.shift.copy_(torch.from_numpy(shift))
        self.scale.copy_(torch.from_numpy(np.where(scale > 1e-6, scale, 1.0)))
        self.standardised = True

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """(…, 2): 0 for ``familiar``, the belief plus the correction for ``novel``."""
        novel = states[..., 0] + (((states[..., 1:] - self.shift) / self.scale) @ self.weight.T)[..., 0]
        return torch.stack([torch.zeros_like(novel), novel], dim=-1)

    def log_prob(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π(g | s) for intents ``actions`` (…, 1) given as floats."""
        return torch.log_softmax(self.logits(states), dim=-1).gather(-1, actions.long()).squeeze(-1)


class HierarchicalRerank(ActorRerank):
    """See the module; ``explore`` samples both levels and records their decisions and the lists the
    intent model is fitted on. ``intent``: None (inferred by the high level) or a fixed intent index for
    every list (to measure what the inferred intent is worth)."""

    def __init__(self, scores: np.ndarray, catalogue: Catalogue | LongTermWorld, low: GaussianActor,
                 high: IntentActor, model: IntentModel | None = None, *, option_steps: int = 3, steps: int = 200,
                 explore: bool = False, seed: int = 0, intent: int | None = None) -> None:
        super().__init__(scores, catalogue, low, steps=steps, explore=explore, seed=seed)
        self.high, self.model, self.option_steps = high, model or IntentModel(), int(option_steps)
        self.fixed_intent = intent
        self.intent: np.ndarray | None = None   # (n,) index into INTENTS
        self.decisions: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (step, users, states, intents)
        self.lists: list[np.ndarray] = []       # (m, 4) per step: session id, list novelty, click rate before, clicked
        self._belief: np.ndarray | None = None  # (n,) log-odds that this session seeks novelty
        self._sessions: np.ndarray | None = None  # (n, 3): sessions started, Σ past sessions' posteriors, this one's id
        self._last: np.ndarray | None = None    # (n, 2): the last list's mean novelty and the click rate before it

    def observe(self, obs: Observation) -> None:
        n = len(obs.history)
        fresh = self.intent is None or obs.step == 0
        if fresh:
            self.intent = np.zeros(n, dtype=np.int64)
            self._belief, self._sessions, self._last = np.zeros(n), np.zeros((n, 3)), np.zeros((n, 2))
        assert self._belief is not None and self._sessions is not None and self._last is not None
        if not fresh:  # the last list's outcome is evidence about this session's mode
            shown = np.flatnonzero(obs.shown)
            clicked = obs.clicked[shown] >= 0
            x, r = self._last[shown, 0], self._last[shown, 1]
            self._belief[shown] += self.model.evidence(clicked, x, r)
            if self.explore:
                self.lists.append(np.c_[self._sessions[shown, 2], x, r, clicked])
        previous = np.zeros(n, dtype=bool) if fresh else self._in_session.copy()
        super().observe(obs)
        assert self._counts is not None
        started = np.flatnonzero(obs.in_session & ~previous)
        if len(started):  # the last session's posterior joins the user's record; the new one starts at the prior
            s = self._sessions
            had = started[s[started, 0] > 0]
            s[had, 1] += 1.0 / (1.0 + np.exp(-self._belief[had]))
            prior = (s[started, 1] + 2 * self.model.share) / (s[started, 0] + 2)
            s[started, 0] += 1
            s[started, 2] = started * 100_000 + s[started, 0]
            self._belief[started] = _logit(prior)
        users = np.flatnonzero(obs.in_session & (self._counts[:, 0] % self.option_steps == 0))
        if not len(users):
            return
        if self.fixed_intent is not None:
            self.intent[users] = self.fixed_intent
            return
        states = self.high_state(users)
        with torch.no_grad():
            logits = self.high.logits(torch.from_numpy(states)).numpy()
        if self.explore:
            p_novel = 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))
            intents = (self._noise.random(len(users)) < p_novel).astype(np.int64)
            self.decisions.append((obs.step, users, states, intents))
        else:
            intents = logits.argmax(axis=1)
        self.intent[users] = intents

    def high_state(self, users: np.ndarray) -> np.ndarray:
        """float64 (n, 1 + len(STATE)): the belief, then the user's state (the bias last)."""
        assert self._belief is not None
        return np.c_[self._belief[users], ActorRerank.state(self, users)]

    def state(self, users: np.ndarray) -> np.ndarray:
        """float64 (n, 2 + len(STATE)): the intent one-hot, then the user's state (the bias last)."""
        assert self.intent is not None
        return np.c_[np.eye(len(INTENTS))[self.intent[users]], super().state(users)]

    def _rank(self, users: np.ndarray, theta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        slates, propensity = super()._rank(users, theta, k)
        assert self._last is not None and self.obs is not None and self._counts is not None
        c = self._counts[users]
        self._last[users, 0] = novelty(self.similarity, self.obs.history[users], slates).mean(axis=1)
        self._last[users, 1] = (c[:, 4] + 0.5) / (c[:, 3] + 1.0)
        return slates, propensity


def _decision_rollout(policy: HierarchicalRerank, clicks: np.ndarray) -> Rollout:
    """The high level's transitions: one per decision, rewarded with the clicks until the user's next
    decision (or the end)."""
    steps, n = clicks.shape
    width = policy.decisions[0][2].shape[1] if policy.decisions else 1 + len(STATE)
    states, actions = np.zeros((steps, n, width)), np.zeros((steps, n, 1))
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
                       gamma: float = 0.95, lam: float = 0.9, actor_steps: int = 5, lr: float = 0.01,
                       memory: int = 4, seed: int = 0,
                       progress: Callable[[str], None] | None = None) -> tuple[HierarchicalRerank, list[dict]]:
    """Train both levels and the intent model (see the module) on ``make_world("train", ·)``, select on
    validation users (on one thread: reproducible from the seed). The intent model is refitted after
    each iteration on the lists of the last ``memory`` iterations. Returns the deterministic policy and
    one record per iteration."""
    torch.manual_seed(seed)
    low, high, model = GaussianActor(n_state=len(INTENTS) + len(STATE)), IntentActor(), IntentModel()
    low_critic, high_critic = make_critic(len(INTENTS) + len(STATE)), make_critic(1 + len(STATE))
    opts = [torch.optim.Adam(m.parameters(), lr=rate) for m, rate in
            ((low, lr), (low_critic, 0.01), (high, lr), (high_critic, 0.01))]
    selection, history, logged = Selection(patience), [], []
    for it in range(iterations):
        world = make_world("train", 1000 + it)
        policy = HierarchicalRerank(scores, world.catalogue, low, high, model, option_steps=option_steps,
                                    steps=steps, explore=True, seed=seed + it)
        rec = record_episode(world, policy, seed + it)
        s, a, acted = rec.states, rec.actions, rec.acted
        clicks, novelty_ = rec.signals["click"], rec.signals["novelty"]
        novel = s[..., 1]  # the intent each list was ranked for
        intrinsic = clicks * np.where(novel > 0.5, novelty_, 1.0 - novelty_)
        update(low, opts[0], low_critic, opts[1], Rollout(s, a, (clicks + eta * intrinsic) * acted, acted),
               gamma, lam, actor_steps)
        decisions = _decision_rollout(policy, clicks * acted)
        high.standardise(decisions.states[decisions.acted])
        update(high, opts[2], high_critic, opts[3], decisions, gamma, lam, actor_steps)
        logged = [*logged[-(memory - 1):], np.concatenate(policy.lists)] if policy.lists else logged
        lists = np.concatenate(logged)
        model = IntentModel.fit((lists[:, 0] + 1e7 * np.repeat(np.arange(len(logged)), [len(x) for x in logged])),
                                lists[:, 1], lists[:, 2], lists[:, 3] > 0.5)
        valid_world = make_world("valid", VALID_SEED)
        valid, _ = evaluate_policy(valid_world, HierarchicalRerank(scores, valid_world.catalogue, low, high, model,
                                                                   option_steps=option_steps, steps=steps))
        history.append({"iteration": it, "train": float((clicks * acted).sum(axis=0).mean()), "valid": valid,
                        "novel_share": float(novel[acted].mean()), "intent_model": model.coef.tolist(),
                        "novel_sessions": model.share})
        if progress is not None:
            progress(f"iteration {it + 1}: validation click {valid:.3f}")
        if selection.offer(it, valid, 1.0, (low, high, model)):
            break
    low, high, model = selection.result(history)
    return HierarchicalRerank(scores, world.catalogue, low, high, model, option_steps=option_steps, steps=steps), history


def intent_agreement(world: LongTermWorld, policy: HierarchicalRerank, steps: int = 200, *, seed: int = 0) -> dict:
    """A report (it reads the world's hidden mode): run ``policy`` and compare, for every list shown, its
    intent with the session's mode. Returns the agreement (share of lists whose intent is the mode), its
    chance level (an intent independent of the mode with the same shares: p·q + (1 − p)(1 − q)), the
    majority level (always the likelier mode), the share of lists ranked for ``novel`` in novelty-seeking
    sessions and in the others, and the number of lists."""
    novel_in, lists_in, novel_out, lists_out = 0.0, 0.0, 0.0, 0.0
    modes: list[np.ndarray] = []

    def on_step(signals: dict[str, np.ndarray], click_novelty: np.ndarray) -> None:
        nonlocal novel_in, lists_in, novel_out, lists_out
        assert policy.intent is not None
        users, mode = modes.pop()
        intent = policy.intent[users] == 1
        novel_in, lists_in = novel_in + intent[mode].sum(), lists_in + mode.sum()
        novel_out, lists_out = novel_out + intent[~mode].sum(), lists_out + (~mode).sum()

    class Watch:  # the mode of each session shown a list, read before the step (a session's mode is fixed)
        def observe(self, obs: Observation) -> None:
            policy.observe(obs)
            users = np.flatnonzero(obs.in_session)
            modes.append((users, world.truth()["mode"][users] > 0.5))

        def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            return policy.act(users, k, rng)

    run_episode(world, Watch(), steps, seed=seed, on_step=on_step)
    lists = lists_in + lists_out
    p_mode, p_novel = lists_in / max(lists, 1), (novel_in + novel_out) / max(lists, 1)
    agree = (novel_in + (lists_out - novel_out)) / max(lists, 1)
    return {"agreement": float(agree), "chance": float(p_mode * p_novel + (1 - p_mode) * (1 - p_novel)),
            "majority": float(max(p_mode, 1 - p_mode)),
            "novel_share_in_novelty_sessions": float(novel_in / max(lists_in, 1)),
            "novel_share_in_other_sessions": float(novel_out / max(lists_out, 1)), "lists": int(lists)}


def intent_report(make_world: Callable[[str, int], LongTermWorld], policy: HierarchicalRerank, steps: int = 200, *,
                  seed: int = 0) -> dict:
    """:func:`intent_agreement` on ``make_world("test", seed)``, and the clicks per user (mean, 95% interval
    over users) the same low level earns there with the inferred intent, with ``familiar`` for every list
    and with ``novel`` for every list (the policy given no intent): what the inferred intent is worth."""
    from penchant.simulate.experiment import interval

    report = intent_agreement(make_world("test", seed), policy, steps, seed=seed)
    clicks = {}
    for label, fixed in (("inferred", None), *((f"always {name}", i) for i, name in enumerate(INTENTS))):
        acting = HierarchicalRerank(policy.scores, policy.catalogue, policy.actor, policy.high, policy.model,
                                    option_steps=policy.option_steps, steps=policy.steps, intent=fixed)
        clicks[label] = interval(run_episode(make_world("test", seed), acting, steps, seed=seed).returns["click"])
    return report | {"clicks": clicks}
