"""Gradient training shared by the neural preference models, and the noise-robust losses.

The loss of a pair whose margin (log-odds that the labelled winner wins) is m, with ℓ(m) =
−log σ(m) and ε = ``epsilon``:

* ``plain``: ℓ(m);
* ``smooth`` (conservative label smoothing, ε the smoothing weight): (1 − ε) ℓ(m) + ε ℓ(−m);
* ``robust`` (the unbiased flip-rate correction of robust DPO, Chowdhury et al. 2024, for labels
  flipped with probability ε): ((1 − ε) ℓ(m) − ε ℓ(−m)) / (1 − 2ε), whose expectation under the
  noise is the clean loss. It is unbounded below (a pair's loss falls without limit as its margin
  grows), so a flexible model can drive memorised pairs to ever larger margins;
* ``forward`` (the noise-aware likelihood, Patrini et al. 2017): −log((1 − ε) σ(m) + ε σ(−m)), the
  likelihood of the observed label under the flip model: bounded, and minimised at the clean
  log-odds.

Per-pair weights (the ensemble preference strength of :mod:`.strength`) multiply any of them.
Training: mini-batches of pairs (seeded order), Adam, early stopping on the validation log-loss
(the noise-aware one for ``robust`` and ``forward``, since validation labels carry the same noise).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.training import EarlyStopping, net_device, seed_torch

LOSSES = ("plain", "smooth", "robust", "forward")


def check_loss(loss: str, epsilon: float) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    if not 0 <= epsilon < 0.5:
        raise ConfigError(f"epsilon must be in [0, 0.5), not {epsilon}")


def judged_by(loss: str, epsilon: float) -> dict:
    """The loss arguments under which labels are judged (validation log-loss, a latent class's
    evidence): the noise-aware likelihood at ε for ``robust`` and ``forward``, whose labels are
    taken to be flipped at rate ε, else the plain one."""
    return {"loss": "forward", "epsilon": epsilon} if loss in ("robust", "forward") else {}


def judged_as_trained(loss: str, epsilon: float) -> bool:
    """Whether :func:`judged_by` judges labels by the training loss itself (then one pass of the
    loss terms serves both): plain or ``forward`` losses, or any loss at ε = 0."""
    return loss in ("plain", "forward") or not epsilon


def pair_loss_terms(margin, *, loss: str = "plain", epsilon: float = 0.0):
    """The robust pairwise loss of each torch margin, elementwise (any shape)."""
    import math

    import torch
    import torch.nn.functional as F

    check_loss(loss, epsilon)
    forward, backward = F.softplus(-margin), F.softplus(margin)
    if loss == "plain" or not epsilon:
        return forward
    if loss == "smooth":
        return (1 - epsilon) * forward + epsilon * backward
    if loss == "robust":
        return ((1 - epsilon) * forward - epsilon * backward) / (1 - 2 * epsilon)
    return -torch.logaddexp(math.log(1 - epsilon) - forward, math.log(epsilon) - backward)


def pair_loss(margin, *, loss: str = "plain", epsilon: float = 0.0, weight=None):
    """Mean robust pairwise loss of torch margins (n,), weighted by ``weight`` (n,) if given."""
    value = pair_loss_terms(margin, loss=loss, epsilon=epsilon)
    return (value * weight).sum() / weight.sum() if weight is not None else value.mean()


def pair_loss_np(margin: np.ndarray, loss: str = "plain", epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The same losses in numpy for float64 margins (n,): (loss per pair, its derivative in m)."""
    check_loss(loss, epsilon)
    forward, backward = np.logaddexp(0.0, -margin), np.logaddexp(0.0, margin)
    s_neg = 0.5 * (1.0 - np.tanh(margin / 2.0))  # σ(−m), overflow-free
    s_pos = 1.0 - s_neg
    if loss == "plain" or not epsilon:
        return forward, -s_neg
    if loss == "smooth":
        return (1 - epsilon) * forward + epsilon * backward, -(1 - epsilon) * s_neg + epsilon * s_pos
    if loss == "robust":
        return (((1 - epsilon) * forward - epsilon * backward) / (1 - 2 * epsilon),
                (-(1 - epsilon) * s_neg - epsilon * s_pos) / (1 - 2 * epsilon))
    q = (1 - epsilon) * s_pos + epsilon * s_neg
    return -np.log(q), -(1 - 2 * epsilon) * s_pos * s_neg / q


def train_pairs(model, net, margin: Callable, train: PreferencePairs, valid: PreferencePairs | None, *,
                lr: float, weight_decay: float, epochs: int, batch_size: int, patience: int, seed: int,
                loss: str = "plain", epsilon: float = 0.0, weight: np.ndarray | None = None,
                penalty: Callable | None = None, before_epoch: Callable | None = None,
                param_groups: list[dict] | None = None) -> list[float]:
    """Train ``net`` so that ``margin(net, users, a, b)`` (torch (n,)) fits the pairs; returns the
    validation log-loss after each epoch (empty without ``valid``).

    ``penalty(net, users, a, b)``, if given, is added to each batch's loss (e.g. L2 on the rows the
    batch touched, or a KL term). ``before_epoch(rng)``, if given, runs before each epoch and may
    return the indices of the training pairs to fit in it (None: all). ``param_groups``, if given,
    are Adam's parameter groups (e.g. one with its own ``lr``); else all of ``net``'s parameters at
    ``lr``. The best validated weights are restored (``model._restore``)."""
    import torch

    seed_torch(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters() if param_groups is None else param_groups, lr=lr, weight_decay=weight_decay)
    stopper = EarlyStopping(patience, epochs=epochs)
    dev = net_device(net)  # the pairs' indices move there once (n int64 each); batches are slices of them
    u, w, l = (torch.from_numpy(x.astype(np.int64)).to(dev) for x in (train.user, train.winner, train.loser))
    wt = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).to(dev)
    noise_aware = judged_by(loss, epsilon)
    history: list[float] = []
    for epoch in range(1, epochs + 1):
        net.train()
        chosen = before_epoch(rng) if before_epoch is not None else None
        order = rng.permutation(len(train)) if chosen is None else rng.permutation(chosen)
        order = torch.from_numpy(order).to(dev)
        for s in range(0, len(order), batch_size):
            sel = order[s:s + batch_size]
            value = pair_loss(margin(net, u[sel], w[sel], l[sel]), loss=loss, epsilon=epsilon,
                              weight=None if wt is None else wt[sel])
            if penalty is not None:
                value = value + penalty(net, u[sel], w[sel], l[sel])
            opt.zero_grad()
            value.backward()
            opt.step()
        if valid is not None and len(valid):
            net.eval()
            with torch.no_grad():
                m = margin(net, *(torch.from_numpy(x.astype(np.int64)).to(dev) for x in (valid.user, valid.winner, valid.loser)))
                value = float(pair_loss(m, **noise_aware))
            history.append(value)
            if stopper.update(epoch, -value, net.state_dict):
                break
    stopper.restore_best(model)
    net.eval()
    return history
