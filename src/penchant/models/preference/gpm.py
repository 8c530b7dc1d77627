"""General Preference Model (Zhang et al., "General Preference Modeling with Preference
Representations for Aligning Language Models", 2024).

Each option gets a preference representation v ∈ R^{2k}; the log-odds that a is preferred to b is

    m_u(a, b) = v_aᵀ R_u v_b,   R_u = blockdiag(λ_{u,1} J, …, λ_{u,k} J),   J = [[0, −1], [1, 0]],

with λ_{u,l} = softplus(g_l + g_{u,l}) ≥ 0. R_u is skew-symmetric, so m_u(a, b) = −m_u(b, a) and
P(a ≻ b) + P(b ≻ a) = 1 by construction, while cycles (a ≻ b ≻ c ≻ a) are representable, which no
scalar score allows. Scoring K options costs K representations (O(K)); any pair is then a 2k-term
product. The user gates g_u personalise how much each block counts (0 for the population).
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.models.preference.neural import TRAINING_ARGS, NeuralPreference, option_net
from penchant.models.registry import register
from penchant.models.search import Float, Int


@register
class GeneralPreference(NeuralPreference):
    """Skew-symmetric preference embeddings (no scalar score).

    Args:
        blocks: k, the number of 2-d rotation blocks (representation size 2k).
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "gpm"
    search_space = {"blocks": Int(1, 8), "weight_decay": Float(1e-6, 1e-2, log=True), "lr": Float(1e-3, 1e-1, log=True)}
    has_score = False

    def __init__(self, *, blocks: int = 4, features: str = "id", text_model: str = "all-MiniLM-L6-v2", hidden: int = 0,
                 lr: float = 1e-2, weight_decay: float = 1e-5, epochs: int = 100, batch_size: int = 1024,
                 patience: int = 5, loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0, adapt_l2: float = 1.0,
                 seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        self.blocks = blocks
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, adapt_l2, seed, device)

    def _network(self, x: np.ndarray | None):
        import torch

        net = torch.nn.Module()
        net.options = option_net(self.n_options_, x, 2 * self.blocks, self.hidden, std=0.5)
        net.users = torch.nn.Parameter(torch.zeros(self.n_users_ + 1, self.blocks))
        net.gate = torch.nn.Parameter(torch.zeros(self.blocks))
        return net

    def embed(self, options: np.ndarray) -> np.ndarray:
        """Preference representations of ``options``: float32 (K, blocks, 2); one pass, O(K)."""
        import torch

        with torch.no_grad():
            return self.net_.options(self._index(options)).view(-1, self.blocks, 2).cpu().numpy()

    def gates(self, users: np.ndarray) -> np.ndarray:
        """λ_u ≥ 0 per block, float32 (n, blocks)."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            rows = self._rows(self._index(users))
            return F.softplus(self.net_.gate + self.net_.users[rows]).cpu().numpy()

    def _torch_margin(self, net, users, a, b, users_table=None):
        import torch.nn.functional as F

        table = net.users if users_table is None else users_table
        va = net.options(a).view(-1, self.blocks, 2)
        vb = net.options(b).view(-1, self.blocks, 2)
        cross = va[..., 0] * vb[..., 1] - va[..., 1] * vb[..., 0]
        return (F.softplus(net.gate + table[self._rows(users)]) * cross).sum(1)
