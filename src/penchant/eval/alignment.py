"""How a preference-tuned next-item policy ranks held-out pairs, against what it could, and how far it moved.

For a trained sequential recommender (SASRec, GRU4Rec) π(· | s) is its next-item distribution after
history s (:func:`~penchant.models.sequential.alignment.policy.next_item_log_probs`); pairs are
(history s, winner w, loser l) triples (:class:`~penchant.data.PreferencePairs` with ``history``).

* :func:`ranking_accuracy`: the share of pairs with π(w | s) > π(l | s) (ties ½).
* :func:`idealised_ranking_accuracy`: Chen et al. (2024), "Preference learning algorithms do not
  learn preference rankings", Theorem 3.1: the optimum of the DPO and RLHF objectives,
  π* ∝ π_ref · exp(r*/β) with r* a Bradley–Terry reward, satisfies

      π*(w | s) / π*(l | s) = π_ref(w | s) / π_ref(l | s) · (α / (1 − α))^(1/β),

  α = P(w ≻ l | s), the true share of people preferring w. The idealised ranking accuracy is the
  share of pairs where this ratio exceeds 1 (ties ½): log π_ref(w) − log π_ref(l) + log(α/(1−α))/β > 0.
  Where α = 1 the ideal policy always ranks w first; where α = ½ it keeps the reference's order.
* :func:`preference_shares` estimates α from a rating log (our logs hold no repeated labels of one pair).
* :func:`kl_from_reference`: mean KL(π(· | s) ‖ π_ref(· | s)) over histories, in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset, PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models.sequential.alignment.policy import next_item_log_probs
from penchant.models.training import net_device


def _need_history(pairs: PreferencePairs) -> np.ndarray:
    if pairs.history is None:
        raise DataError(f"{pairs.name} has no histories; a next-item policy ranks items after a history")
    return pairs.history


def pair_log_probs(net, pairs: PreferencePairs, n_items: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """log π(w | s) and log π(l | s), float64 (n,) each, of a sequential torch ``net`` over the
    catalogue of ``n_items`` items, for every pair (``pairs.history`` int64 (n, L), padding = ``n_items``)."""
    import torch

    history = _need_history(pairs)
    dev = net_device(net)
    was_training = net.training
    net.eval()
    out_w, out_l = np.empty(len(pairs)), np.empty(len(pairs))
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            sel = slice(s, s + batch_size)
            logp = next_item_log_probs(net, torch.from_numpy(history[sel]).to(dev), n_items)
            w, l = (torch.from_numpy(a[sel]).to(dev) for a in (pairs.winner, pairs.loser))
            out_w[sel] = logp.gather(1, w[:, None])[:, 0].double().cpu().numpy()
            out_l[sel] = logp.gather(1, l[:, None])[:, 0].double().cpu().numpy()
    net.train(was_training)
    return out_w, out_l


def ranking_accuracy(model, pairs: PreferencePairs, batch_size: int = 1024) -> float:
    """Share of ``pairs`` (with histories of ``model.max_len`` items) where the trained
    NeuralSequential ``model`` gives the winner a higher next-item probability than the loser,
    ties counting ½; a number in [0, 1]."""
    if len(pairs) == 0:
        raise DataError(f"{pairs.name} holds no pairs to rank")
    w, l = pair_log_probs(model.net_, pairs, model.n_items_, batch_size)
    return float(np.mean((w > l) + 0.5 * (w == l)))


def idealised_correct(ref_w: np.ndarray, ref_l: np.ndarray, alpha: np.ndarray, beta: float) -> np.ndarray:
    """Whether the ideal DPO/RLHF policy ranks each pair's winner first: 1, 0 or ½ (a tie), float (n,),
    from the reference's log π_ref(w | s), log π_ref(l | s) (float (n,), nats), the share α (n,) in
    [0, 1] of people preferring w, and the KL weight β > 0 (Chen et al. 2024, Theorem 3.1)."""
    if beta <= 0:
        raise ConfigError("beta must be positive")
    alpha = np.asarray(alpha, np.float64)
    if np.any(~((alpha >= 0) & (alpha <= 1))):
        raise DataError("preference shares α must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        bonus = (np.log(alpha) - np.log1p(-alpha)) / beta  # ±inf where every person agrees
    margin = np.where(np.isinf(bonus), bonus, np.asarray(ref_w, np.float64) - ref_l + bonus)
    return (margin > 0) + 0.5 * (margin == 0)


@dataclass(frozen=True)
class IdealisedAccuracy:
    """The idealised ranking accuracy over the pairs with an α; ``skipped`` pairs had none (α NaN)."""

    accuracy: float
    used: int
    skipped: int


def idealised_ranking_accuracy(reference_net, pairs: PreferencePairs, alpha: np.ndarray, *, beta: float,
                               n_items: int, batch_size: int = 1024) -> IdealisedAccuracy:
    """Chen et al.'s idealised ranking accuracy (module docstring) of the reference policy
    ``reference_net`` (the network before preference tuning) over a catalogue of ``n_items``, on
    ``pairs`` with histories, given the shares ``alpha`` float (n,) of people preferring each winner
    (NaN where unknown: those pairs are left out and counted in ``skipped``) and the KL weight β."""
    alpha = np.asarray(alpha, np.float64)
    if alpha.shape != (len(pairs),):
        raise DataError(f"alpha has shape {alpha.shape}, the pairs need ({len(pairs)},)")
    known = ~np.isnan(alpha)
    if not known.any():
        raise DataError("no pair has a preference share α; the idealised accuracy is undefined")
    kept = pairs.subset(known)
    ref_w, ref_l = pair_log_probs(reference_net, kept, n_items, batch_size)
    correct = idealised_correct(ref_w, ref_l, alpha[known], beta)
    return IdealisedAccuracy(float(correct.mean()), int(known.sum()), int((~known).sum()))


def preference_shares(ratings: Dataset, pairs: PreferencePairs, *, prior: float = 1.0) -> np.ndarray:
    """α̂ for each pair, float64 (n,): among the users of ``ratings`` (a rating log over the pairs'
    item catalogue) who rated both the winner and the loser, the share who rated the winner higher,
    a tie counting ½, Laplace-smoothed towards ½ with ``prior`` pseudo-users on each side:
    (higher + ½ ties + prior) / (both + 2 prior). NaN where nobody rated both items (no estimate).
    The latest rating counts when a user rated an item twice. A pair built from the log itself counts
    its own user among the raters."""
    if ratings.ratings is None:
        raise DataError("preference shares need a rating log")
    if prior < 0:
        raise ConfigError("prior must be ≥ 0")
    if ratings.n_items != pairs.n_options:
        raise DataError(f"the rating log has {ratings.n_items} items, the pairs {pairs.n_options}")
    value = ratings.matrix("rating").tocsc()
    rated = ratings.matrix("binary").tocsc()
    keys, inverse = np.unique(np.stack([pairs.winner, pairs.loser], axis=1), axis=0, return_inverse=True)
    higher, both = np.empty(len(keys)), np.empty(len(keys))
    for s in range(0, len(keys), 4096):  # columns users × chunk stay sparse
        w, l = keys[s:s + 4096, 0], keys[s:s + 4096, 1]
        mask = rated[:, w].multiply(rated[:, l])
        diff = sp.csc_matrix(value[:, w] - value[:, l])
        up = ((diff > 0).multiply(mask)).sum(axis=0).A1
        down = ((diff < 0).multiply(mask)).sum(axis=0).A1
        both[s:s + len(w)] = mask.sum(axis=0).A1
        higher[s:s + len(w)] = up + 0.5 * (both[s:s + len(w)] - up - down)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(both > 0, (higher + prior) / (both + 2 * prior), np.nan)
    return alpha[inverse.ravel()]


def kl_from_reference(model, reference_net, histories: np.ndarray, batch_size: int = 1024) -> float:
    """Mean over ``histories`` (int64 (n, max_len), right-aligned, padding = ``model.n_items_``) of
    KL(π(· | s) ‖ π_ref(· | s)) = Σ_j π(j | s) (log π(j | s) − log π_ref(j | s)), in nats, between the
    fine-tuned ``model`` (a NeuralSequential) and ``reference_net`` (its network before fine-tuning)."""
    import torch

    histories = np.asarray(histories, np.int64)
    if histories.ndim != 2 or len(histories) == 0:
        raise DataError("histories must be a non-empty (n, max_len) array")
    dev = net_device(model.net_)
    nets = (model.net_, reference_net)
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(histories), batch_size):
            seqs = torch.from_numpy(histories[s:s + batch_size]).to(dev)
            logp = next_item_log_probs(model.net_, seqs, model.n_items_)
            logq = next_item_log_probs(reference_net, seqs, model.n_items_)
            total += float((logp.exp() * (logp - logq)).sum().double())
    for net, mode in zip(nets, modes):
        net.train(mode)
    return total / len(histories)
