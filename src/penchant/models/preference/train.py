"""Gradient training shared by the neural preference models, with the noise-robust losses.

The loss of a pair with margin m = log-odds that the labelled winner wins:

* plain: ℓ(m) = −log σ(m);
* label smoothing (``smoothing`` = s, conservative): (1 − s) ℓ(m) + s ℓ(−m);
* flip-rate correction for labels flipped with probability ε (``flip_rate``), two ways
  (``flip_loss``):
  ``unbiased`` (robust DPO, Chowdhury et al. 2024): ((1 − ε) ℓ(m) − ε ℓ(−m)) / (1 − 2ε), whose
  expectation under the noise is the clean loss; it is unbounded below (a pair's loss falls
  without limit as its margin grows), so a flexible model can drive memorised pairs to ever larger
  margins;
  ``forward`` (the noise-aware likelihood, Patrini et al. 2017): −log((1 − ε) σ(m) + ε σ(−m)),
  the likelihood of the observed label under the flip model: bounded, and minimised at the clean
  log-odds;
* per-pair weights (e.g. ensemble preference strength) multiply either.

Mini-batches of pairs (seeded order), Adam, and early stopping on the validation log-loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from penchant.data.preferences import PreferencePairs
from penchant.models.training import EarlyStopping, seed_torch

FLIP_LOSSES = ("forward", "unbiased")


def pair_loss(margin, *, smoothing: float = 0.0, flip_rate: float = 0.0, flip_loss: str = "forward", weight=None):
    """Mean robust pairwise loss of torch margins (n,)."""
    import math

    import torch
    import torch.nn.functional as F

    if not 0 <= smoothing < 0.5 or not 0 <= flip_rate < 0.5:
        raise ValueError("smoothing and flip_rate must be in [0, 0.5)")
    if flip_loss not in FLIP_LOSSES:
        raise ValueError(f"flip_loss must be one of {', '.join(FLIP_LOSSES)}")
    forward, backward = F.softplus(-margin), F.softplus(margin)
    loss = (1 - smoothing) * forward + smoothing * backward
    if flip_rate and flip_loss == "unbiased":
        loss = ((1 - flip_rate) * loss - flip_rate * ((1 - smoothing) * backward + smoothing * forward)) / (1 - 2 * flip_rate)
    elif flip_rate:
        loss = -torch.logaddexp(math.log(1 - flip_rate) - forward, math.log(flip_rate) - backward)
    return (loss * weight).sum() / weight.sum() if weight is not None else loss.mean()


def train_pairs(model, net, margin: Callable, train: PreferencePairs, valid: PreferencePairs | None, *,
                lr: float, weight_decay: float, epochs: int, batch_size: int, patience: int, seed: int,
                smoothing: float = 0.0, flip_rate: float = 0.0, flip_loss: str = "forward",
                weight: np.ndarray | None = None, penalty: Callable | None = None) -> list[float]:
    """Train ``net`` so that ``margin(net, users, a, b)`` (torch (n,)) fits the pairs; returns the
    validation log-loss after each epoch (empty without ``valid``). ``penalty(net, users, a, b)``, if
    given, is added to each batch's loss (e.g. L2 on the rows the batch touched). The best validated
    weights are restored (``model._restore``)."""
    import torch

    seed_torch(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(patience)
    u, w, l = (torch.from_numpy(x.astype(np.int64)) for x in (train.user, train.winner, train.loser))
    wt = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
    history: list[float] = []
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.from_numpy(rng.permutation(len(train)))
        for s in range(0, len(train), batch_size):
            sel = order[s:s + batch_size]
            loss = pair_loss(margin(net, u[sel], w[sel], l[sel]), smoothing=smoothing, flip_rate=flip_rate,
                             flip_loss=flip_loss, weight=None if wt is None else wt[sel])
            if penalty is not None:
                loss = loss + penalty(net, u[sel], w[sel], l[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if valid is not None and len(valid):
            net.eval()
            with torch.no_grad():
                m = margin(net, *(torch.from_numpy(x.astype(np.int64)) for x in (valid.user, valid.winner, valid.loser)))
                # validation labels carry the same noise: judge by the noise-aware likelihood
                value = float(pair_loss(m, flip_rate=flip_rate, flip_loss="forward"))
            history.append(value)
            if stopper.update(epoch, -value, net.state_dict):
                break
    stopper.restore_best(model)
    net.eval()
    return history
