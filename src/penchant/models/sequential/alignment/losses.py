"""Preference losses of a next-item policy, from log-probabilities of the chosen (w) and rejected
(l) items after a history s under the policy π and the frozen reference π_ref (torch (B,) tensors).

With the log-ratio margin ``h = (log π(w|s) − log π_ref(w|s)) − (log π(l|s) − log π_ref(l|s))``:

* ``dpo`` (Rafailov et al., 2023): ``−log σ(β h)``;
* ``rdpo``, robust DPO (Chowdhury et al., 2024) for labels flipped with probability ε < ½: the
  unbiased ``[(1 − ε) L(w, l) − ε L(l, w)] / (1 − 2ε)`` with ``L`` the DPO loss;
* ``ipo`` (Azar et al., 2024, ΨPO with Ψ the identity): ``(h − 1/(2β))²``, β in the role of the
  paper's τ;
* ``sft``: ``−log π(w|s)``, maximum likelihood on the winners (no rejected item, no negative
  gradient; Tajwar et al., 2024's offline baseline);
* :func:`spo_degree_loss`: SPO's self-supervised preference-degree loss (Li et al., 2024), the
  cross-entropy of a head classifying each pair's degree (:mod:`.pairs`) from the policy's
  representation of the pair (:func:`spo_features`); added with weight λ to dpo, rdpo or ipo.

Each returns the batch mean.
"""

from __future__ import annotations

from penchant.errors import ConfigError

#: the pair losses by name (``sft`` takes the winners only)
PAIR_LOSSES = ("dpo", "rdpo", "ipo")


def log_ratio_margin(policy_w, policy_l, ref_w, ref_l):
    """``h``: (B,) how much more the policy than the reference prefers w to l, in nats."""
    return (policy_w - ref_w) - (policy_l - ref_l)


def dpo_loss(policy_w, policy_l, ref_w, ref_l, beta: float, flip_rate: float = 0.0):
    """Mean (robust) DPO loss from log-probabilities of the chosen (w) and rejected (l) items."""
    import torch.nn.functional as F

    if not 0 <= flip_rate < 0.5:
        raise ConfigError("flip_rate must be in [0, 0.5)")
    margin = beta * log_ratio_margin(policy_w, policy_l, ref_w, ref_l)
    forward, backward = -F.logsigmoid(margin), -F.logsigmoid(-margin)
    return (((1 - flip_rate) * forward - flip_rate * backward) / (1 - 2 * flip_rate)).mean()


def ipo_loss(policy_w, policy_l, ref_w, ref_l, beta: float):
    """Mean IPO loss ``(h − 1/(2β))²``: the margin regressed onto a fixed target instead of pushed
    to infinity, so that the policy stays near the reference even on deterministic preferences."""
    if beta <= 0:
        raise ConfigError("beta must be positive")
    return (log_ratio_margin(policy_w, policy_l, ref_w, ref_l) - 1 / (2 * beta)).pow(2).mean()


def sft_loss(policy_w):
    """Mean negative log-likelihood ``−log π(w|s)`` of the winners."""
    return -policy_w.mean()


def pair_loss(kind: str, policy_w, policy_l, ref_w, ref_l, *, beta: float, flip_rate: float):
    """The ``kind`` (``dpo``, ``rdpo`` or ``ipo``) loss; rdpo reads ``flip_rate``, the others ignore it."""
    if kind == "dpo":
        return dpo_loss(policy_w, policy_l, ref_w, ref_l, beta)
    if kind == "rdpo":
        return dpo_loss(policy_w, policy_l, ref_w, ref_l, beta, flip_rate)
    if kind == "ipo":
        return ipo_loss(policy_w, policy_l, ref_w, ref_l, beta)
    raise ConfigError(f"pair loss must be one of {', '.join(PAIR_LOSSES)}, not {kind!r}")


def spo_features(hidden, winner_vec, loser_vec):
    """The policy's representation of a pair, (B, 2d): the history's hidden state ``h`` (B, d)
    times each item's embedding (B, d) elementwise, ``[h ⊙ e_w, h ⊙ e_l]`` (the two summands of the
    items' scores ``h · e``, kept per dimension)."""
    import torch

    return torch.cat([hidden * winner_vec, hidden * loser_vec], dim=1)


def spo_degree_loss(logits, degree):
    """Mean cross-entropy of the degree head's ``logits`` (B, SPO_CLASSES) against the pairs'
    degree classes ``degree`` (int64 (B,))."""
    import torch.nn.functional as F

    return F.cross_entropy(logits, degree)
