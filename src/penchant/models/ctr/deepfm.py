"""DeepFM (Guo et al., IJCAI 2017): a factorisation machine and a feed-forward network that share
one embedding per feature, summed into one logit.

    ŷ = σ( y_FM + y_DNN ),   y_FM = w0 + Σ_j w_j x_j + Σ_{j<l} <v_j, v_l> x_j x_l,
    y_DNN = MLP( [v_slot1, …, v_slotS, dense] )

The FM part is :func:`~penchant.models.ctr.fm.fm_network` itself (every value of a multi-valued
field and every standardised number has its vector); the deep part reads the same factor table
``v``, one vector per *slot* (a multi-valued field's unused slots are the zero padding vector),
concatenated with the numbers. As the paper, no pre-training: both parts train together from the
start on the log loss (Adam, the shared loop of :class:`~penchant.models.ctr.base.TorchCTRModel`),
with ReLU layers and dropout; L2 ``l2`` is the FM's (on the weights and vectors of each batch's
features).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from penchant.data.ctr import FeatureVocabulary
from penchant.errors import ConfigError
from penchant.models.ctr.base import TorchCTRModel
from penchant.models.ctr.fm import fm_network, fm_numpy
from penchant.models.ctr.layers import check_range, numpy_tower, parse_hidden, tower, tower_forward
from penchant.models.registry import register
from penchant.models.search import Choice, Float


def deepfm_network(n_features: int, n_slots: int, n_dense: int, dims: int, hidden: tuple[int, ...],
                   dropout: float) -> Any:
    """DeepFM as a ``torch.nn.Module``: ``forward(codes (b, S), dense (b, D), history) -> logits (b,)``."""
    import torch

    class DeepFMNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fm = fm_network(n_features, n_dense, dims)
            self.deep = tower(n_slots * dims + n_dense, hidden, dropout)

        def forward(self, codes: torch.Tensor, dense: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
            v = self.fm.factor(codes)  # the FM's vectors: shared embeddings, (b, S, k)
            deep = self.deep(torch.cat([v.flatten(1), dense], 1)).squeeze(1)
            return self.fm(codes, dense, history) + deep

        def penalty(self, codes: torch.Tensor) -> torch.Tensor:
            return self.fm.penalty(codes)

    return DeepFMNet()


@register
class DeepFM(TorchCTRModel):
    """DeepFM (Guo et al. 2017): an FM and a ReLU network over the same feature embeddings.

    Args:
        dims: embedding (factor) size k, shared by the FM and the deep part.
        hidden: widths of the deep part's hidden layers, comma-separated ("" for none).
        dropout: dropout after each hidden layer.
        epochs: most passes over the training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        l2: L2 strength on the FM weights and vectors of each batch's features (per row).
        patience: epochs without a lower validation log loss before stopping.
        seed: seeds the initialisation, dropout and the batch order.
        device: auto, cpu, cuda or cuda:N.
    """

    name = "deepfm"
    summary = "DeepFM (Guo et al. 2017): FM + deep network sharing the feature embeddings"
    search_space = {"dims": Choice((8, 16, 32)), "lr": Float(3e-4, 1e-2, log=True), "dropout": Float(0.0, 0.5),
                    "l2": Float(1e-7, 1e-3, log=True)}

    def __init__(self, *, dims: int = 16, hidden: str = "200,200", dropout: float = 0.2, epochs: int = 20,
                 batch_size: int = 256, lr: float = 1e-3, l2: float = 1e-5, patience: int = 2, seed: int = 0,
                 device: str = "auto") -> None:
        self.dims, self.hidden, self.dropout = dims, hidden, dropout
        self.epochs, self.batch_size, self.lr, self.l2 = epochs, batch_size, lr, l2
        self.patience, self.seed, self.device = patience, seed, device
        self._check_training()
        self._widths = parse_hidden(self.name, hidden)
        if dims < 1:
            raise ConfigError(f"model {self.name!r}: dims must be at least 1, not {dims}")
        check_range(self.name, dropout=(dropout, 0.0, 0.95))

    def _network(self, vocab: FeatureVocabulary, n_items: int, history_length: int) -> Any:
        return deepfm_network(vocab.n_features, len(vocab.slot_field), len(vocab.dense_names), self.dims,
                              self._widths, self.dropout)

    def _numpy_forward(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        fm, layers = fm_numpy(self.net_.fm), numpy_tower(self.net_.deep)

        def forward(codes: np.ndarray, dense: np.ndarray) -> np.ndarray:
            logit, v = fm(codes, dense)
            deep = tower_forward(np.concatenate([v.reshape(len(v), -1), dense], 1), layers)[:, 0]
            return logit + deep

        return forward
