"""A return-conditioned sequence policy for the long run: a decision transformer over each user's lists.

After DT4IER ("Sequential Recommendation for Optimizing Both Immediate Feedback and Long-term
Retention", Zhao et al., SIGIR 2024), itself after the decision transformer (Chen et al., 2021):
learn from logged trajectories, offline, which action followed which state when a given return was
still to come; then ask for a high return.

* **Trajectories**: each user's own sequence of lists in the long-term world, logged from behaviour
  policies (:func:`collect`: episodes of :class:`~penchant.simulate.actor_critic.ActorRerank` with
  a random ranking-weight vector each and Gaussian noise per list, so the logs hold good and bad runs).
* **Tokens** per list: the **multi-reward return-to-go** (DT4IER's immediate feedback and retention:
  the clicks still to come, and the lists still to come, i.e. how long the user keeps coming back)
  and the user's observable state (:data:`~penchant.simulate.actor_critic.STATE`), each projected to
  ``dim`` with a learned position embedding. The actions (ranking weights θ) are the targets but not
  in the context: each behaviour run keeps one θ, so past actions give it away and a model that sees
  them learns to copy them whatever return is asked (measured: asking for the 10th or the 90th
  percentile return then earned the same, 69.8 and 69.4 clicks per user). Without them the model is
  return-conditioned sequence imitation in the manner of RvS (Emmons et al., 2022).
* **Model**: a causal transformer over the last ``context`` lists (2 tokens each); θ is predicted
  from each state token's output; trained by mean squared error on the logged θ; the checkpoint
  (every 100 steps) chosen by validation users' clicks (:func:`validation_clicks`), or by the action
  error on held-out trajectories.
* **Acting** (:class:`DTRerank`): the return-to-go starts at ``target`` (default: the 90th percentile
  of the logs' returns per channel) and falls by each list's click and by one list as the user goes on.

DT4IER's reward-weighting network and contrastive loss on return embeddings are not built: the two
return channels enter through one learned linear embedding.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from penchant.models.training import torch_single_threaded
from penchant.simulate.actor_critic import STATE, ActorRerank, GaussianActor, evaluate_policy, record_episode
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation
from penchant.simulate.long_term_policies import FEATURES

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


class DecisionTransformer(nn.Module):
    """See the module. ``forward(rtg (B, K, 2), states (B, K, S))`` → the predicted θ at each of the
    K steps (B, K, 6)."""

    def __init__(self, dim: int = 32, context: int = 8, layers: int = 2, heads: int = 2,
                 return_scale: np.ndarray | None = None) -> None:
        super().__init__()
        self.context = context
        self.embed_return = nn.Linear(len(RETURNS), dim)
        self.embed_state = nn.Linear(len(STATE), dim)
        self.position = nn.Embedding(context, dim)
        self.kind = nn.Parameter(0.02 * torch.randn(2, dim))
        block = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, len(FEATURES))
        scale = np.ones(len(RETURNS)) if return_scale is None else np.asarray(return_scale, dtype=np.float64)
        self.register_buffer("return_scale", torch.as_tensor(scale, dtype=torch.float32))
        mask = torch.triu(torch.full((2 * context, 2 * context), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask)

    def forward(self, rtg: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        b, k = states.shape[:2]
        pos = self.position(torch.arange(k))
        tokens = torch.stack([self.embed_return(rtg / self.return_scale) + self.kind[0],
                              self.embed_state(states) + self.kind[1]], dim=2) + pos[None, :, None, :]
        tokens = tokens.reshape(b, 2 * k, -1)
        # padding (zeros, left of a user's first list) is attended to like any token, in training and
        # acting alike: masking it out would leave padded queries nothing to attend to (NaN)
        out = self.blocks(tokens, mask=self.causal[: 2 * k, : 2 * k])
        return self.head(out.reshape(b, k, 2, -1)[:, :, 1])   # from each state token


def windows(data: Trajectories, context: int) -> tuple[torch.Tensor, ...]:
    """Every step of every sequence as the last step of a window of ``context`` steps (left-padded):
    rtg (W, K, 2), states (W, K, S), actions (W, K, 6), mask (W, K), all float32 but the mask."""
    n, L = data.states.shape[:2]
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
                               select: Callable[[DecisionTransformer], float] | None = None,
                               progress: Callable[[str], None] | None = None) -> tuple[DecisionTransformer, list[dict]]:
    """Fit on ``data``, checking every 100 steps the action error on a held-out ``valid_share`` of the
    sequences and, with ``select`` (a model's score on validation users, e.g. :func:`validation_clicks`),
    that score: the checkpoint kept is the best by ``select`` when given, else by the held-out error
    (on one thread: reproducible from the seed)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    scale = np.maximum(data.initial_returns().mean(axis=0), 1.0)
    model = DecisionTransformer(dim, context, return_scale=scale)
    held = rng.random(len(data.lengths)) < valid_share
    split = [Trajectories(data.states[m], data.actions[m], data.rtg[m], data.lengths[m]) for m in (~held, held)]
    train, valid = (windows(part, context) for part in split)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    best, best_state, history = -np.inf, None, []
    for step in range(steps):
        pick = torch.from_numpy(rng.integers(0, len(train[0]), size=batch))
        rtg, s, a, m = (x[pick] for x in train)
        loss = ((model(rtg, s) - a) ** 2).mean(-1)[m].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % 100 == 0:
            with torch.no_grad():
                rtg, s, a, m = valid
                held_loss = float(((model(rtg, s) - a) ** 2).mean(-1)[m].mean())
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
    user's last ``context`` lists and the return still asked for, ``target`` (2,) at the start;
    built with the world's ``catalogue`` (or a world: only its catalogue is kept)."""

    def __init__(self, scores: np.ndarray, catalogue: Catalogue | LongTermWorld, model: DecisionTransformer,
                 target: np.ndarray, *, steps: int = 200) -> None:
        super().__init__(scores, catalogue, GaussianActor(), steps=steps)
        self.model, self.target = model, np.asarray(target, dtype=np.float64)
        self._buffer: np.ndarray | None = None   # (n, K, 2 + S): return-to-go and state of the last K lists

    def observe(self, obs: Observation) -> None:
        if self._buffer is None or obs.step == 0:
            self._buffer = np.zeros((len(obs["history"]), self.model.context, len(RETURNS) + len(STATE)))
        super().observe(obs)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert self._buffer is not None and self._counts is not None
        states = self.state(users)
        r, s = len(RETURNS), len(STATE)
        # the return still asked for: the target less the clicks and the lists the user has had
        rtg = self.target - self._counts[users][:, [4, 3]]
        step = np.concatenate([rtg, states], axis=1)
        buf = np.concatenate([self._buffer[users, 1:], step[:, None]], axis=1)   # the new list last
        with torch.no_grad():
            x = torch.from_numpy(buf.astype(np.float32))
            theta = self.model(x[..., :r], x[..., r:r + s])[:, -1].numpy()
        self._buffer[users] = buf
        return self._rank(users, theta.astype(np.float64), k)
