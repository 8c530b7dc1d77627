"""RLHF with PPO on a next-item policy: the clipped surrogate by hand, the reward model and the
policy on a planted preference, determinism, and a user's mistakes."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from penchant.data import Dataset, PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models import create

N_ITEMS, MAX_LEN, PREFERRED = 20, 6, 7


def cycles(n_users: int = 120, length: int = 15, seed: int = 0) -> Dataset:
    """Each user walks the cycle i → i+1 (mod N_ITEMS) from a random start."""
    starts = np.random.default_rng(seed).integers(0, N_ITEMS, n_users)
    users = np.repeat(np.arange(n_users), length).astype(np.int32)
    items = ((starts[:, None] + np.arange(length)) % N_ITEMS).ravel().astype(np.int32)
    times = np.tile(np.arange(length, dtype=np.float64), n_users)
    return Dataset(np.array([f"u{k}" for k in range(n_users)], dtype=object),
                   np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object), users, items, timestamps=times)


def planted_pairs(n: int, seed: int) -> PreferencePairs:
    """After a cycle window, item PREFERRED is preferred to the window's successor (what the model learnt)."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, n)
    history = ((starts[:, None] + np.arange(MAX_LEN)) % N_ITEMS).astype(np.int64)
    successor = (history[:, -1] + 1) % N_ITEMS
    keep = successor != PREFERRED
    history, successor = history[keep], successor[keep]
    winner = np.full(len(history), PREFERRED, np.int64)
    return PreferencePairs(np.full(len(history), -1), winner, successor, np.arange(len(history)),
                           np.array([], dtype=object), np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object),
                           history=history)


@pytest.fixture(scope="module")
def trained():
    return create("sasrec", epochs=15, max_len=MAX_LEN, factors=16, blocks=1, dropout=0.0, device="cpu").fit(cycles())


def preferred_prob(model, history: np.ndarray) -> float:
    import torch

    from penchant.models.sequential.alignment.policy import next_item_log_probs

    with torch.no_grad():
        logp = next_item_log_probs(model.net_, torch.from_numpy(history), model.n_items_)
    return float(logp[:, PREFERRED].exp().mean())


def test_clipped_surrogate_by_hand():
    import torch

    from penchant.models.sequential.alignment.ppo import clipped_surrogate

    new = torch.log(torch.tensor([1.5, 0.5, 1.1])).requires_grad_()
    old, adv = torch.zeros(3), torch.tensor([1.0, -1.0, 2.0])
    # ρ = 1.5, A = 1: min(1.5, 1.2) = 1.2 (clipped); ρ = 0.5, A = −1: min(−0.5, −0.8) = −0.8 (clipped);
    # ρ = 1.1, A = 2: inside the interval, 2.2
    loss = clipped_surrogate(new, old, adv, clip=0.2)
    assert float(loss.detach()) == pytest.approx(-(1.2 - 0.8 + 2.2) / 3)
    loss.backward()
    # clipped terms pass no gradient; d(−ρA/3)/d log ρ = −ρA/3 for the third
    assert new.grad.tolist() == pytest.approx([0.0, 0.0, -1.1 * 2 / 3])


def test_ppo_raises_the_preferred_item_and_the_reward_model_ranks_held_out_pairs(trained):
    from penchant.eval.alignment import kl_from_reference
    from penchant.models.sequential.alignment.ppo import fit_reward_model, ppo_finetune, reward_accuracy

    train, held_out = planted_pairs(400, seed=1), planted_pairs(200, seed=2)
    model = copy.deepcopy(trained)
    reference = copy.deepcopy(trained.net_)
    reward = fit_reward_model(model, train, epochs=3, lr=1e-2, seed=0)
    assert reward.losses_[-1] < reward.losses_[0]
    assert reward_accuracy(reward, held_out) >= 0.95
    before = preferred_prob(model, held_out.history)
    losses = ppo_finetune(model, train, beta=0.05, lr=3e-3, epochs=3, batch_size=100, seed=0, reward=reward)
    after = preferred_prob(model, held_out.history)
    assert len(losses) == 3 and losses[-1] < losses[0]  # the KL-penalised reward grows
    assert after > max(5 * before, 0.2), (before, after)
    assert not model.net_.training
    assert kl_from_reference(model, reference, held_out.history) > 0.05


def test_ppo_is_deterministic_under_its_seed(trained):
    from penchant.models.sequential.alignment.ppo import ppo_finetune

    pairs = planted_pairs(120, seed=3)
    runs = []
    for _ in range(2):
        model = copy.deepcopy(trained)
        losses = ppo_finetune(model, pairs, beta=0.1, lr=1e-3, epochs=1, batch_size=60, seed=5, reward_epochs=1)
        runs.append((losses, {k: v.clone() for k, v in model.net_.state_dict().items()}))
    assert runs[0][0] == runs[1][0]
    assert all(bool((runs[0][1][k] == runs[1][1][k]).all()) for k in runs[0][1])
    assert any(bool((runs[0][1][k] != trained.net_.state_dict()[k]).any()) for k in runs[0][1])


def test_a_users_mistake_with_ppo_is_a_penchant_error(trained):
    from penchant.models.sequential.alignment.ppo import ppo_finetune

    pairs = planted_pairs(20, seed=4)
    with pytest.raises(DataError, match="has no histories"):
        ppo_finetune(copy.deepcopy(trained), dataclasses.replace(pairs, history=None))
    with pytest.raises(DataError, match="histories of 2 items, the model reads 6"):
        ppo_finetune(copy.deepcopy(trained), dataclasses.replace(pairs, history=pairs.history[:, :2]))
    with pytest.raises(ConfigError, match="clip"):
        ppo_finetune(copy.deepcopy(trained), pairs, clip=1.5)
    with pytest.raises(ConfigError, match="fit it first"):
        ppo_finetune(create("sasrec", max_len=MAX_LEN), pairs)
