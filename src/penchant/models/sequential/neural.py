"""Training shared by the neural sequential models (SASRec, GRU4Rec): next-item targets at every
position of windows of the training sequences, the losses the literature compares, early stopping.

Each user's training sequence is cut into windows of ``max_len`` transitions (:func:`windows`), so
every observed transition is a training target exactly once per epoch. A network maps int64
(B, L) right-aligned item windows (padding = ``n_items``) to hidden states (B, L, d); the score of
item j after position t is ``h_t · e_j`` with the input item embeddings ``e`` (weight tying). The
item table ``e`` comes from :func:`item_table`: id vectors, a projection of frozen sentence
embeddings of the items' descriptions (``item_text``), or both.

With ``summaries`` (a file of user id -> a text describing the user's taste, as written by
``penchant llm summarize``), each summarised user's windows start with one more position: the
summary's sentence embedding through the item table's text projection, as a virtual item just
before the oldest one (:mod:`penchant.models.sequential.items`). It is the same for all of a user's training
windows, like a learned user vector, and reads nothing of validation or test events when the
summaries are written from the training history. Users without a summary (and anonymous sessions)
get padding there.

Losses (``loss=``):

* ``ce``: softmax cross-entropy over the full catalogue;
* ``sampled``: sampled softmax with log-Q correction: ``negatives`` items drawn by ``sampler``
  (uniform, or ∝ training popularity) for each window, shared by its positions; the softmax runs over the target's
  score s⁺ and the negatives' scores s_j − log(k·Q(j)), Q the sampler's probability of item j.
  exp(s_j)/(k·Q(j)) summed over the draws is an unbiased estimate of Σ_j exp(s_j) over the
  catalogue, so the partition function this softmax normalises by is the full one's in
  expectation (Bengio & Senécal 2008; the same correction as Yi et al., RecSys 2019). A draw
  equal to the position's target is removed (its term set to zero). Its validation curve is
  noisier than the full softmax's: on ML-100K (GRU4Rec, k = 256, leave-last-out) five checks of
  patience stopped it at NDCG@10 0.0873 (epoch 26); forty checks and 60 epochs gave 0.1115
  against the full softmax's 0.1130 under the same protocol (0.987×; over seeds 0–2 1.008 ± 0.046;
  SASRec 0.945 ± 0.059; docs/benchmarks.md);
* ``gbce``: gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023): k = ``negatives``
  negatives, α = k/(N − 1) over the N items negatives are drawn from, β = α(t(1 − 1/α) + 1/α) with
  t = ``gbce_t`` ∈ [0, 1], and the loss −(β·log σ(s⁺) + Σ_j log(1 − σ(s_j)))/(k + 1), i.e. the
  positive's probability raised to β (t = 0: β = 1, plain BCE; t = 1: β = α, fully calibrated).
  Simplification against the paper's code: negatives are drawn for each window and shared by its
  positions (one batched product) instead of for every position, and a draw equal to the target
  is removed. Negatives shared by the whole batch were tried first and trained badly on ML-100K
  (GRU4Rec gBCE 0.0187 NDCG@10 leave-last-out, sampled softmax 0.0778, against the full softmax's
  0.1069 in the docs): every position of a step pushed the same k items down;
* ``bce``: the original SASRec objective, −log σ(s⁺) − log(1 − σ(s⁻)) with one negative per
  position;
* ``bpr-max`` and ``top1-max`` (GRU4Rec, Hidasi & Karatzoglou 2018), over the shared negatives,
  weighted by the softmax of the negatives' scores: BPR-max = −log Σ_j w_j σ(s⁺ − s_j) +
  ``bpreg``·Σ_j w_j s_j²; TOP1-max = Σ_j w_j (σ(s_j − s⁺) + σ(s_j²)).

``gbce`` and ``bce`` judge each score on its own, so every score they see is s + b with one
learned offset b (``logit_bias``; it shifts all items alike, so rankings and the scores served
are h·e without it), started at log(β/k), where their loss at a constant logit is least (−6.6
for gBCE with k = 256 on ML-100K). Without it the model itself had to put every negative's logit
near that level: GRU4Rec saturated its GRU (88% of outputs beyond ±0.95 after 10 epochs) and
scored every user alike — gBCE at 0.044 test NDCG@10 on ML-100K, the popularity ranking's level,
against 0.086 with the offset (full softmax 0.107; seed 1: 0.109 against 0.102; docs/benchmarks.md). gSASRec's reference code
has no such term; its N(0, 1) item embeddings (norm ≈ √d) give the logits that range from the start.
"""

from __future__ import annotations

import time

import numpy as np

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.distributed import shard, synced
from penchant.models.sequential.alignment.finetune import check_log as check_finetune_log
from penchant.models.sequential.alignment.finetune import check_options as check_finetune
from penchant.models.sequential.alignment.finetune import finetune
from penchant.models.sequential.base import SequentialRecommender, pad_left, right_aligned, window_bounds
from penchant.models.sequential.hashed import hashed_interest
from penchant.models.sequential.items import ITEM_TEXT_MODES, item_table
from penchant.models.training import EarlyStopping, net_device, seed_torch, torch_device, validate_net

LOSSES = ("ce", "sampled", "gbce", "bce", "bpr-max", "top1-max")
SAMPLERS = ("uniform", "popularity")
#: losses whose negatives are drawn for each window (the others share one draw across the batch)
WINDOW_SAMPLED = ("sampled", "gbce")
#: losses that judge each score on its own (σ(s)) rather than against the others: they train a
#: global logit offset (``logit_bias``), see :meth:`NeuralSequential._build_net`
ABSOLUTE = ("gbce", "bce")

#: the training arguments every neural sequential model documents
TRAINING_ARGS = """
        item_text: ``off`` (id embeddings), ``fuse`` (id embeddings of warm items plus a projection of
            the item's sentence embedding; cold items by text alone) or ``text`` (text only); see
            :mod:`penchant.models.sequential.items`. Descriptions come from the dataset's item text
            and item-file attributes (:func:`penchant.embed.item_descriptions`).
        id_dropout: with ``fuse``, the chance per step that a warm item's id vector is dropped.
        text_model: the sentence encoder for ``item_text`` (all-MiniLM-L6-v2, packaged).
        summaries: a JSON file of user summaries ("" for none; needs ``item_text`` ``fuse`` or ``text``).
        long_len: with > 0, the ``long_len`` items before the ``max_len`` recent ones add a
            long-term score by hash-based sampling (SDIM; :mod:`penchant.models.sequential.hashed`),
            at cost linear in ``long_len``; needs ``loss="ce"``.
        hashes, hash_bits: SimHash functions and bits per function of the long-term part.
        negatives: negatives per batch for the sampled losses (k).
        sampler: how negatives are drawn: ``uniform`` or ``popularity`` (∝ training count); the
            sampled softmax subtracts log(k·Q) of the draw's probability Q either way.
        gbce_t: gBCE's calibration t in [0, 1] (β = α(t(1 − 1/α) + 1/α), α = k/(N − 1)).
        bpreg: score regularisation of ``bpr-max``.
        lr: Adam learning rate.
        weight_decay: Adam's L2 weight.
        epochs: maximum epochs.
        batch_size: windows per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation, dropout, order and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda: the network lives there and each batch
            of windows is moved there as it is used.
        finetune: preference fine-tuning at the end of fit, on the training log
            (:mod:`penchant.models.sequential.alignment`): ``off``, ``dpo``, ``rdpo`` (robust DPO),
            ``ipo``, ``sft`` (maximum likelihood of the liked next items) or ``ppo``.
        finetune_spo: weight of SPO's self-supervised preference-degree loss (with dpo, rdpo or ipo).
        finetune_negatives: the rejected items: ``rated`` (items the user rated ≤ finetune_disliked;
            needs ratings), ``uniform``, ``popular`` or ``on-policy`` (the current model's top finetune_topk).
        finetune_beta: β, the strength of the pull towards the model before fine-tuning (KL weight).
        finetune_lr: Adam learning rate of fine-tuning.
        finetune_epochs: passes over the liked next items.
        finetune_flip: rdpo's label flip rate ε, in [0, 0.5).
        finetune_topk: the pool of on-policy negatives: the current model's top items after the history.
        finetune_liked: the rating from which a next item is preferred (every next item without ratings).
        finetune_disliked: the rating up to which an item is a rated negative.
"""


def sampled_softmax_loss(pos, neg, hit):
    """Mean −log softmax of the target among itself and the negatives: ``pos`` (P,) target scores,
    ``neg`` (P, k) corrected negative scores, ``hit`` bool (P, k) draws equal to the target (left out)."""
    import torch
    import torch.nn.functional as F

    logits = torch.cat([pos[:, None], neg.masked_fill(hit, float("-inf"))], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device))


def gbce_loss(pos, neg, hit, beta: float):
    """gBCE: mean over positions of −(β·log σ(s⁺) + Σ_j log σ(−s_j))/(k + 1); ``pos`` (P,), ``neg``
    (P, k) scores, ``hit`` bool (P, k) draws equal to the target (their terms dropped).
    β·log σ(s⁺) = log σ(s⁺)^β: the paper's transformed positive, computed in log space."""
    import torch.nn.functional as F

    negative = F.logsigmoid(-neg).masked_fill(hit, 0.0).sum(1)
    return -((beta * F.logsigmoid(pos) + negative) / (neg.shape[1] + 1)).mean()


class NeuralSequential(SequentialRecommender):
    """Shared fit/score for torch sequence encoders; subclasses build ``_network()``."""

    net_ = None
    item_text: str = "off"
    id_dropout: float = 0.1
    text_model: str = "all-MiniLM-L6-v2"
    long_len: int = 0
    hashes: int = 4
    hash_bits: int = 3
    summaries: str = ""
    summary_text_: np.ndarray | None = None  # float32 (m, t) embeddings of the summaries used
    summary_row_: np.ndarray | None = None  # int64 (n_users at fit,) row in summary_text_, -1 for none
    finetune: str = "off"
    finetune_spo: float = 0.0
    finetune_negatives: str = "rated"
    finetune_beta: float = 0.1
    finetune_lr: float = 3e-5
    finetune_epochs: int = 1
    finetune_flip: float = 0.1
    finetune_topk: int = 20
    finetune_liked: float = 4.0
    finetune_disliked: float = 2.0
    finetune_losses_: list[float] | None = None  # mean loss of each fine-tuning epoch, after fit
    sampler: str = "uniform"
    gbce_t: float = 0.75

    @property
    def context_len(self) -> int:
        return self.max_len + self.long_len

    def _check_common(self) -> None:
        if self.long_len < 0 or self.hashes < 1 or not 1 <= self.hash_bits <= 8:
            raise ConfigError("long_len must be ≥ 0, hashes ≥ 1 and hash_bits in 1..8")
        if self.long_len and self.loss != "ce":
            raise ConfigError("long_len > 0 (hashed long-term interest) is trained with loss='ce' only")
        if self.item_text not in ITEM_TEXT_MODES:
            raise ConfigError(f"item_text must be one of {', '.join(ITEM_TEXT_MODES)}, not {self.item_text!r}")
        if self.summaries and self.item_text == "off":
            raise ConfigError("summaries are read through the item text projection: "
                              "they need item_text='fuse' or 'text'")
        if not 0 <= self.id_dropout < 1:
            raise ConfigError("id_dropout must be in [0, 1)")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.factors < 1 or self.max_len < 1 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("factors, max_len, epochs and batch_size must be ≥ 1 and lr positive")
        if not 0 <= self.dropout < 1 or self.negatives < 1:
            raise ConfigError("dropout must be in [0, 1) and negatives ≥ 1")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if not 0 <= self.gbce_t <= 1:
            raise ConfigError(f"gbce_t must be in [0, 1], not {self.gbce_t}")
        check_finetune(self)

    def _network(self):
        raise NotImplementedError

    def check_data(self, train: Dataset) -> None:
        check_finetune_log(self, train)
        if self.item_text != "off":
            from penchant.embed.items import require_item_words

            require_item_words(train)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.item_vectors_ = self.warm_ = None  # warm_: items the softmax and negatives range over
        if self.item_text != "off":
            from penchant.embed import embed_items

            self.item_vectors_ = embed_items(train, self.text_model)
            self.warm_ = train.item_counts > 0
        self.summary_text_ = self.summary_row_ = None
        if self.summaries:
            from penchant.embed.summaries import embed_summaries

            self.summary_text_, rows, self.summaries_unknown_ = embed_summaries(self.summaries, train, self.text_model)
            self.summary_row_ = np.full(train.n_users, -1, np.int64)
            self.summary_row_[rows] = np.arange(len(rows))
        super()._fit(train, valid)  # early stopping has restored the best epoch
        self.finetune_losses_ = finetune(self, train)

    @property
    def _prefix(self) -> int:
        """Positions before the history items: 1 for the summary slot when the model reads summaries."""
        return int(self.summary_row_ is not None)

    def _summary_slot(self, users: np.ndarray | None, n: int) -> np.ndarray | None:
        """int64 (n,) table rows of the users' summaries (padding for none), or None without summaries."""
        if self.summary_row_ is None:
            return None
        if users is None:
            return np.full(n, self.n_items_, np.int64)
        users = np.asarray(users, np.int64)
        rows = np.full(n, -1, np.int64)
        inside = users < len(self.summary_row_)  # users added after fit have no summary
        rows[inside] = self.summary_row_[users[inside]]
        return np.where(rows >= 0, self.n_items_ + 1 + rows, self.n_items_)

    def _item_table(self):
        return item_table(self.n_items_, self.factors, self.item_text, self.item_vectors_, self.warm_, self.id_dropout,
                          self.summary_text_)

    def _build_net(self):
        import torch

        net = self._network()
        if self.long_len:
            net.long = hashed_interest(self.n_items_, self.factors, self.hashes, self.hash_bits, self.seed)
        if self.loss in ABSOLUTE:
            net.logit_bias = torch.nn.Parameter(torch.tensor(self._base_logit(), dtype=torch.float32))
        return net

    def _base_logit(self) -> float:
        """The absolute losses' starting offset b: log(β/k), where their loss at a constant logit is
        least (β·(1 − σ(b)) = k·σ(b)) — about −6.6 for gBCE with k = 256 on ML-100K, 0 for ``bce``."""
        if self.loss == "bce":
            return 0.0
        pool = self.n_items_ if self.warm_ is None else int(self.warm_.sum())  # as :meth:`_sampling_table`
        return float(np.log(self._gbce_beta(pool) / self.negatives))

    def _forward(self, seqs: np.ndarray, long: np.ndarray | None, slot: np.ndarray | None = None):
        """Hidden states (B, L, d) of the L item positions, the item table, and long-term scores
        (B, n_items) or None; ``slot`` (B,) is read just before the oldest item (see :meth:`_summary_slot`)."""
        import torch

        dev = net_device(self.net_)
        table = self.net_.items()
        if slot is not None:
            # the slot goes just before the oldest item (windows are right-aligned), so it sits where
            # an older item would, with the padding left of it
            n, length = seqs.shape
            before = length - (seqs != self.n_items_).sum(axis=1)
            seqs = np.concatenate([np.full((n, 1), self.n_items_, np.int64), seqs], axis=1)
            seqs[np.arange(n), before] = slot
        hidden = self.net_(torch.from_numpy(seqs).to(dev), table)
        if slot is not None:
            hidden = hidden[:, 1:]
        extra = self.net_.long(torch.from_numpy(long).to(dev), table) if self.long_len else None
        return hidden, table, extra

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        w_start, w_end = window_bounds(indptr, self.max_len)
        keep = np.flatnonzero(w_end - w_start >= 2)  # a window needs one transition
        # the long-term context of a window: the long_len items of its sequence before it
        owner = np.searchsorted(indptr, w_start, side="right") - 1  # the user of each window
        w_long = np.maximum(indptr[owner], w_start - self.long_len)
        dev = torch_device(self.device)
        self.net_ = self._build_net().to(dev)
        self._sampling_table(np.bincount(items, minlength=self.n_items_).astype(np.float64))
        opt = synced(torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay))
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        self.epoch_seconds_: list[float] = []
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            self.net_.train()
            order, batch = shard(rng.permutation(keep), self.batch_size)
            for s in range(0, len(order), batch):
                sel = order[s:s + batch]
                block = right_aligned(items, w_start[sel], w_end[sel], self.max_len + 1, self.n_items_)
                long = right_aligned(items, w_long[sel], w_start[sel], self.long_len, self.n_items_) if self.long_len else None
                targets = torch.from_numpy(block[:, 1:]).to(dev)
                mask = (targets != self.n_items_) & torch.from_numpy(block[:, :-1] != self.n_items_).to(dev)
                hidden, table, extra = self._forward(block[:, :-1], long, self._summary_slot(owner[sel], len(sel)))
                if extra is not None:
                    extra = extra[mask.nonzero()[:, 0]]  # each position's window's long-term scores
                if self.loss in WINDOW_SAMPLED:
                    loss = self._window_sampled_loss(hidden, mask, table[: self.n_items_], targets, rng)
                else:
                    loss = self._loss(hidden[mask], table[: self.n_items_], targets[mask], rng, extra)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.epoch_seconds_.append(time.perf_counter() - start)
            if validate_net(self, self.net_, stopper, epoch, valid, self.eval_every):
                break
        stopper.restore_best(self)
        self.net_.eval()

    def _loss(self, hidden, table, targets, rng: np.random.Generator, extra=None):
        import torch
        import torch.nn.functional as F

        if self.loss == "ce":
            logits = hidden @ table.T if extra is None else hidden @ table.T + extra
            if self.warm_ is not None:
                logits = logits.masked_fill(torch.from_numpy(~self.warm_).to(logits.device), float("-inf"))
            return F.cross_entropy(logits, targets)
        pos = (hidden * table[targets]).sum(1)
        if self.loss == "bce":
            neg_items = torch.from_numpy(self._negatives(rng, len(targets))).to(hidden.device)
            neg = (hidden * table[neg_items]).sum(1) + self.net_.logit_bias
            pos = pos + self.net_.logit_bias
            return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()
        neg_items = torch.from_numpy(self._negatives(rng, self.negatives)).to(hidden.device)
        neg = hidden @ table[neg_items].T  # (positions, negatives)
        neg = neg.masked_fill(neg_items[None, :] == targets[:, None], float("-inf"))  # a drawn target is no negative
        finite = torch.isfinite(neg)
        weight = torch.softmax(neg, dim=1)
        safe = torch.where(finite, neg, torch.zeros_like(neg))
        if self.loss == "bpr-max":
            inner = (weight * torch.sigmoid(pos[:, None] - safe)).sum(1)
            return (-torch.log(inner + 1e-10) + self.bpreg * (weight * safe.pow(2)).sum(1)).mean()
        return (weight * (torch.sigmoid(safe - pos[:, None]) + torch.sigmoid(safe.pow(2)))).sum(1).mean()

    def _window_sampled_loss(self, hidden, mask, table, targets, rng: np.random.Generator):
        """``sampled`` or ``gbce`` with k = ``negatives`` items drawn for each window and shared by
        its positions: ``hidden`` (W, L, d), ``mask`` bool (W, L) positions with a target,
        ``table`` (n_items, d), ``targets`` int64 (W, L). One (W, L, d) × (W, d, k) product."""
        import torch

        w, k = len(hidden), self.negatives
        drawn = self._negatives(rng, w * k).reshape(w, k)
        neg_items = torch.from_numpy(drawn).to(hidden.device)
        neg = torch.bmm(hidden, table[neg_items].transpose(1, 2))[mask]  # (positions, k)
        hit = (neg_items[:, None, :] == targets[:, :, None])[mask]  # a drawn target is no negative
        pos = (hidden[mask] * table[targets[mask]]).sum(1)
        if self.loss == "gbce":
            bias = self.net_.logit_bias
            return gbce_loss(pos + bias, neg + bias, hit, self._gbce_beta())
        # log-Q correction: exp(s_j)/(k·Q(j)) summed over the draws estimates the full softmax's sum
        log_kq = torch.from_numpy(np.log(k * self._draw_prob[drawn])).to(neg)[mask.nonzero()[:, 0]]
        return sampled_softmax_loss(pos, neg - log_kq, hit)

    def _sampling_table(self, counts: np.ndarray) -> None:
        """The negatives' distribution Q over items (float64 (n_items,), zero outside the pool: the
        items seen in training with item text, every item without), from training ``counts``."""
        pool = np.ones(self.n_items_, bool) if self.warm_ is None else self.warm_.astype(bool)
        weight = (counts if self.sampler == "popularity" else np.ones(self.n_items_)) * pool
        if weight.sum() <= 0:  # no count in the pool: uniform over it
            weight = pool.astype(np.float64)
        self._draw_prob = weight / weight.sum()
        self._draw_cdf = np.cumsum(self._draw_prob)
        self._pool_size = int(pool.sum())

    def _gbce_beta(self, pool: int | None = None) -> float:
        """gSASRec's β = α(t(1 − 1/α) + 1/α), α = k/(N − 1) with N (``pool``, by default the sampling
        table's) the items negatives come from."""
        alpha = self.negatives / max((self._pool_size if pool is None else pool) - 1, 1)
        return alpha * (self.gbce_t * (1 - 1 / alpha) + 1 / alpha)

    def _negatives(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` negatives (int64) drawn with replacement from Q (:meth:`_sampling_table`)."""
        return np.minimum(np.searchsorted(self._draw_cdf, rng.random(n), side="right"), self.n_items_ - 1)

    def _restore(self, state: dict) -> None:
        self.net_.load_state_dict(state)

    def fit_note(self) -> str:
        if not self.finetune_losses_:
            return ""
        what = self.finetune + (f" + SPO (λ {self.finetune_spo:g})" if self.finetune_spo else "")
        losses = self.finetune_losses_
        figure = "−reward" if self.finetune == "ppo" else "loss"
        trend = f"{losses[0]:.4f} → {losses[-1]:.4f}" if len(losses) > 1 else f"{losses[0]:.4f}"
        return (f"fine-tuned by {what} against {self.finetune_negatives} negatives (β {self.finetune_beta:g}): "
                f"mean {figure} {trend} over {len(losses)} epoch{'s' * (len(losses) > 1)}")

    def selected(self) -> dict[str, int]:
        return {"epochs": self.best_epoch_} if getattr(self, "best_epoch_", None) else {}

    def _score(self, users: np.ndarray) -> np.ndarray:
        seqs = pad_left(self.hist_ptr_, self.hist_items_, users, self.context_len, self.n_items_)
        return self._score_padded(seqs, users)

    def _score_padded(self, seqs: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, n_items) after right-aligned windows ``seqs``; ``users`` (n,) pick the summaries
        (None: an anonymous session, no summary)."""
        import torch

        with torch.no_grad():
            long = seqs[:, : self.long_len] if self.long_len else None
            hidden, table, extra = self._forward(seqs[:, self.long_len:], long, self._summary_slot(users, len(seqs)))
            scores = hidden[:, -1] @ table[: self.n_items_].T
            return (scores if extra is None else scores + extra).cpu().numpy()

    def _state(self) -> dict[str, np.ndarray]:
        state = {**self._history_state(), **{f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}}
        if self.summary_row_ is not None:
            state["summary_row"] = self.summary_row_
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self._load_history(arrays)
        self.item_vectors_ = arrays.get("net.items.text")
        self.warm_ = arrays.get("net.items.warm")
        if self.warm_ is not None:
            self.warm_ = self.warm_.astype(bool)
        self.summary_text_ = arrays.get("net.items.summaries")
        self.summary_row_ = arrays["summary_row"].astype(np.int64) if "summary_row" in arrays else None
        self.net_ = self._build_net()
        state = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}  # copied: the arrays may be read-only maps
        if hasattr(self.net_, "logit_bias"):  # artefacts saved before the offset existed: it does not change scores
            state.setdefault("logit_bias", self.net_.logit_bias.detach().clone())
        self.net_.load_state_dict(state)
        self.net_.eval()
