"""Personalised Bradley–Terry: s_u(i) = θ_i + p_u · q_i (BPR on explicit pairs, Rendle et al. 2009)."""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError
from penchant.models.preference.neural import TRAINING_ARGS, NeuralUtility, option_net
from penchant.models.registry import register
from penchant.models.search import Float, Int


@register
class PersonalBT(NeuralUtility):
    """Option strength θ_i plus a user-specific taste p_u · q_i; P(a ≻ b | u) = σ(s_u(a) − s_u(b)).

    The population (user −1, and users not seen in training) has p = 0: global Bradley–Terry.

    Args:
        factors: size of p_u and q_i.
        reg: L2 weight on the user and option factors a batch touches, λ(‖p_u‖² + ‖q_a‖² + ‖q_b‖²)
            per pair (the strengths θ are left to ``weight_decay``).
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "pbt"
    search_space = {"factors": Int(2, 64, log=True), "reg": Float(1e-4, 1.0, log=True),
                    "weight_decay": Float(1e-6, 1e-2, log=True), "lr": Float(1e-3, 1e-1, log=True)}
    aliases = ("personal-bt",)

    def __init__(self, *, factors: int = 16, reg: float = 0.0, features: str = "id", text_model: str = "all-MiniLM-L6-v2", hidden: int = 0,
                 lr: float = 1e-2, weight_decay: float = 1e-4, epochs: int = 50, batch_size: int = 1024, patience: int = 3,
                 loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0, adapt_l2: float = 1.0,
                 seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        self.factors, self.reg = factors, reg
        if reg < 0:
            raise ConfigError("reg must be ≥ 0")
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, adapt_l2, seed, device)

    def _network(self, x: np.ndarray | None):
        import torch

        n_users, d = self.n_users_, self.factors

        net = torch.nn.Module()
        net.options = option_net(self.n_options_, x, 1 + d, self.hidden)
        net.users = torch.nn.Parameter(torch.zeros(n_users + 1, d))
        return net

    def _penalty(self, net, users, a, b):
        if not self.reg:
            return 0.0
        rows = net.users[self._rows(users)]
        fa, fb = net.options(a)[:, 1:], net.options(b)[:, 1:]
        return self.reg * (rows.pow(2).sum(1) + fa.pow(2).sum(1) + fb.pow(2).sum(1)).mean()

    def _utility(self, net, users, options, users_table=None):
        table = net.users if users_table is None else users_table
        o = net.options(options)
        return o[:, 0] + (table[self._rows(users)] * o[:, 1:]).sum(1)
