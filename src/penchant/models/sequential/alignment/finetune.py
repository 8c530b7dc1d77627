"""Preference fine-tuning of a trained SASRec / GRU4Rec on its own training log, run at the end of
``fit`` when ``finetune`` is not ``off`` (the ``finetune_*`` parameters; :func:`finetune`).

Pairs: every liked next item (winner, :func:`.pairs.liked_next_items`) after its history, against a
rejected item from ``finetune_negatives`` (:mod:`.negatives`), drawn anew at every step except for
``rated``. Each epoch visits every winner once in a random order, in batches of ``batch_size``; the
reference π_ref is a frozen copy of the network as training left it, and the fine-tuned network
replaces it in the model (and in its artefact).

* ``dpo`` | ``rdpo`` | ``ipo``: the pair losses of :mod:`.losses`, with β ``finetune_beta`` (and ε
  ``finetune_flip`` for rdpo), plus, with ``finetune_spo`` λ > 0, λ times SPO's self-supervised
  preference-degree loss: a linear head (2d → ``SPO_CLASSES``) on the pair's representation
  (:func:`.losses.spo_features`) is trained jointly with the network to classify the pair's degree
  (:class:`.pairs.Degrees`); the head is dropped after fine-tuning (it never scores).
* ``sft``: maximum likelihood of the winners (no rejected item; the negatives are not drawn).
* ``ppo``: :func:`penchant.models.sequential.alignment.ppo.ppo_finetune` on the same winners, each
  paired once with a loser of ``finetune_negatives`` drawn before training (for ``on-policy``: from
  the reference policy, which is the policy PPO starts from).

Departures from SPO (Li et al., 2024): the paper's degrees come from removing k key phrases of a
reply (RAKE) and its head reads the language model's last hidden state of each modified reply; a
recommender has neither phrases nor replies, so the degrees come from the log (rating gaps or
distances in the history, :mod:`.pairs`) and the head reads the representation of the (history,
winner, loser) pair that the scores are made of.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset, PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models.sequential.alignment.losses import PAIR_LOSSES, pair_loss, sft_loss, spo_degree_loss, spo_features
from penchant.models.sequential.alignment.negatives import NEGATIVES, RatedNegatives, Sampler, make_sampler
from penchant.models.sequential.alignment.pairs import SPO_CLASSES, Degrees, NextItems, liked_next_items, rated_losers
from penchant.models.sequential.alignment.policy import next_item_log_probs, next_item_policy

if TYPE_CHECKING:
    from penchant.models.sequential.neural import NeuralSequential

FINETUNES = ("off", *PAIR_LOSSES, "sft", "ppo")


def check_options(model: NeuralSequential) -> None:
    """ConfigError for a bad ``finetune_*`` setting or combination (read at construction)."""
    if model.finetune not in FINETUNES:
        raise ConfigError(f"finetune must be one of {', '.join(FINETUNES)}, not {model.finetune!r}")
    if model.finetune_negatives not in NEGATIVES:
        raise ConfigError(f"finetune_negatives must be one of {', '.join(NEGATIVES)}, not {model.finetune_negatives!r}")
    if model.finetune_spo < 0:
        raise ConfigError("finetune_spo must be ≥ 0")
    if model.finetune_spo and model.finetune not in PAIR_LOSSES:
        raise ConfigError(f"finetune_spo (SPO's preference-degree loss) goes with finetune={'|'.join(PAIR_LOSSES)}, "
                          f"not {model.finetune!r}")
    if model.finetune_beta <= 0 or model.finetune_lr <= 0 or model.finetune_epochs < 1 or model.finetune_topk < 1:
        raise ConfigError("finetune_beta and finetune_lr must be positive, finetune_epochs and finetune_topk ≥ 1")
    if not 0 <= model.finetune_flip < 0.5:
        raise ConfigError("finetune_flip (rdpo's flip rate ε) must be in [0, 0.5)")
    if model.finetune_liked <= model.finetune_disliked:
        raise ConfigError("finetune_liked must be above finetune_disliked")
    if model.finetune != "off" and model.long_len:
        raise ConfigError("preference fine-tuning reads the recent max_len items only; "
                          "the model has a long-term part (long_len > 0)")
    if model.finetune != "off" and model.summaries:
        raise ConfigError("preference fine-tuning reads item histories only; "
                          "the model also reads user summaries (summaries=...)")


def check_log(model: NeuralSequential, train: Dataset) -> None:
    """ConfigError where the options need what the log lacks (checked before training)."""
    uses_negatives = model.finetune not in ("off", "sft")
    if uses_negatives and model.finetune_negatives == "rated" and train.ratings is None:
        raise ConfigError("finetune_negatives=rated draws items the user rated ≤ finetune_disliked, "
                          "but this log has no ratings; use uniform, popular or on-policy")


def finetune(model: NeuralSequential, train: Dataset) -> list[float]:
    """Fine-tune ``model`` (fitted on ``train``) in place with its ``finetune_*`` options; returns
    the mean training loss of each epoch (for ``ppo``: what ``ppo_finetune`` returns)."""
    check_options(model)
    check_log(model, train)
    if model.finetune == "off":
        return []
    winners = liked_next_items(train, model.max_len, liked=model.finetune_liked)
    rated = None
    if model.finetune != "sft" and model.finetune_negatives == "rated":
        rows, rated = rated_losers(train, winners, disliked=model.finetune_disliked, seed=model.seed)
        winners = winners.subset(rows)
    if not len(winners):
        raise DataError(f"no preference pairs in {train.name}: no next item rated ≥ {model.finetune_liked:g}"
                        + (f" by a user who rated an item ≤ {model.finetune_disliked:g}" if rated is not None else ""))
    sampler = None if model.finetune == "sft" else make_sampler(model.finetune_negatives, train, winners,
                                                                 liked=model.finetune_liked, topk=model.finetune_topk,
                                                                 rated=rated)
    rng = np.random.default_rng(model.seed)
    if model.finetune == "ppo":
        return _ppo(model, train, winners, sampler, rng)
    return optimise(model, winners, sampler, loss=model.finetune, beta=model.finetune_beta, flip_rate=model.finetune_flip,
                    lr=model.finetune_lr, epochs=model.finetune_epochs, batch_size=model.batch_size, seed=model.seed,
                    spo=model.finetune_spo, degrees=Degrees(train) if model.finetune_spo else None)


def finetune_pairs(model: NeuralSequential, pairs: PreferencePairs, *, loss: str = "dpo", beta: float = 0.1,
                   flip_rate: float = 0.0, lr: float = 1e-4, epochs: int = 3, batch_size: int = 256,
                   seed: int = DEFAULT_SEED) -> list[float]:
    """Fine-tune ``model`` in place on fixed next-item ``pairs`` (winner and loser items after each
    pair's ``history``, int64 (n, max_len)) with the ``loss`` of :mod:`.losses` (``dpo``, ``rdpo``,
    ``ipo`` or ``sft``); returns the mean loss of each epoch."""
    if model.long_len:
        raise ConfigError("preference fine-tuning reads the recent max_len items only; "
                          "the model has a long-term part (long_len > 0)")
    if model.summary_row_ is not None:
        raise ConfigError("preference fine-tuning reads item histories only; "
                          "the model also reads user summaries (summaries=...)")
    if pairs.history is None:
        raise DataError(f"{pairs.name} has no histories; DPO of a next-item model needs the items before each choice")
    if pairs.history.shape[1] != model.max_len:
        raise DataError(f"pairs were built for histories of {pairs.history.shape[1]} items, "
                        f"the model reads {model.max_len}")
    n = len(pairs)
    winners = NextItems(pairs.user, np.full(n, -1, np.int64), pairs.winner.astype(np.int64), None, pairs.history)
    return optimise(model, winners, RatedNegatives(pairs.loser), loss=loss, beta=beta, flip_rate=flip_rate, lr=lr,
                    epochs=epochs, batch_size=batch_size, seed=seed)


def optimise(model: NeuralSequential, winners: NextItems, sampler: Sampler | None, *, loss: str, beta: float, flip_rate: float,
             lr: float, epochs: int, batch_size: int, seed: int, spo: float = 0.0, degrees: Degrees | None = None,
             ) -> list[float]:
    """The training loop: ``epochs`` passes over ``winners`` in random order, each batch's losers from
    ``sampler`` (None for ``sft``), against a frozen copy of the network; returns the mean loss of each epoch."""
    import torch

    from penchant.models.training import net_device, seed_torch

    seed_torch(seed)
    rng = np.random.default_rng(seed)
    net, n_items, dev = model.net_, model.n_items_, net_device(model.net_)
    reference = copy.deepcopy(net).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    params = list(net.parameters())
    head = None
    if spo:
        head = torch.nn.Linear(2 * model.factors, SPO_CLASSES).to(dev)
        params += list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(epochs):
        net.train()
        order = rng.permutation(len(winners))
        total = 0.0
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            seqs = torch.from_numpy(winners.history[rows]).to(dev)
            w = torch.from_numpy(winners.item[rows]).to(dev)
            hidden, table, logp = next_item_policy(net, seqs, n_items)
            pol_w = logp.gather(1, w[:, None])[:, 0]
            if loss == "sft":
                value = sft_loss(pol_w)
            else:
                if sampler.on_policy:  # the current policy as it ranks at inference: no dropout
                    net.eval()
                    with torch.no_grad():
                        current = next_item_log_probs(net, seqs, n_items)
                    net.train()
                    losers = sampler.draw(rng, rows, current)
                else:
                    losers = sampler.draw(rng, rows)
                lo = torch.from_numpy(losers).to(dev)
                pol_l = logp.gather(1, lo[:, None])[:, 0]
                with torch.no_grad():
                    ref = next_item_log_probs(reference, seqs, n_items)
                value = pair_loss(loss, pol_w, pol_l, ref.gather(1, w[:, None])[:, 0], ref.gather(1, lo[:, None])[:, 0],
                                  beta=beta, flip_rate=flip_rate)
                if head is not None:
                    target = torch.from_numpy(degrees(winners.user[rows], winners.position[rows], losers)).to(dev)
                    value = value + spo * spo_degree_loss(head(spo_features(hidden, table[w], table[lo])), target)
            opt.zero_grad()
            value.backward()
            opt.step()
            total += float(value.detach()) * len(rows)
        losses.append(total / max(len(order), 1))
    net.eval()
    return losses


def _ppo(model: NeuralSequential, train: Dataset, winners: NextItems, sampler, rng: np.random.Generator) -> list[float]:
    """PPO (:mod:`.ppo`) on the winners, each paired once with a loser drawn before training."""
    import torch

    from penchant.models.sequential.alignment.ppo import ppo_finetune
    from penchant.models.training import net_device

    rows = np.arange(len(winners))
    if sampler.on_policy:
        dev = net_device(model.net_)
        model.net_.eval()
        losers = np.empty(len(rows), np.int64)
        with torch.no_grad():
            for s in range(0, len(rows), model.batch_size):
                sel = rows[s:s + model.batch_size]
                logp = next_item_log_probs(model.net_, torch.from_numpy(winners.history[sel]).to(dev), model.n_items_)
                losers[sel] = sampler.draw(rng, sel, logp)
    else:
        losers = sampler.draw(rng, rows)
    pairs = winners.pairs(train, losers, f"liked next items against {model.finetune_negatives} negatives")
    return ppo_finetune(model, pairs, beta=model.finetune_beta, lr=model.finetune_lr, epochs=model.finetune_epochs,
                        batch_size=model.batch_size, seed=model.seed)
