"""A next-item network as a policy: π(· | s) = softmax over the catalogue of the scores after
history s (the last position's hidden state against the item table)."""

from __future__ import annotations


def next_item_policy(net, seqs, n_items: int):
    """The hidden state after each history (B, d), the item table (n_items + …, d) and log π(j | s)
    (B, n_items), from int64 (B, L) right-aligned histories ``seqs`` (torch, padding = ``n_items``)
    through a sequential ``net`` (SASRec, GRU4Rec)."""
    import torch

    table = net.items()
    hidden = net(seqs, table)[:, -1]
    return hidden, table, torch.log_softmax(hidden @ table[:n_items].T, dim=1)


def next_item_log_probs(net, seqs, n_items: int):
    """log π(j | s) for every item j: float (B, n_items) torch tensor (see :func:`next_item_policy`)."""
    return next_item_policy(net, seqs, n_items)[2]
