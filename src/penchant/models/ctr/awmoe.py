"""AW-MoE (Gong et al., "Attention Weighted Mixture of Experts with Contrastive Learning for
Personalized Ranking in E-commerce", JD, ICDE 2023, arXiv 2306.05011) and the plain MoE it is
measured against.

Both are mixtures of K expert networks over the same input, the row's feature embeddings (one per
slot), its standardised numbers and the user's behaviour sequence (the embeddings of
``CTRData.history``'s items, through the item field's embeddings, mean-pooled):

    x = [e_slot1, …, e_slotS, dense, mean_j e_j],   ŷ = σ( Σ_k G_k(·) · E_k(x) )

with each expert E_k a ReLU network ending in one logit. They differ in the gate G (B, K):

- ``moe`` (the baseline): G = softmax(W_g x), a gate on the features only.
- ``awmoe``: the gate reads the behaviour sequence against the candidate. A *gate unit* maps each
  behaviour e_j to K expert activations g_j = FFN_g(e_j); an *activation unit* (DIN's local
  activation) scores the behaviour's relevance to the candidate item e_t,
  a_j = FFN_a([e_j, e_t, e_j − e_t, e_j ⊙ e_t]) (a scalar, not normalised over j, as in DIN); the
  gate is G = softmax(Σ_j a_j g_j) over the real (unpadded) behaviours. So the experts a row
  uses depend on which of the user's behaviours resemble the candidate.

Contrastive learning (the paper's second part, for users with short histories): while training,
two views of each row's sequence are made by dropping each behaviour with probability
``mask_rate``; the gate outputs of the two views, L2-normalised, are pulled together and pushed
from the other rows of the batch by InfoNCE at temperature ``temperature``; the loss is
BCE + ``cl_weight``·InfoNCE. The shared training loop optimises BCE on the logits; the InfoNCE
gradient joins it through :class:`_AddLoss` (an identity on the logits whose backward adds
∂(cl_weight·InfoNCE)/∂θ), so the loop stays one.

Departures, and why: the paper's text was read only as far as its abstract (the body's
equations could not be retrieved here), so the layer shapes follow its description — gate unit,
activation unit, attention-weighted gate, random masking and a contrastive loss on the gate's
output — with DIN's activation-unit inputs and a softmax over experts as the concrete choices.
Experts read the mean-pooled sequence (the paper feeds the sequence to the experts too, in a form
not recovered here); the plain MoE's experts read the same input, so the two models differ in the
gate alone, which is the claim measured (docs/ranking.md). No Dice activation or mini-batch-aware
regularisation (DIN's); ReLU and ``l2`` on each batch's feature embeddings instead.
"""

from __future__ import annotations

from typing import Any

from penchant.data.ctr import FeatureVocabulary
from penchant.errors import ConfigError
from penchant.models.ctr.base import TorchCTRModel
from penchant.models.ctr.layers import check_range, feature_embedding, parse_hidden, tower
from penchant.models.registry import register
from penchant.models.search import Choice, Float


def moe_network(n_features: int, n_slots: int, n_dense: int, dims: int, experts: int, hidden: tuple[int, ...],
                dropout: float, gate_hidden: int, item_slot: int, attention_gate: bool, cl_weight: float = 0.0,
                mask_rate: float = 0.0, temperature: float = 0.2) -> Any:
    """The mixture as a ``torch.nn.Module``: ``forward(codes (b, S), dense (b, D), history (b, L)) ->
    logits (b,)``; ``gate(codes, dense, history, keep=None) -> (b, K)`` expert weights (``keep``:
    float (b, L), 0 drops a behaviour from the attention gate). With ``attention_gate`` the AW-MoE gate, else the feature gate."""
    import torch
    import torch.nn.functional as F

    width = n_slots * dims + n_dense + dims

    class MoENet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = feature_embedding(n_features, dims)
            self.experts = torch.nn.ModuleList(tower(width, hidden, dropout) for _ in range(experts))
            if attention_gate:
                self.gate_unit = tower(dims, (gate_hidden,), 0.0, out=experts)
                self.activation_unit = tower(4 * dims, (gate_hidden,), 0.0, out=1)
            else:
                self.gate_layer = torch.nn.Linear(width, experts)

        def _inputs(self, codes, dense, history):
            v = self.emb(codes)                                    # (b, S, k)
            seq = self.emb(history)                                # (b, L, k); padding rows are zero
            real = (history != n_features).to(v.dtype)             # (b, L)
            pooled = (seq * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp(min=1.0)
            return v, seq, real, torch.cat([v.flatten(1), dense, pooled], 1)

        def _votes(self, v, seq):
            """Each behaviour's attention-weighted expert activations a_j · g_j, (b, L, K)."""
            target = v[:, item_slot].unsqueeze(1).expand_as(seq)  # the candidate item, (b, L, k)
            a = self.activation_unit(torch.cat([seq, target, seq - target, seq * target], 2))  # (b, L, 1)
            return a * self.gate_unit(seq)

        def gate(self, codes, dense, history, keep=None):
            """Expert weights (b, K); ``keep`` (b, L) float, 0 drops a behaviour from the attention gate."""
            v, seq, real, x = self._inputs(codes, dense, history)
            if not attention_gate:
                return torch.softmax(self.gate_layer(x), 1)
            return torch.softmax((self._votes(v, seq) * (real if keep is None else real * keep).unsqueeze(-1)).sum(1), 1)

        def forward(self, codes, dense, history):
            v, seq, real, x = self._inputs(codes, dense, history)
            if not attention_gate:
                weights = torch.softmax(self.gate_layer(x), 1)
            else:
                votes = self._votes(v, seq)
                weights = torch.softmax((votes * real.unsqueeze(-1)).sum(1), 1)
            logits = (weights * torch.cat([e(x) for e in self.experts], 1)).sum(1)
            if attention_gate and self.training and cl_weight > 0 and history.shape[1]:
                logits = _AddLoss.apply(logits, cl_weight * self._contrastive(votes, real))
            return logits

        def _contrastive(self, votes, real):
            """InfoNCE between the gate outputs of two views of each row's sequence, each behaviour
            dropped with probability ``mask_rate`` (the per-behaviour votes do not depend on the mask,
            so they are computed once)."""
            views = [torch.softmax((votes * (real * (torch.rand(real.shape, device=real.device) >= mask_rate)
                                              .to(real.dtype)).unsqueeze(-1)).sum(1), 1) for _ in range(2)]
            a, b = (F.normalize(w, dim=1) for w in views)
            return F.cross_entropy(a @ b.T / temperature, torch.arange(len(a), device=a.device))

        def penalty(self, codes):
            return self.emb(codes).pow(2).sum(dim=(1, 2)).mean()

    class _AddLoss(torch.autograd.Function):
        """y = logits (identity); backward also sends gradient 1 into ``extra`` (a scalar loss), so
        the optimiser's step follows ∂(loss on y)/∂θ + ∂extra/∂θ."""

        @staticmethod
        def forward(ctx, logits, extra):
            return logits.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad, torch.ones((), dtype=grad.dtype, device=grad.device)

    return MoENet()


class _Mixture(TorchCTRModel):
    """The parameters both mixtures share (see the module)."""

    attention_gate = False

    def _set(self, *, dims: int, experts: int, hidden: str, gate_hidden: int, dropout: float, epochs: int,
             batch_size: int, lr: float, l2: float, patience: int, seed: int, device: str) -> None:
        self.dims, self.experts, self.hidden, self.gate_hidden, self.dropout = dims, experts, hidden, gate_hidden, dropout
        self.epochs, self.batch_size, self.lr, self.l2 = epochs, batch_size, lr, l2
        self.patience, self.seed, self.device = patience, seed, device
        self._check_training()
        self._widths = parse_hidden(self.name, hidden)
        if dims < 1 or experts < 1 or gate_hidden < 1:
            raise ConfigError(f"model {self.name!r}: dims, experts and gate_hidden must be at least 1 "
                              f"(got {dims}, {experts}, {gate_hidden})")
        check_range(self.name, dropout=(dropout, 0.0, 0.95))

    def _contrastive(self) -> dict[str, float]:
        return {}

    def _network(self, vocab: FeatureVocabulary, n_items: int, history_length: int) -> Any:
        return moe_network(vocab.n_features, len(vocab.slot_field), len(vocab.dense_names), self.dims, self.experts,
                           self._widths, self.dropout, self.gate_hidden, vocab.slot_start["item"], self.attention_gate,
                           **self._contrastive())


@register
class AWMoE(_Mixture):
    """AW-MoE (Gong et al. 2023): experts gated by attention between the candidate and the user's behaviours.

    Args:
        dims: embedding size k per slot (and per behaviour: the item field's embeddings).
        experts: number of expert networks K.
        hidden: widths of each expert's hidden layers, comma-separated.
        gate_hidden: hidden width of the gate unit and of the activation unit.
        cl_weight: weight of the contrastive (InfoNCE) loss on the gate outputs of two masked views (0: off).
        mask_rate: chance that a behaviour is dropped from a view for the contrastive loss.
        temperature: InfoNCE temperature.
        dropout: dropout after each expert hidden layer.
        epochs: most passes over the training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        l2: L2 strength on the embeddings of each batch's features (per row).
        patience: epochs without a lower validation log loss before stopping.
        seed: seeds the initialisation, dropout, masks and the batch order.
        device: auto, cpu, cuda or cuda:N.
    """

    name = "awmoe"
    aliases = ("aw-moe",)
    summary = "AW-MoE (Gong et al. 2023): experts gated by candidate-to-behaviour attention, contrastive gate loss"
    search_space = {"dims": Choice((8, 16, 32)), "experts": Choice((2, 4, 8)), "lr": Float(3e-4, 1e-2, log=True),
                    "cl_weight": Float(0.0, 0.5)}
    needs_history = True
    attention_gate = True

    def __init__(self, *, dims: int = 16, experts: int = 4, hidden: str = "128,64", gate_hidden: int = 32,
                 cl_weight: float = 0.1, mask_rate: float = 0.3, temperature: float = 0.2, dropout: float = 0.1,
                 epochs: int = 20, batch_size: int = 256, lr: float = 2e-3, l2: float = 1e-5, patience: int = 2,
                 seed: int = 0, device: str = "auto") -> None:
        self._set(dims=dims, experts=experts, hidden=hidden, gate_hidden=gate_hidden, dropout=dropout, epochs=epochs,
                  batch_size=batch_size, lr=lr, l2=l2, patience=patience, seed=seed, device=device)
        self.cl_weight, self.mask_rate, self.temperature = cl_weight, mask_rate, temperature
        check_range(self.name, cl_weight=(cl_weight, 0.0, 100.0), mask_rate=(mask_rate, 0.0, 0.95))
        if temperature <= 0:
            raise ConfigError(f"model {self.name!r}: temperature must be > 0, not {temperature}")

    def _contrastive(self) -> dict[str, float]:
        return {"cl_weight": self.cl_weight, "mask_rate": self.mask_rate, "temperature": self.temperature}


@register
class MoE(_Mixture):
    """Mixture of experts with a softmax gate on the features (AW-MoE's baseline: the same experts, no attention gate).

    Args:
        dims: embedding size k per slot (and per behaviour, mean-pooled into the experts' input).
        experts: number of expert networks K.
        hidden: widths of each expert's hidden layers, comma-separated.
        dropout: dropout after each expert hidden layer.
        epochs: most passes over the training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        l2: L2 strength on the embeddings of each batch's features (per row).
        patience: epochs without a lower validation log loss before stopping.
        seed: seeds the initialisation, dropout and the batch order.
        device: auto, cpu, cuda or cuda:N.
    """

    name = "moe"
    summary = "Mixture of experts with a softmax gate on the features (AW-MoE's baseline)"
    search_space = {"dims": Choice((8, 16, 32)), "experts": Choice((2, 4, 8)), "lr": Float(3e-4, 1e-2, log=True)}

    def __init__(self, *, dims: int = 16, experts: int = 4, hidden: str = "128,64", dropout: float = 0.1,
                 epochs: int = 20, batch_size: int = 256, lr: float = 2e-3, l2: float = 1e-5, patience: int = 2,
                 seed: int = 0, device: str = "auto") -> None:
        self._set(dims=dims, experts=experts, hidden=hidden, gate_hidden=1, dropout=dropout, epochs=epochs,
                  batch_size=batch_size, lr=lr, l2=l2, patience=patience, seed=seed, device=device)
