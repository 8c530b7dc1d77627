"""Factorisation machine (Rendle, ICDM 2010) on the one-hot features and standardised numbers.

    ŷ(x) = w0 + Σ_j w_j x_j + Σ_{j<l} <v_j, v_l> x_j x_l

with the pairwise term computed in O(k·n) by Rendle's identity (his Lemma 3.1):

    Σ_{j<l} <v_j, v_l> x_j x_l = ½ Σ_f [ (Σ_j v_jf x_j)² − Σ_j v_jf² x_j² ]

x_j is 1 for each feature id of the row (each value of a multi-valued field, e.g. every genre of a
film) and the standardised value for a number. Trained on the log loss by Adam in mini-batches
(Rendle's paper uses SGD; libFM's default for classification is MCMC: both simplified here to the
shared loop of :class:`~penchant.models.ctr.base.TorchCTRModel`), with L2 ``l2`` on the weights and
factors of the features in each batch, early stopping on the validation log loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from penchant.data.ctr import FeatureVocabulary
from penchant.models.ctr.base import TorchCTRModel
from penchant.models.registry import register
from penchant.models.search import Float, Int


def fm_network(n_features: int, n_dense: int, dims: int) -> Any:
    """The FM as a ``torch.nn.Module``: ``forward(codes, dense, history) -> logits (b,)``."""
    import torch
    from torch import nn

    class FMNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1))
            self.weight = nn.Embedding(n_features + 1, 1, padding_idx=n_features)
            self.factor = nn.Embedding(n_features + 1, dims, padding_idx=n_features)
            nn.init.zeros_(self.weight.weight)
            nn.init.normal_(self.factor.weight, std=0.01)
            with torch.no_grad():
                self.factor.weight[n_features].zero_()
            self.dense_weight = nn.Parameter(torch.zeros(n_dense))
            self.dense_factor = nn.Parameter(torch.randn(n_dense, dims) * 0.01)

        def forward(self, codes: torch.Tensor, dense: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
            v = self.factor(codes)  # (b, S, k); padding rows are zero
            linear = self.weight(codes).sum(dim=(1, 2)) + dense @ self.dense_weight
            if dense.shape[1]:
                v = torch.cat([v, dense.unsqueeze(-1) * self.dense_factor.unsqueeze(0)], dim=1)
            s = v.sum(dim=1)
            pairwise = 0.5 * (s.pow(2) - v.pow(2).sum(dim=1)).sum(dim=1)
            return self.bias + linear + pairwise

        def penalty(self, codes: torch.Tensor) -> torch.Tensor:
            return (self.factor(codes).pow(2).sum(dim=(1, 2)) + self.weight(codes).pow(2).sum(dim=(1, 2))).mean() + \
                self.dense_factor.pow(2).sum() + self.dense_weight.pow(2).sum()

    return FMNet()


def fm_numpy(net: Any) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The numpy inference forward of :func:`fm_network`'s module ``net`` (weights copied now):
    ``forward(codes int64 (m, S), dense float32 (m, D)) -> (logits float32 (m,), v float32 (m, S, k))``,
    ``v`` the rows' factor vectors (what DeepFM's deep part reads). Same arithmetic as the torch
    forward, in float32: one gather per table, no per-row loop."""
    def array(t: Any) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

    bias, weight, factor = float(array(net.bias)[0]), array(net.weight.weight)[:, 0], array(net.factor.weight)
    dense_weight, dense_factor = array(net.dense_weight), array(net.dense_factor)

    def forward(codes: np.ndarray, dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = factor[codes]  # (m, S, k); padding rows are zero
        linear = weight[codes].sum(1) + dense @ dense_weight
        s = v.sum(1)
        square = np.einsum("msk,msk->m", v, v)
        if dense.shape[1]:
            vd = dense[:, :, None] * dense_factor[None]  # (m, D, k)
            s = s + vd.sum(1)
            square = square + np.einsum("mdk,mdk->m", vd, vd)
        return bias + linear + 0.5 * (np.einsum("mk,mk->m", s, s) - square), v

    return forward


@register
class FactorizationMachine(TorchCTRModel):
    """Factorisation machine (Rendle 2010): per-feature weights plus pairwise factor interactions.

    Args:
        dims: factor dimension k.
        epochs: most passes over the training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        l2: L2 strength on the weights and factors of each batch's features (per row).
        patience: epochs without a lower validation log loss before stopping.
        seed: seeds the initialisation and the batch order.
        device: auto, cpu, cuda or cuda:N.
    """

    name = "ctr-fm"  # "fm" is the rating family's factorisation machine
    summary = "Factorisation machine (Rendle 2010) on one-hot features"
    search_space = {"dims": Int(4, 64, log=True), "lr": Float(1e-4, 1e-2, log=True), "l2": Float(1e-7, 1e-3, log=True)}

    def __init__(self, *, dims: int = 16, epochs: int = 20, batch_size: int = 1024, lr: float = 5e-3,
                 l2: float = 1e-5, patience: int = 2, seed: int = 0, device: str = "auto") -> None:
        self.dims, self.epochs, self.batch_size, self.lr = dims, epochs, batch_size, lr
        self.l2, self.patience, self.seed, self.device = l2, patience, seed, device
        self._check_training()
        if dims < 1:
            from penchant.errors import ConfigError

            raise ConfigError(f"model 'ctr-fm': dims must be at least 1, not {dims}")

    def _network(self, vocab: FeatureVocabulary, n_items: int, history_length: int) -> Any:
        return fm_network(vocab.n_features, len(vocab.dense_names), self.dims)

    def _numpy_forward(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        forward = fm_numpy(self.net_)
        return lambda codes, dense: forward(codes, dense)[0]
