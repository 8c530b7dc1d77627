"""A return-conditioned sequence policy for the long run: a decision transformer over each user's lists.

After DT4IER ("Sequential Recommendation for Optimizing Both Immediate Feedback and Long-term
Retention", Zhao et al., SIGIR 2024), itself after the decision transformer (Chen et al., 2021):
learn from logged trajectories, offline, which action followed which state when a given return was
still to come; then ask for a high return.

* **Trajectories**: each user's own sequence of lists in the long-term world, logged from behaviour
  policies (:func:`collect`: episodes of :class:`~penchant.simulate.actor_critic.ActorRerank` with
  a random ranking-weight vector each and Gaussian noise per list, so the logs hold good and bad runs).
* **Tokens** per list (DT4IER's three): the **multi-reward return-to-go** (immediate feedback and
  retention: the clicks still to come, and the lists still to come, i.e. how long the user keeps
  coming back), the user's observable state (:data:`~penchant.simulate.actor_critic.STATE`) and, with
  ``action_tokens``, the action served (the ranking weights θ), each projected to ``dim`` with a
  learned position embedding: 3 tokens per list, θ predicted from the state token's output (the
  causal mask hides the same list's action token). Each behaviour run keeps one θ up to per-list noise,
  so past actions give much of the next one away (measured before DT4IER's other parts: a model
  seeing them earned 69.8 and 69.4 clicks per user asking for the 10th and the 90th percentile return):
  ``action_tokens=False`` (the default of :func:`train_decision_transformer` and of the policy) is
  return-conditioned sequence imitation in the manner of RvS (Emmons et al., 2022), 2 tokens per list.
  Measured (:func:`ablations`, 3 seeds): removing the action tokens from DT4IER whole gains 6.4 clicks
  per user [1.9, 10.8] (t interval over seeds, paired).
* **Reward weighting** (``reward_weighting``; DT4IER's multi-reward re-weighting): a small network
  (:class:`RewardWeighting`) maps the user's observable attributes, the mean of the logged states in
  the window (their novelty appetite, session habits, clicks per list: what a platform computes from
  its own log; never the world's hidden state), to per-user weights w (softmax over the two returns);
  the model is conditioned on ``2 · w ⊙ rtg`` (equal weights give the plain return). Besides the
  action loss, w is trained by DT4IER's balance term ``−(w₁R₁ + w₂R₂) + (w₁R₁ − w₂R₂)²`` on the
  scaled returns-to-go (:func:`balance_loss`). Without it the two returns enter one linear embedding.
* **Contrastive action loss** (``contrastive``, its weight; DT4IER's contrastive term, adapted to a
  continuous action): InfoNCE over a batch (:func:`contrastive_action_loss`): the predicted θ should
  be nearer (squared distance / ``tau``) to its own logged θ than to the logged θ of windows whose
  return-to-go differs by more than ``margin`` (scaled, summed over both returns), so actions
  conditioned on different returns are pushed apart. The paper contrasts item embeddings against items
  from low-reward steps; here the action is a weight vector and the negatives are the batch's
  actions under other returns.
* **Model**: a causal transformer over the last ``context`` lists; trained by mean squared error on
  the logged θ (plus the terms above); the checkpoint (every 100 steps) chosen by validation users'
  clicks (:func:`validation_clicks`), or by the action error on held-out trajectories.
* **Acting** (:class:`DTRerank`): the return-to-go starts at ``target`` (default: the 90th percentile
  of the logs' returns per channel) and falls by each list's click and by one list as the user goes on.
* **Ablations** (:func:`ablations`): the full model and each part removed, trained on the same
  behaviour runs per seed and run on the same test users as greedy; means over seeds with t intervals.

Simplified from the paper: the action is the ranking-weight vector, not an item sequence decoded by a
GRU; the user attributes are the logged state statistics (the world's users carry no demographics).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from penchant.models.training import torch_single_threaded
from penchant.simulate.actor_critic import (
    STATE,
    VALID_SEED,
    ActorRerank,
    GaussianActor,
    evaluate_policy,
    record_episode,
)
from penchant.simulate.experiment import Worlds, run_policies
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation
from penchant.simulate.long_term_policies import FEATURES, HistoryGreedy

RETURNS = ("click", "lists")


@dataclass
class Trajectories:
    """Users' sequences of lists, padded: states (N, L, S), actions (N, L, 6), returns-to-go (N, L, 2),
    lengths (N,)."""

    states: np.ndarray
    actions: np.ndarray
    rtg: np.ndarray
    lengths: np.ndarray

    def initial_returns(self) -> np.ndarray:
        """(N, 2): each sequence's whole return (its first return-to-go)."""
        return self.rtg[:, 0]


def collect(make_world: Callable[[str, int], LongTermWorld], scores: np.ndarray, *, episodes: int = 12,
            steps: int = 200, spread: float = 1.0, noise: float = 0.5, seed: int = 0) -> Trajectories:
    """Behaviour data (see the module): ``episodes`` training worlds, each run with one random θ ~
    N(0, ``spread``²) for everyone plus N(0, ``noise``²) per list."""
    rng = np.random.default_rng(seed)
    parts = []
    for e in range(episodes):
        world = make_world("train", 5000 + e)
        actor = GaussianActor(spread * rng.standard_normal(len(FEATURES)), log_std=float(np.log(noise)))
        rec = record_episode(world, ActorRerank(scores, world.catalogue, actor, steps=steps, explore=True, seed=seed + e),
                             seed + e)
        parts.append(_sequences(rec.states, rec.actions, rec.acted, rec.signals["click"]))
    return _concatenate(parts)


def _sequences(states: np.ndarray, actions: np.ndarray, acted: np.ndarray, clicks: np.ndarray) -> Trajectories:
    """Per-user sequences of the lists a user was shown (in order), with both returns-to-go, from an
    episode's states (T, n, S), actions (T, n, 6), ``acted`` (T, n) and clicks (T, n)."""
    lengths = acted.sum(axis=0)
    keep = np.flatnonzero(lengths > 0)
    L = int(lengths.max()) if len(keep) else 1
    # each user's acted steps, first to last: sort time indices with unacted ones pushed to the end
    order = np.argsort(~acted[:, keep], axis=0, kind="stable")[:L]          # (L, N)
    cols = keep[None, :]
    valid = np.arange(L)[:, None] < lengths[keep][None, :]
    gained = np.where(valid, (clicks * acted)[order, cols], 0.0)            # (L, N)
    rtg_click = np.flip(np.cumsum(np.flip(gained, 0), 0), 0)
    rtg_lists = np.where(valid, lengths[keep][None, :] - np.arange(L)[:, None], 0)
    return Trajectories(np.where(valid[..., None], states[order, cols], 0.0).transpose(1, 0, 2),
                        np.where(valid[..., None], actions[order, cols], 0.0).transpose(1, 0, 2),
                        np.stack([rtg_click, rtg_lists], axis=-1).transpose(1, 0, 2).astype(np.float64),
                        lengths[keep])


def _concatenate(parts: list[Trajectories]) -> Trajectories:
    L = max(p.states.shape[1] for p in parts)

    def pad(x: np.ndarray) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, L - x.shape[1]), (0, 0)))

    return Trajectories(*(np.concatenate([pad(getattr(p, f)) for p in parts]) for f in ("states", "actions", "rtg")),
                        np.concatenate([p.lengths for p in parts]))


class RewardWeighting(nn.Module):
    """DT4IER's multi-reward re-weighting: user attributes (B, A) → per-user weights (B, 2) over the
    two returns, a softmax (non-negative, summing to 1)."""

    def __init__(self, attributes: int = len(STATE), hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(attributes, hidden), nn.ReLU(), nn.Linear(hidden, len(RETURNS)))

    def forward(self, attributes: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(attributes), dim=-1)

    @staticmethod
    def combine(weights: torch.Tensor, rtg: torch.Tensor) -> torch.Tensor:
        """The return-to-go the model is conditioned on: ``2 · w ⊙ rtg`` for weights (B, 2) and scaled
        returns-to-go (B, K, 2) → (B, K, 2) (equal weights leave the return as it is)."""
        return len(RETURNS) * weights[:, None, :] * rtg


def balance_loss(weights: torch.Tensor, rtg: torch.Tensor, mask: torch.Tensor, penalty: float = 1.0) -> torch.Tensor:
    """DT4IER's balance term for the weights (B, 2) on scaled returns-to-go (B, K, 2) at the valid
    steps ``mask`` (B, K): mean of ``−(w₁R₁ + w₂R₂) + penalty · (w₁R₁ − w₂R₂)²``."""
    wr = weights[:, None, :] * rtg
    loss = -wr.sum(-1) + penalty * (wr[..., 0] - wr[..., 1]) ** 2
    return loss[mask].mean()


def contrastive_action_loss(predicted: torch.Tensor, actions: torch.Tensor, rtg: torch.Tensor, *,
                            margin: float = 0.5, tau: float = 0.1) -> torch.Tensor:
    """InfoNCE over a batch of W windows' last steps: predicted θ (W, 6), logged θ (W, 6), scaled
    returns-to-go (W, 2). Window i's positive is its own logged θ, its negatives the logged θ of the
    windows whose returns-to-go differ from i's by more than ``margin`` (L1 over both returns);
    similarity is minus the mean squared difference over ``tau``. A window with no negative adds 0."""
    dist = ((predicted[:, None, :] - actions[None, :, :]) ** 2).mean(-1)            # (W, W)
    negative = (rtg[:, None, :] - rtg[None, :, :]).abs().sum(-1) > margin           # (W, W)
    logits = torch.where(negative, -dist / tau, torch.tensor(float("-inf")))
    positive = -dist.diagonal() / tau
    all_logits = torch.cat([positive[:, None], logits], dim=1)
    return (torch.logsumexp(all_logits, dim=1) - positive).mean()


class DecisionTransformer(nn.Module):
    """See the module. ``forward(rtg (B, K, 2), states (B, K, S), actions (B, K, 6))`` → the predicted
    θ at each of the K steps (B, K, 6); ``actions`` is read only with ``action_tokens`` (an action
    token follows its step's state token, so step t's prediction never sees θ_t). A step whose state
    is all zeros is padding (every real state has its bias input at 1)."""

    def __init__(self, dim: int = 32, context: int = 8, layers: int = 2, heads: int = 2,
                 return_scale: np.ndarray | None = None, *, action_tokens: bool = True,
                 reward_weighting: bool = True) -> None:
        super().__init__()
        self.context, self.action_tokens = context, action_tokens
        self.per_step = 3 if action_tokens else 2
        self.embed_return = nn.Linear(len(RETURNS), dim)
        self.embed_state = nn.Linear(len(STATE), dim)
        self.embed_action = nn.Linear(len(FEATURES), dim) if action_tokens else None
        self.weighting = RewardWeighting(len(STATE)) if reward_weighting else None
        self.position = nn.Embedding(context, dim)
        self.kind = nn.Parameter(0.02 * torch.randn(self.per_step, dim))
        block = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, len(FEATURES))
        scale = np.ones(len(RETURNS)) if return_scale is None else np.asarray(return_scale, dtype=np.float64)
        self.register_buffer("return_scale", torch.as_tensor(scale, dtype=torch.float32))
        n = self.per_step * context
        self.register_buffer("causal", torch.triu(torch.full((n, n), float("-inf")), diagonal=1))

    def user_weights(self, states: torch.Tensor) -> torch.Tensor | None:
        """The reward weights (B, 2) from the user's attributes: the mean of the window's logged
        states (B, K, S), padding left out; None without reward weighting."""
        if self.weighting is None:
            return None
        valid = (states.abs().sum(-1, keepdim=True) > 0).float()
        attributes = (states * valid).sum(1) / valid.sum(1).clamp(min=1.0)
        return self.weighting(attributes)

    def forward(self, rtg: torch.Tensor, states: torch.Tensor, actions: torch.Tensor | None = None,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        b, k = states.shape[:2]
        pos = self.position(torch.arange(k))
        scaled = rtg / self.return_scale
        if self.weighting is not None:
            w = self.user_weights(states) if weights is None else weights
            scaled = RewardWeighting.combine(w, scaled)
        parts = [self.embed_return(scaled) + self.kind[0], self.embed_state(states) + self.kind[1]]
        if self.embed_action is not None:
            assert actions is not None, "action tokens need the actions served"
            parts.append(self.embed_action(actions) + self.kind[2])
        tokens = (torch.stack(parts, dim=2) + pos[None, :, None, :]).reshape(b, self.per_step * k, -1)
        # padding (zeros, left of a user's first list) is attended to like any token, in training and
        # acting alike: masking it out would leave padded queries nothing to attend to (NaN)
        n = self.per_step * k
        out = self.blocks(tokens, mask=self.causal[:n, :n])
        return self.head(out.reshape(b, k, self.per_step, -1)[:, :, 1])   # from each state token


def windows(data: Trajectories, context: int) -> tuple[torch.Tensor, ...]:
    """Every step of every sequence as the last step of a window of ``context`` steps (left-padded):
    rtg (W, K, 2), states (W, K, S), actions (W, K, 6), mask (W, K), all float32 but the mask."""
    L = data.states.shape[1]
    seq, end = np.nonzero(np.arange(L)[None, :] < data.lengths[:, None])
    idx = end[:, None] - np.arange(context - 1, -1, -1)[None, :]          # (W, K), may be < 0
    mask = idx >= 0
    idx = np.maximum(idx, 0)

    def take(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.where(mask[..., None], x[seq[:, None], idx], 0.0).astype(np.float32))

    return take(data.rtg), take(data.states), take(data.actions), torch.from_numpy(mask)


@torch_single_threaded()
def train_decision_transformer(data: Trajectories, *, context: int = 8, dim: int = 32, steps: int = 600,
                               batch: int = 256, lr: float = 1e-3, valid_share: float = 0.1, seed: int = 0,
                               action_tokens: bool = False, reward_weighting: bool = True, contrastive: float = 0.1,
                               select: Callable[[DecisionTransformer], float] | None = None,
                               progress: Callable[[str], None] | None = None) -> tuple[DecisionTransformer, list[dict]]:
    """Fit on ``data``, checking every 100 steps the action error on a held-out ``valid_share`` of the
    sequences and, with ``select`` (a model's score on validation users, e.g. :func:`validation_clicks`),
    that score: the checkpoint kept is the best by ``select`` when given, else by the held-out error
    (on one thread: reproducible from the seed). The loss: the action's mean squared error, plus
    :func:`balance_loss` with ``reward_weighting`` and ``contrastive`` × :func:`contrastive_action_loss`
    on each window's last step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    scale = np.maximum(data.initial_returns().mean(axis=0), 1.0)
    model = DecisionTransformer(dim, context, return_scale=scale, action_tokens=action_tokens,
                                reward_weighting=reward_weighting)
    held = rng.random(len(data.lengths)) < valid_share
    split = [Trajectories(data.states[m], data.actions[m], data.rtg[m], data.lengths[m]) for m in (~held, held)]
    train, valid = (windows(part, context) for part in split)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    best, best_state, history = -np.inf, None, []
    for step in range(steps):
        pick = torch.from_numpy(rng.integers(0, len(train[0]), size=batch))
        rtg, s, a, m = (x[pick] for x in train)
        weights = model.user_weights(s)
        predicted = model(rtg, s, a, weights)
        loss = ((predicted - a) ** 2).mean(-1)[m].mean()
        if weights is not None:
            loss = loss + balance_loss(weights, rtg / model.return_scale, m)
        if contrastive > 0:
            loss = loss + contrastive * contrastive_action_loss(predicted[:, -1], a[:, -1], rtg[:, -1] / model.return_scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % 100 == 0:
            with torch.no_grad():
                rtg, s, a, m = valid
                held_loss = float(((model(rtg, s, a) - a) ** 2).mean(-1)[m].mean())
                record = {"step": step + 1, "train": float(loss.detach()), "valid": held_loss}
                if select is not None:
                    record["valid_clicks"] = select(model)
            history.append(record)
            if progress is not None:
                progress(f"step {step + 1}: held-out action error {held_loss:.4f}")
            score = record["valid_clicks"] if select is not None else -held_loss
            if score > best:
                best, best_state = score, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def validation_clicks(world: LongTermWorld, scores: np.ndarray, target: np.ndarray,
                      steps: int = 200) -> Callable[[DecisionTransformer], float]:
    """A ``select`` for :func:`train_decision_transformer`: a model's mean clicks per user in ``world``
    (validation users), asking for ``target``."""
    def clicks(model: DecisionTransformer) -> float:
        return evaluate_policy(world, DTRerank(scores, world.catalogue, model, target, steps=steps))[0]

    return clicks


class DTRerank(ActorRerank):
    """The decision transformer acting in the world (see the module): θ per user and step from the
    user's last ``context`` lists (their returns-to-go, states and, with action tokens, the θ served)
    and the return still asked for, ``target`` (2,) at the start; built with the world's
    ``catalogue`` (or a world: only its catalogue is kept)."""

    def __init__(self, scores: np.ndarray, catalogue: Catalogue | LongTermWorld, model: DecisionTransformer,
                 target: np.ndarray, *, steps: int = 200) -> None:
        super().__init__(scores, catalogue, GaussianActor(), steps=steps)
        self.model, self.target = model, np.asarray(target, dtype=np.float64)
        self._buffer: np.ndarray | None = None   # (n, K, 2 + S + 6): return-to-go, state and θ of the last K lists

    def observe(self, obs: Observation) -> None:
        if self._buffer is None or obs.step == 0:
            self._buffer = np.zeros((len(obs["history"]), self.model.context, len(RETURNS) + len(STATE) + len(FEATURES)))
        super().observe(obs)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self._buffer is not None and self._counts is not None
        states = self.state(users)
        r, s = len(RETURNS), len(STATE)
        # the return still asked for: the target less the clicks and the lists the user has had
        rtg = self.target - self._counts[users][:, [4, 3]]
        step = np.concatenate([rtg, states, np.zeros((len(users), len(FEATURES)))], axis=1)
        buf = np.concatenate([self._buffer[users, 1:], step[:, None]], axis=1)   # the new list last
        with torch.no_grad():
            x = torch.from_numpy(buf.astype(np.float32))
            theta = self.model(x[..., :r], x[..., r:r + s], x[..., r + s:])[:, -1].numpy().astype(np.float64)
        buf[:, -1, r + s:] = theta      # the action served, for the lists to come
        self._buffer[users] = buf
        return self._rank(users, theta, k)


#: the ablations: each part of DT4IER removed from the full model (changes to its training options)
ABLATIONS: dict[str, dict] = {"full": {}, "without action tokens": {"action_tokens": False},
                              "without reward weighting": {"reward_weighting": False},
                              "without contrastive loss": {"contrastive": 0.0}}
#: what the ablations report per policy and seed: mean per test user
MEASURES = ("click", "watch", "active_share", "retention")


def _over_seeds(x: np.ndarray) -> dict:
    """Mean with a 95% t interval over seeds (x (n,)); no interval from one seed."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return {"mean": float(x.mean()), "ci": [None, None]}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": float(x.mean()), "ci": [float(x.mean() - half), float(x.mean() + half)]}


def ablations(worlds: Worlds, seeds: Sequence[int], *, steps: int = 200, dt_steps: int = 600, batch: int = 256,
              contrastive: float = 0.1, episodes: int = 12, test_seed: int = 10_000,
              progress: Callable[[str], None] | None = None) -> dict:
    """DT4IER whole and with each part removed (:data:`ABLATIONS`), against greedy, over ``seeds``.

    Per seed: one set of behaviour runs (:func:`collect`, ``episodes`` training worlds), every variant
    trained on it (``dt_steps``, checkpoint by validation clicks) and run with greedy on the test
    users' world of ``test_seed + seed``. Returns ``{"seeds", "per_seed": {policy: {measure: [per
    seed]}}, "mean": {policy: {measure: mean and t interval over seeds}}, "vs_greedy": {variant:
    {measure: the paired difference to greedy, mean and t interval}}}``; measures (:data:`MEASURES`)
    are means per test user: clicks, watch, share of steps in a session, retention."""
    names = ["greedy", *ABLATIONS]
    per_seed: dict[str, dict[str, list[float]]] = {n: {m: [] for m in MEASURES} for n in names}
    base = {"action_tokens": True, "reward_weighting": True, "contrastive": contrastive}
    start = time.monotonic()
    for i, seed in enumerate(seeds):
        data = collect(worlds, worlds.scores, episodes=episodes, steps=steps, seed=seed)
        target = np.percentile(data.initial_returns(), 90, axis=0)
        select = validation_clicks(worlds("valid", VALID_SEED), worlds.scores, target, steps)
        policies: dict = {"greedy": HistoryGreedy(worlds.scores)}
        for j, (name, change) in enumerate(ABLATIONS.items()):
            if progress is not None:
                done, total = i * len(ABLATIONS) + j, len(seeds) * len(ABLATIONS)
                eta = f", about {(time.monotonic() - start) / done * (total - done):.0f} s left" if done else ""
                progress(f"ablations: seed {seed} ({i + 1}/{len(seeds)}), {name}{eta}")
            model, _ = train_decision_transformer(data, steps=dt_steps, batch=batch, seed=seed, select=select,
                                                  **(base | change))
            policies[name] = DTRerank(worlds.scores, worlds.template.catalogue, model, target, steps=steps)
        for name, ep in run_policies(worlds, policies, steps, test_seed + seed).items():
            values = {"click": ep.returns["click"], "watch": ep.returns["watch"], "active_share": ep.active_share,
                      "retention": ep.retained}
            for m in MEASURES:
                per_seed[name][m].append(float(np.mean(values[m])))
    return {"seeds": list(seeds), "dt_steps": dt_steps, "steps": steps, "per_seed": per_seed,
            "mean": {n: {m: _over_seeds(per_seed[n][m]) for m in MEASURES} for n in names},
            "vs_greedy": {n: {m: _over_seeds(np.subtract(per_seed[n][m], per_seed["greedy"][m])) for m in MEASURES}
                          for n in ABLATIONS}}
