"""A reward model whose representation of a preference pair is shaped by contrastive learning
("Secrets of RLHF in Large Language Models Part II: Reward Modeling", Wang et al. 2024, §5).

The reward is a small network over the option's features (frozen MiniLM embeddings with
``features=text|layers``, or a learned vector per option with ``features=id``)::

    h(o) = GELU(W₁ · drop(x_o) + b₁)          (hidden,)  the representation
    r(o) = w₂ · drop(h(o)) + b₂               scalar reward

trained with the Bradley–Terry loss −log σ(r(w) − r(l)) plus ``contrastive`` × the SimCSE loss
on the pair's *difference representation* d = h(w) − h(l) (the paper contrasts the difference of
the chosen and rejected representations). SimCSE (Gao et al. 2021): the same batch goes through
the network twice with independent dropout masks, giving two views d⁽¹⁾, d⁽²⁾ (B, hidden); with
cosine similarities s_ij = cos(d⁽¹⁾_i, d⁽²⁾_j) and temperature τ,

    L_cl = −(1/B) Σ_i log( exp(s_ii / τ) / Σ_j exp(s_ij / τ) )

(one direction, view 1 as anchors, the other pairs of the batch as negatives; no projection head).
Dropout on the frozen features and on h is the only augmentation, as in unsupervised SimCSE. The
paper's second variant, SwAV (cluster assignments swapped between views), is not implemented.

With a shifted set (``meta_file``, or ``fit(..., shifted=pairs)``) the network is trained by
MetaRM's meta-process instead (:mod:`.metarm`). :meth:`ContrastiveReward.tune` fine-tunes a fitted
model on a few labelled pairs (few-shot adaptation to a new distribution).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference.neural import TRAINING_ARGS, NeuralUtility
from penchant.models.preference.train import pair_loss
from penchant.models.registry import register
from penchant.models.search import Float
from penchant.models.training import torch_device

META_ORDERS = ("first", "second")


def simcse_loss(z1, z2, temperature: float):
    """SimCSE's InfoNCE between two views (B, d) torch tensors of the same B examples: row i of
    ``z1`` should be closest (cosine) to row i of ``z2`` among all rows of ``z2``; mean over rows,
    in nats. B = 1 gives 0 (no negatives)."""
    import torch
    import torch.nn.functional as F

    sim = F.normalize(z1, dim=1, eps=1e-8) @ F.normalize(z2, dim=1, eps=1e-8).T / temperature
    return F.cross_entropy(sim, torch.arange(len(z1), device=z1.device))


def reward_net(n_options: int, x: np.ndarray | None, hidden: int, dropout: float):
    """A torch module over option indices: ``forward(options)`` → rewards (n,), ``forward(options,
    represent=True)`` → representations h (n, hidden); ``x`` (n_options, f) frozen features, or
    None for a learned (n_options, hidden) table of representations."""
    import torch

    class Rewards(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = torch.nn.Dropout(dropout)
            if x is None:
                self.table = torch.nn.Parameter(torch.randn(n_options, hidden) * 0.1)
            else:
                self.register_buffer("x", torch.as_tensor(np.asarray(x, np.float32)))
                self.encode = torch.nn.Linear(self.x.shape[1], hidden)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, options, represent: bool = False):
            h = self.table[options] if x is None else torch.nn.functional.gelu(self.encode(self.drop(self.x[options])))
            return h if represent else self.head(self.drop(h)).squeeze(-1)

    return Rewards()


@register
class ContrastiveReward(NeuralUtility):
    """A reward network r(o) trained with Bradley–Terry plus SimCSE on the pair's difference
    representation, optionally by MetaRM's meta-process towards a shifted distribution.

    One population reward (users are ignored; ``score`` is the reward).

    Args:
        hidden: size of the representation h (the network always has this one hidden layer).
        dropout: dropout rate on the features and on h: SimCSE's augmentation.
        contrastive: weight of the SimCSE loss beside the BT loss (0: plain BT on the same network).
        temperature: SimCSE's τ.
        meta_file: a comparison file (any layout ``penchant prefs`` reads) whose replies form the
            shifted distribution; its labels are not read. Empty: no meta-learning, unless ``fit``
            is given ``shifted`` pairs.
        meta_lr: MetaRM's inner step η on the difference objective (gradient ascent).
        meta_order: ``second`` differentiates the BT loss through the inner step (MAML), ``first``
            applies the gradient at the adapted weights to the original ones (first-order MAML).
        meta_batch: shifted-distribution pairs per meta step.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "crm"
    aliases = ("contrastive-rm",)
    search_space: ClassVar[dict] = {"contrastive": Float(0.01, 1.0, log=True), "weight_decay": Float(1e-6, 1e-2, log=True)}

    def __init__(self, *, hidden: int = 64, dropout: float = 0.1, contrastive: float = 0.1, temperature: float = 0.1,
                 meta_file: str = "", meta_lr: float = 1.0, meta_order: str = "second", meta_batch: int = 64,
                 features: str = "id", text_model: str = "all-MiniLM-L6-v2", lr: float = 1e-3,
                 weight_decay: float = 1e-4, epochs: int = 50, batch_size: int = 64, patience: int = 3,
                 loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0, seed: int = DEFAULT_SEED,
                 device: str = "auto") -> None:
        if hidden < 1 or not 0 <= dropout < 1 or contrastive < 0 or temperature <= 0:
            raise ConfigError("hidden must be ≥ 1, dropout in [0, 1), contrastive ≥ 0, temperature > 0")
        if meta_order not in META_ORDERS or meta_lr < 0 or meta_batch < 1:
            raise ConfigError(f"meta_order must be one of {', '.join(META_ORDERS)}; meta_lr ≥ 0; meta_batch ≥ 1")
        if contrastive and not dropout:
            raise ConfigError("contrastive > 0 needs dropout > 0: dropout makes SimCSE's two views")
        self.dropout, self.contrastive, self.temperature = dropout, contrastive, temperature
        self.meta_file, self.meta_lr, self.meta_order, self.meta_batch = meta_file, meta_lr, meta_order, meta_batch
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, None, seed, device)

    def fit(self, train: PreferencePairs, valid: PreferencePairs | None = None, *,
            shifted: PreferencePairs | None = None) -> Self:
        """Fit on ``train`` (early stopping on ``valid``); with ``shifted`` pairs (their replies
        only, labels unused; the same option vocabulary as ``train``, or option text) or a
        ``meta_file``, by MetaRM's meta-process towards that distribution."""
        if shifted is not None and self.meta_file:
            raise ConfigError("give the shifted distribution once: meta_file or fit(shifted=...)")
        self._shifted = shifted
        try:
            return super().fit(train, valid)
        finally:
            self._shifted = None

    def _network(self, x: np.ndarray | None):
        import torch

        net = torch.nn.Module()
        net.options = reward_net(self.n_options_, x, self.hidden, self.dropout)
        return net

    def _utility(self, net, users, options, users_table=None):
        return net.options(options)

    def _penalty(self, net, users, a, b):
        """``contrastive`` × SimCSE on two dropout views of the difference representations."""
        if not self.contrastive:
            return 0.0
        return self.contrastive * pair_contrast(lambda o, r: net.options(o, represent=r), a, b, self.temperature)

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        import torch

        shifted = self._shifted
        if self.meta_file:
            from penchant.data import read_text_comparisons

            shifted = read_text_comparisons(Path(self.meta_file))
        if shifted is None:
            return super()._fit(train, valid, weight)
        from penchant.models.preference.metarm import meta_train

        torch.manual_seed(self.seed)
        x = self._fit_features(train)
        self.net_ = self._network(x).to(torch_device(self.device))
        same = shifted.n_options == train.n_options and np.array_equal(shifted.option_ids, train.option_ids)
        if same:
            self.history_ = meta_train(self, train, valid, weight, shifted.winner, shifted.loser)
            return
        if self.features_ is None or shifted.option_text is None:
            raise ConfigError("a shifted distribution of other replies than the training pairs' needs text "
                              "features (features=text or layers) and replies with text")
        ctx = None if shifted.option_context is None else shifted.option_context
        xs = self.features_.transform(shifted.option_text, ctx if self.features_.with_context else None)
        with self._options_added(xs) as start:
            self.history_ = meta_train(self, train, valid, weight, start + shifted.winner, start + shifted.loser)

    def shift(self, pairs: PreferencePairs) -> Self:
        """MetaRM's inner step at test time: θ ← θ + η ∇_θ J_θ on the replies of ``pairs`` (the
        shifted distribution, same option vocabulary, labels unused), η = ``meta_lr``: the weights the
        meta-process trained the BT loss at. Changes the model in place."""
        import torch

        from penchant.models.preference.metarm import adapted_params

        if pairs.n_options != self.n_options_:
            raise ConfigError(f"shift needs pairs over the model's {self.n_options_} options, not {pairs.n_options}")
        module = self.net_.options
        module.train()
        adapted = adapted_params(module, dict(module.named_parameters()), self._index(pairs.winner),
                                 self._index(pairs.loser), self.meta_lr, second_order=False)
        module.eval()
        with torch.no_grad():
            for k, p in module.named_parameters():
                p.copy_(adapted[k])
        return self

    def tune(self, pairs: PreferencePairs, *, steps: int = 100, lr: float = 1e-3, pull: float = 0.0) -> Self:
        """Few-shot fine-tuning on labelled ``pairs`` (same option vocabulary as training): ``steps``
        full-batch Adam steps on the BT loss (+ the SimCSE term at ``contrastive``) with an L2 pull
        ``pull`` · ‖θ − θ_fitted‖² towards the fitted weights. Changes the model in place."""
        import torch

        if pairs.n_options != self.n_options_:
            raise ConfigError(f"tune needs pairs over the model's {self.n_options_} options, not {pairs.n_options}")
        if not len(pairs):
            return self
        start = {k: v.detach().clone() for k, v in self.net_.named_parameters()}
        opt = torch.optim.Adam(self.net_.parameters(), lr=lr)
        u, w, l = (self._index(v) for v in (pairs.user, pairs.winner, pairs.loser))
        self.net_.train()
        for _ in range(steps):
            value = pair_loss(self._torch_margin(self.net_, u, w, l)) + self._penalty(self.net_, u, w, l)
            value = value + pull * sum((p - start[k]).pow(2).sum() for k, p in self.net_.named_parameters())
            opt.zero_grad()
            value.backward()
            opt.step()
        self.net_.eval()
        return self


def pair_contrast(net, a, b, temperature: float):
    """SimCSE loss on the difference representations h(a) − h(b) of a batch of pairs, two dropout
    views; ``net(options, represent)`` is the network (in training mode, so the views differ)."""
    first = net(a, True) - net(b, True)
    second = net(a, True) - net(b, True)
    return simcse_loss(first, second, temperature)
