"""RLHF with PPO on a next-item policy: a Bradley–Terry reward model fitted on the preference pairs,
then proximal policy optimisation of the recommender against it with a KL penalty to the reference.

This is the pipeline of Ouyang et al. (2022) as compared with DPO by Ivison et al. (2024), "Unpacking
DPO and PPO", on the same preference data, with the policy being the recommender's next-item
distribution π(· | s) (:func:`~penchant.models.sequential.alignment.policy.next_item_log_probs`):

1. **Reward model.** r_φ(s, i) = h_φ(s)ᵀ W e_φ,i + b_i: the encoder h_φ and item table e_φ are a
   copy of the trained network (as RLHF initialises its reward model from the SFT model), W (d, d)
   and the item bias b (n_items,) are a fresh head, initialised to zero, so every item starts with
   the same reward. It is fitted on the pairs with the Bradley–Terry loss
   −log σ(r_φ(s, w) − r_φ(s, l)).
2. **PPO.** The prompts are the pairs' histories; an episode is one step: ``samples`` items are drawn
   from the current policy after each history. With π_old the policy that drew them and π_ref the
   network before fine-tuning (frozen), each draw a gets the KL-penalised reward

       R(s, a) = r_φ(s, a) − β · (log π_old(a | s) − log π_ref(a | s)),

   its advantage A = R(s, a) − V(s), whitened over the rollout batch, and the policy takes
   ``ppo_epochs`` passes of ``minibatches`` Adam steps over the batch on the clipped surrogate

       L = −mean( min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) ) − c_H · mean entropy,   ρ = π_θ(a | s) / π_old(a | s).

Departures from the LLM recipe, all because the action space is a catalogue that can be enumerated:
the value baseline is the *exact* state value V(s) = Σ_a π_old(a | s) r_φ(s, a) − β · KL(π_old ‖ π_ref)(s)
(the expected KL-penalised reward, computed over the whole catalogue) instead of a learned critic,
so there is no value loss and no GAE (a one-step episode with γ = 1 makes GAE's advantage R − V
anyway); several items are drawn per history at the cost of one forward pass. Dropout is off during
PPO (as TRL and open-instruct disable it), so ρ = 1 at the first pass over each batch.
"""

from __future__ import annotations

import copy

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models.sequential.alignment.policy import next_item_log_probs
from penchant.models.sequential.neural import NeuralSequential
from penchant.models.training import net_device, seed_torch


def _check(model: NeuralSequential, pairs: PreferencePairs) -> None:
    if model.net_ is None:
        raise ConfigError("PPO fine-tunes a trained model: fit it first")
    if model.long_len:
        raise ConfigError("PPO fine-tuning reads the recent max_len items only; "
                          "the model has a long-term part (long_len > 0)")
    if model.summary_row_ is not None:
        raise ConfigError("PPO fine-tuning reads item histories only; the model also reads user summaries (summaries=...)")
    if pairs.history is None:
        raise DataError(f"{pairs.name} has no histories; PPO on a next-item model needs the items before each choice")
    if pairs.history.shape[1] != model.max_len:
        raise DataError(f"pairs were built for histories of {pairs.history.shape[1]} items, the model reads {model.max_len}")
    if len(pairs) == 0:
        raise DataError(f"{pairs.name} holds no pairs to learn from")


def _reward_net(net, n_items: int):
    import torch

    class RewardModel(torch.nn.Module):
        """r(s, ·) over the catalogue: ``forward(seqs)`` maps int64 (B, L) histories to float (B, n_items)."""

        def __init__(self) -> None:
            super().__init__()
            self.body = copy.deepcopy(net)
            d = self.body.items().shape[1]
            self.head = torch.nn.Parameter(torch.zeros(d, d, device=net_device(net)))
            self.bias = torch.nn.Parameter(torch.zeros(n_items, device=net_device(net)))

        def forward(self, seqs):
            table = self.body.items()
            hidden = self.body(seqs, table)[:, -1]
            return (hidden @ self.head) @ table[:n_items].T + self.bias

    return RewardModel()


def fit_reward_model(model: NeuralSequential, pairs: PreferencePairs, *, epochs: int = 2, lr: float = 1e-3,
                     batch_size: int = 256, seed: int = DEFAULT_SEED):
    """The Bradley–Terry reward model of the module docstring, fitted on ``pairs`` (``history`` int64
    (n, max_len), ``winner``/``loser`` int64 (n,)) from a copy of ``model.net_`` (left unchanged).

    Returns a torch module in eval mode whose ``forward(seqs)`` gives the rewards r(s, ·), float
    (B, n_items) in logits (a difference of 1 is odds e : 1 that the first item is preferred), with
    ``losses_``, the mean Bradley–Terry loss (nats) of each epoch.
    """
    import torch
    import torch.nn.functional as F

    _check(model, pairs)
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ConfigError("reward model epochs and batch_size must be ≥ 1 and lr positive")
    seed_torch(seed)
    rng = np.random.default_rng(seed)
    reward = _reward_net(model.net_, model.n_items_)
    dev = net_device(model.net_)
    opt = torch.optim.Adam(reward.parameters(), lr=lr)
    reward.losses_ = []
    for _ in range(epochs):
        reward.train()
        order = rng.permutation(len(pairs))
        total = 0.0
        for s in range(0, len(order), batch_size):
            sel = order[s:s + batch_size]
            seqs, w, l = (torch.from_numpy(a[sel]).to(dev) for a in (pairs.history, pairs.winner, pairs.loser))
            scores = reward(seqs)
            loss = -F.logsigmoid(scores.gather(1, w[:, None]) - scores.gather(1, l[:, None])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sel)
        reward.losses_.append(total / len(order))
    return reward.eval()


def reward_accuracy(reward, pairs: PreferencePairs, batch_size: int = 1024) -> float:
    """Share of ``pairs`` whose winner the reward model scores above the loser (ties count ½)."""
    import torch

    dev = net_device(reward)
    hits = 0.0
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            sel = slice(s, s + batch_size)
            seqs, w, l = (torch.from_numpy(a[sel]).to(dev) for a in (pairs.history, pairs.winner, pairs.loser))
            scores = reward(seqs)
            diff = scores.gather(1, w[:, None]) - scores.gather(1, l[:, None])
            hits += float((diff > 0).sum()) + 0.5 * float((diff == 0).sum())
    return hits / max(len(pairs), 1)


def clipped_surrogate(new_logp, old_logp, advantages, clip: float):
    """PPO's clipped surrogate loss −mean(min(ρA, clip(ρ, 1 − clip, 1 + clip)A)), ρ = exp(new − old);
    the three tensors share one shape (any)."""
    import torch

    ratio = torch.exp(new_logp - old_logp)
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


def ppo_finetune(model: NeuralSequential, pairs: PreferencePairs, *, beta: float = 0.1, lr: float = 3e-5,
                 epochs: int = 1, batch_size: int = 256, seed: int = DEFAULT_SEED, samples: int = 4,
                 ppo_epochs: int = 4, minibatches: int = 2, clip: float = 0.2, entropy: float = 0.0,
                 whiten: bool = True, max_grad_norm: float = 1.0, reward_epochs: int = 2, reward_lr: float = 1e-3,
                 reward=None) -> list[float]:
    """Fine-tune ``model.net_`` in place by RLHF with PPO (module docstring) on the histories of
    ``pairs`` (int64 (n, max_len), right-aligned, padding = ``n_items``), against a reward model fitted
    on the same pairs; the net is left in eval mode.

    Args:
        beta: KL penalty β (nats of reward per nat of log-ratio).
        lr: Adam learning rate of the policy.
        epochs: passes over the pairs' histories (each a rollout batch of ``batch_size`` histories).
        batch_size: histories per rollout batch.
        seed: seeds the reward model's fit, the order and the draws (torch generator).
        samples: items drawn from π_old after each history (one-step episodes).
        ppo_epochs, minibatches: passes over each rollout batch, and Adam steps per pass.
        clip: ε of the clipped surrogate.
        entropy: weight c_H of the policy's mean entropy bonus (0: none, as in RLHF recipes).
        whiten: standardise the advantages over each rollout batch (TRL's and open-instruct's default).
        max_grad_norm: gradient norm clip of each step.
        reward_epochs, reward_lr: the reward model's fit (:func:`fit_reward_model`).
        reward: an already fitted reward model (from :func:`fit_reward_model`) to use instead.

    Returns:
        The negated RLHF objective of each epoch: −mean over its draws of R(s, a) (the reward-model
        score less β times the log-ratio to the reference, in reward logits); lower is better, like a loss.
    """
    import torch

    _check(model, pairs)
    if beta < 0 or lr <= 0 or epochs < 1 or batch_size < 1 or samples < 1 or ppo_epochs < 1 or minibatches < 1:
        raise ConfigError("PPO needs beta ≥ 0, lr > 0 and epochs, batch_size, samples, ppo_epochs, minibatches ≥ 1")
    if not 0 < clip < 1 or entropy < 0 or max_grad_norm <= 0:
        raise ConfigError("PPO's clip must be in (0, 1), entropy ≥ 0 and max_grad_norm positive")
    if reward is None:
        reward = fit_reward_model(model, pairs, epochs=reward_epochs, lr=reward_lr, batch_size=batch_size, seed=seed)
    seed_torch(seed)
    rng = np.random.default_rng(seed)
    policy = model.net_
    dev = net_device(policy)
    gen = torch.Generator(device=dev).manual_seed(seed)
    n_items = model.n_items_
    reference = copy.deepcopy(policy).eval()
    reward.eval()
    policy.eval()  # dropout off: π_θ = π_old at the first pass over a batch
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    objectives = []
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        total = 0.0
        for s in range(0, len(order), batch_size):
            seqs = torch.from_numpy(pairs.history[order[s:s + batch_size]]).to(dev)
            with torch.no_grad():
                logp_old = next_item_log_probs(policy, seqs, n_items)
                logp_ref = next_item_log_probs(reference, seqs, n_items)
                r_all = reward(seqs)
                p_old = logp_old.exp()
                actions = torch.multinomial(p_old, samples, replacement=True, generator=gen)  # (B, samples)
                old = logp_old.gather(1, actions)
                returns = r_all.gather(1, actions) - beta * (old - logp_ref.gather(1, actions))
                kl = (p_old * (logp_old - logp_ref)).sum(1)
                value = (p_old * r_all).sum(1) - beta * kl  # exact E_{a~π_old} R(s, a)
                adv = returns - value[:, None]
                if whiten and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            for _ in range(ppo_epochs):
                for mb in np.array_split(rng.permutation(len(seqs)), minibatches):
                    if len(mb) == 0:
                        continue
                    mb = torch.from_numpy(mb).to(dev)
                    logp = next_item_log_probs(policy, seqs[mb], n_items)
                    loss = clipped_surrogate(logp.gather(1, actions[mb]), old[mb], adv[mb], clip)
                    if entropy:
                        loss = loss + entropy * (logp.exp() * logp).sum(1).mean()
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
                    opt.step()
            total += float(returns.sum())
        objectives.append(-total / (len(order) * samples))
    policy.eval()
    return objectives
