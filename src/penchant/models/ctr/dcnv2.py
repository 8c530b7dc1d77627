"""DCN-V2 (Wang et al., WWW 2021): a cross network of explicit, bounded-degree feature crosses
beside or before a deep network.

Input: x0 = [e_slot1, …, e_slotS, dense] (one embedding per slot, a multi-valued field's unused
slots the zero padding vector; the standardised numbers as they are), width m = S·k + D. Each
cross layer (the paper's eq. 1):

    x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l

with W_l full (m × m), or, with ``rank`` r > 0, the low-rank W_l = U_l V_lᵀ (U, V: m × r; the
paper's eq. 2 with a single expert and no inner non-linearity). ``structure``:

- ``stacked``: x0 → cross layers → deep layers → logit;
- ``parallel``: [cross(x0), deep(x0)] concatenated → logit.

What is built and what is not: full-rank and single low-rank cross layers, both structures.
The paper's mixture of low-rank experts (DCN-Mix: several U_i, V_i gated by x_l, with a
non-linearity in the r-dimensional space) is not built. Trained on the log loss by Adam in
mini-batches (the shared loop of :class:`~penchant.models.ctr.base.TorchCTRModel`), ``l2`` on the
embeddings of each batch's features.
"""

from __future__ import annotations

from typing import Any

from penchant.data.ctr import FeatureVocabulary
from penchant.errors import ConfigError
from penchant.models.ctr.base import TorchCTRModel
from penchant.models.ctr.layers import check_range, feature_embedding, parse_hidden, tower
from penchant.models.registry import register
from penchant.models.search import Choice, Float, Int

STRUCTURES = ("stacked", "parallel")


def dcnv2_network(n_features: int, n_slots: int, n_dense: int, dims: int, cross_layers: int, rank: int,
                  structure: str, hidden: tuple[int, ...], dropout: float) -> Any:
    """DCN-V2 as a ``torch.nn.Module``: ``forward(codes (b, S), dense (b, D), history) -> logits (b,)``."""
    import torch

    width = n_slots * dims + n_dense

    class Cross(torch.nn.Module):
        """x0 ⊙ (W x + b) + x, W full or U Vᵀ."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Sequential(torch.nn.Linear(width, rank, bias=False), torch.nn.Linear(rank, width)) \
                if rank else torch.nn.Linear(width, width)

        def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return x0 * self.w(x) + x

    class DCNV2Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = feature_embedding(n_features, dims)
            self.cross = torch.nn.ModuleList(Cross() for _ in range(cross_layers))
            self.deep = tower(width, hidden, dropout, out=None)
            deep_width = hidden[-1] if hidden else width
            self.head = torch.nn.Linear(deep_width if structure == "stacked" else width + deep_width, 1)

        def forward(self, codes: torch.Tensor, dense: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
            x0 = torch.cat([self.emb(codes).flatten(1), dense], 1)
            x = x0
            for layer in self.cross:
                x = layer(x0, x)
            top = self.deep(x) if structure == "stacked" else torch.cat([x, self.deep(x0)], 1)
            return self.head(top).squeeze(1)

        def penalty(self, codes: torch.Tensor) -> torch.Tensor:
            return self.emb(codes).pow(2).sum(dim=(1, 2)).mean()

    return DCNV2Net()


@register
class DCNV2(TorchCTRModel):
    """DCN-V2 (Wang et al. 2021): cross layers x0 ⊙ (W x + b) + x with a deep network, stacked or parallel.

    Args:
        dims: embedding size k per slot.
        cross_layers: number of cross layers (0: a plain deep network).
        rank: 0 for full-rank cross matrices, r > 0 for the low-rank U Vᵀ of rank r.
        structure: ``stacked`` (cross then deep) or ``parallel`` (cross beside deep, concatenated).
        hidden: widths of the deep network's hidden layers, comma-separated ("" for none).
        dropout: dropout after each hidden layer.
        epochs: most passes over the training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        l2: L2 strength on the embeddings of each batch's features (per row).
        patience: epochs without a lower validation log loss before stopping.
        seed: seeds the initialisation, dropout and the batch order.
        device: auto, cpu, cuda or cuda:N.
    """

    name = "dcnv2"
    aliases = ("dcn-v2",)
    summary = "DCN-V2 (Wang et al. 2021): cross network x0 ⊙ (W x + b) + x with a deep network"
    search_space = {"dims": Choice((8, 16, 32)), "cross_layers": Int(1, 4), "lr": Float(3e-4, 1e-2, log=True),
                    "dropout": Float(0.0, 0.5), "structure": Choice(STRUCTURES)}

    def __init__(self, *, dims: int = 16, cross_layers: int = 3, rank: int = 0, structure: str = "parallel",
                 hidden: str = "256,128", dropout: float = 0.2, epochs: int = 20, batch_size: int = 256,
                 lr: float = 1e-3, l2: float = 1e-5, patience: int = 2, seed: int = 0, device: str = "auto") -> None:
        self.dims, self.cross_layers, self.rank, self.structure = dims, cross_layers, rank, structure
        self.hidden, self.dropout = hidden, dropout
        self.epochs, self.batch_size, self.lr, self.l2 = epochs, batch_size, lr, l2
        self.patience, self.seed, self.device = patience, seed, device
        self._check_training()
        self._widths = parse_hidden(self.name, hidden)
        if structure not in STRUCTURES:
            raise ConfigError(f"model {self.name!r}: structure must be one of {', '.join(STRUCTURES)}, not {structure!r}")
        if dims < 1 or cross_layers < 0 or rank < 0:
            raise ConfigError(f"model {self.name!r}: dims >= 1, cross_layers >= 0 and rank >= 0 are required "
                              f"(got {dims}, {cross_layers}, {rank})")
        check_range(self.name, dropout=(dropout, 0.0, 0.95))

    def _network(self, vocab: FeatureVocabulary, n_items: int, history_length: int) -> Any:
        return dcnv2_network(vocab.n_features, len(vocab.slot_field), len(vocab.dense_names), self.dims,
                             self.cross_layers, self.rank, self.structure, self._widths, self.dropout)
