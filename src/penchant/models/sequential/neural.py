"""Training shared by the neural sequential models (SASRec, GRU4Rec): next-item targets at every
position of windows of the training sequences, the losses the literature compares, early stopping.

Each user's training sequence is cut into windows of ``max_len`` transitions (:func:`windows`), so
every observed transition is a training target exactly once per epoch. A network maps int64
(B, L) right-aligned item windows (padding = ``n_items``) to hidden states (B, L, d); the score of
item j after position t is ``h_t · e_j`` with the input item embeddings ``e`` (weight tying).

Losses (``loss=``):

* ``ce``: softmax cross-entropy over the full catalogue;
* ``sampled``: softmax over the target and ``negatives`` items drawn uniformly, shared by the batch;
* ``bce``: the original SASRec objective, −log σ(s⁺) − log(1 − σ(s⁻)) with one uniform negative
  per position;
* ``bpr-max`` and ``top1-max`` (GRU4Rec, Hidasi & Karatzoglou 2018), over the shared negatives,
  weighted by the softmax of the negatives' scores: BPR-max = −log Σ_j w_j σ(s⁺ − s_j) +
  ``bpreg``·Σ_j w_j s_j²; TOP1-max = Σ_j w_j (σ(s_j − s⁺) + σ(s_j²)).
"""

from __future__ import annotations

import time

import numpy as np

from penchant.models.base import Validator
from penchant.models.sequential.base import SequentialRecommender, pad_left, windows
from penchant.models.training import EarlyStopping, seed_torch, validate_net

LOSSES = ("ce", "sampled", "bce", "bpr-max", "top1-max")

#: the training arguments every neural sequential model documents
TRAINING_ARGS = """
        negatives: negatives per batch for the sampled losses.
        bpreg: score regularisation of ``bpr-max``.
        lr: Adam learning rate.
        weight_decay: Adam's L2 weight.
        epochs: maximum epochs.
        batch_size: windows per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation, dropout, order and sampling.
"""


class NeuralSequential(SequentialRecommender):
    """Shared fit/score for torch sequence encoders; subclasses build ``_network()``."""

    net_ = None

    def _check_common(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.factors < 1 or self.max_len < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("factors, max_len, epochs and batch_size must be ≥ 1 and lr positive")
        if not 0 <= self.dropout < 1 or self.negatives < 1:
            raise ValueError("dropout must be in [0, 1) and negatives ≥ 1")

    def _network(self):
        raise NotImplementedError

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        w_ptr, w_items = windows(indptr, items, self.max_len)
        keep = np.flatnonzero(np.diff(w_ptr) >= 2)  # a window needs one transition
        self.net_ = self._network()
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        stopper = EarlyStopping(self.patience)
        self.epoch_seconds_: list[float] = []
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            self.net_.train()
            order = rng.permutation(keep)
            for s in range(0, len(order), self.batch_size):
                block = pad_left(w_ptr, w_items, order[s:s + self.batch_size], self.max_len + 1, self.n_items_)
                seqs = torch.from_numpy(block[:, :-1])
                targets = torch.from_numpy(block[:, 1:])
                mask = (targets != self.n_items_) & (seqs != self.n_items_)
                hidden = self.net_(seqs)[mask]  # (positions, d)
                loss = self._loss(hidden, targets[mask], rng)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.epoch_seconds_.append(time.perf_counter() - start)
            if validate_net(self, self.net_, stopper, epoch, valid, self.eval_every):
                break
        stopper.restore_best(self)
        self.net_.eval()

    def _loss(self, hidden, targets, rng: np.random.Generator):
        import torch
        import torch.nn.functional as F

        table = self.net_.item_emb.weight[: self.n_items_]
        if self.loss == "ce":
            return F.cross_entropy(hidden @ table.T, targets)
        pos = (hidden * table[targets]).sum(1)
        if self.loss == "bce":
            neg_items = torch.from_numpy(rng.integers(0, self.n_items_, size=len(targets)))
            neg = (hidden * table[neg_items]).sum(1)
            return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()
        neg_items = torch.from_numpy(rng.integers(0, self.n_items_, size=self.negatives))
        neg = hidden @ table[neg_items].T  # (positions, negatives)
        neg = neg.masked_fill(neg_items[None, :] == targets[:, None], float("-inf"))  # a drawn target is no negative
        if self.loss == "sampled":
            return F.cross_entropy(torch.cat([pos[:, None], neg], dim=1), torch.zeros_like(targets))
        finite = torch.isfinite(neg)
        weight = torch.softmax(neg, dim=1)
        safe = torch.where(finite, neg, torch.zeros_like(neg))
        if self.loss == "bpr-max":
            inner = (weight * torch.sigmoid(pos[:, None] - safe)).sum(1)
            return (-torch.log(inner + 1e-10) + self.bpreg * (weight * safe.pow(2)).sum(1)).mean()
        return (weight * (torch.sigmoid(safe - pos[:, None]) + torch.sigmoid(safe.pow(2)))).sum(1).mean()

    def _restore(self, state: dict) -> None:
        self.net_.load_state_dict(state)

    def selected(self) -> dict[str, int]:
        return {"epochs": self.best_epoch_} if getattr(self, "best_epoch_", None) else {}

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            hidden = self.net_(torch.from_numpy(seqs))[:, -1]
            return (hidden @ self.net_.item_emb.weight[: self.n_items_].T).numpy()

    def _state(self) -> dict[str, np.ndarray]:
        return {**self._history_state(), **{f"net.{k}": v.detach().numpy() for k, v in self.net_.state_dict().items()}}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self._load_history(arrays)
        self.net_ = self._network()
        self.net_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")})
        self.net_.eval()
