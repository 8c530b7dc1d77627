"""Preference optimisation of a trained next-item model: DPO on (history, preferred next item,
dispreferred next item) triples, with the flip-corrected robust variant.

With π(j | s) = softmax over the catalogue of the model's scores after history s, and π_ref the
model as it was before fine-tuning (frozen), DPO (Rafailov et al., 2023) minimises

    L(w, l) = −log σ(β · [(log π(w|s) − log π_ref(w|s)) − (log π(l|s) − log π_ref(l|s))])

and robust DPO (Chowdhury et al., 2024), for labels flipped with probability ε < ½, minimises the
unbiased ``[(1 − ε) L(w, l) − ε L(l, w)] / (1 − 2ε)``.
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset, PreferencePairs, Step
from penchant.errors import ConfigError, DataError
from penchant.models.sequential.base import right_aligned
from penchant.models.sequential.neural import NeuralSequential
from penchant.models.training import net_device, seed_torch


def next_item_pairs(train: Dataset, max_len: int, *, liked: float = 4.0, disliked: float = 2.0,
                    seed: int = DEFAULT_SEED) -> PreferencePairs:
    """At every position of a user's time-ordered training history whose next item they rated at
    least ``liked``, pair that item (winner) with one item the same user rated at most
    ``disliked`` (loser, drawn at random); users without such an item give no pairs. Each pair's
    ``history`` is the ``max_len`` items before it, right-aligned, padded with ``n_items``.
    """
    if train.ratings is None:
        raise DataError("next_item_pairs needs ratings")
    rng = np.random.default_rng(seed)
    indptr, items = train.sequences()
    items = items.astype(np.int64)
    order = train.time_order()
    users, ratings = train.users[order], train.ratings[order]
    bad = ratings <= disliked
    bad_ptr = np.zeros(train.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users[bad], minlength=train.n_users), out=bad_ptr[1:])
    bad_items = items[bad]
    position = np.arange(len(items)) - indptr[users]
    has_bad = np.diff(bad_ptr)[users] > 0
    take = np.flatnonzero((ratings >= liked) & (position > 0) & has_bad)
    u = users[take]
    pick = bad_ptr[u] + (rng.random(len(take)) * np.diff(bad_ptr)[u]).astype(np.int64)
    contexts = right_aligned(items, indptr[u], take, max_len, train.n_items)  # the items before each target
    return PreferencePairs(u.astype(np.int64), items[take], bad_items[pick].astype(np.int64), np.arange(len(take), dtype=np.int64),
                           train.user_ids, train.item_ids, history=contexts,
                           steps=train.steps + (Step("next-item pairs", len(take), f"rated ≥ {liked:g} after a history, "
                                                                                   f"against one rated ≤ {disliked:g}"),),
                           name=f"{train.name}/next-item-pairs")


def dpo_loss(policy_w, policy_l, ref_w, ref_l, beta: float, flip_rate: float = 0.0):
    """Mean (robust) DPO loss from log-probabilities of the chosen (w) and rejected (l) items."""
    import torch.nn.functional as F

    margin = beta * ((policy_w - ref_w) - (policy_l - ref_l))
    forward, backward = -F.logsigmoid(margin), -F.logsigmoid(-margin)
    if not 0 <= flip_rate < 0.5:
        raise ConfigError("flip_rate must be in [0, 0.5)")
    return (((1 - flip_rate) * forward - flip_rate * backward) / (1 - 2 * flip_rate)).mean()


def dpo_finetune(model: NeuralSequential, pairs: PreferencePairs, *, beta: float = 0.1, flip_rate: float = 0.0,
                 lr: float = 1e-4, epochs: int = 3, batch_size: int = 256, seed: int = DEFAULT_SEED) -> list[float]:
    """Fine-tune ``model`` in place on next-item ``pairs`` (winner and loser items after each pair's
    ``history``, int64 (n, max_len)); returns the mean loss of each epoch."""
    import copy

    import torch

    if model.long_len:
        raise ConfigError("DPO fine-tuning reads the recent max_len items only; "
                          "the model has a long-term part (long_len > 0)")
    if model.summary_row_ is not None:
        raise ConfigError("DPO fine-tuning reads item histories only; "
                          "the model also reads user summaries (summaries=...)")
    if pairs.history is None:
        raise DataError(f"{pairs.name} has no histories; DPO of a next-item model needs the items before each choice")
    if pairs.history.shape[1] != model.max_len:
        raise DataError(f"pairs were built for histories of {pairs.history.shape[1]} items, "
                        f"the model reads {model.max_len}")
    seed_torch(seed)
    rng = np.random.default_rng(seed)
    reference = copy.deepcopy(model.net_).eval()
    opt = torch.optim.Adam(model.net_.parameters(), lr=lr)
    n_items = model.n_items_
    dev = net_device(model.net_)  # fine-tuned where the model was trained

    def log_probs(net, seqs, w, l):
        table = net.items()
        hidden = net(seqs, table)[:, -1]
        logp = torch.log_softmax(hidden @ table[:n_items].T, dim=1)
        return logp.gather(1, w[:, None])[:, 0], logp.gather(1, l[:, None])[:, 0]

    losses = []
    for _ in range(epochs):
        model.net_.train()
        order = rng.permutation(len(pairs))
        total = 0.0
        for s in range(0, len(order), batch_size):
            sel = order[s:s + batch_size]
            seqs, w, l = (torch.from_numpy(a[sel]).to(dev) for a in (pairs.history, pairs.winner, pairs.loser))
            with torch.no_grad():
                ref_w, ref_l = log_probs(reference, seqs, w, l)
            pol_w, pol_l = log_probs(model.net_, seqs, w, l)
            loss = dpo_loss(pol_w, pol_l, ref_w, ref_l, beta, flip_rate)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sel)
        losses.append(total / max(len(order), 1))
    model.net_.eval()
    return losses
