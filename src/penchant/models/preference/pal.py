"""Pluralistic ideal points (PAL-A, Chen et al., "PAL: Pluralistic Alignment Framework for
Learning from Heterogeneous Preferences", 2024).

K learned prototype ideal points p_1..p_K in a d-dimensional preference space; user u is a mixture
w_u = softmax(z_u) of them, with ideal point a_u = Σ_k w_uk p_k. An option x maps to f(x), and
the closer it is to the user's ideal point, the better:

    s_u(x) = −‖f(x) − a_u‖²,    P(a ≻ b | u) = σ(s_u(a) − s_u(b)).

A new user is fitted from a handful of comparisons by :meth:`adapt`: only z_u moves (K numbers),
f and the prototypes stay frozen. The population (z = 0) is the uniform mixture.
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError
from penchant.models.preference.neural import TRAINING_ARGS, NeuralUtility, option_net
from penchant.models.registry import register
from penchant.models.search import Float, Int


@register
class PluralIdealPoints(NeuralUtility):
    """Mixtures of K prototype ideal points.

    Args:
        prototypes: K.
        dims: d, the preference space.
        user_lr: the mixture logits' step size as a multiple of ``lr``. With few users, each seen in
            many pairs, the option map can fit the training pairs before the mixtures leave uniform
            (measured on two real users: best epoch 1–2, mixtures 0.51/0.49); a faster user
            timescale (e.g. 30) lets them separate first.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "pal"
    search_space = {"prototypes": Int(1, 8), "dims": Int(4, 64, log=True), "weight_decay": Float(1e-6, 1e-2, log=True),
                    "lr": Float(1e-3, 1e-1, log=True)}

    def __init__(self, *, prototypes: int = 4, dims: int = 16, features: str = "id", text_model: str = "all-MiniLM-L6-v2",
                 hidden: int = 0, lr: float = 3e-2, weight_decay: float = 1e-5, epochs: int = 100, batch_size: int = 256,
                 patience: int = 5, loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0, adapt_l2: float = 0.1,
                 user_lr: float = 1.0, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if user_lr <= 0:
            raise ConfigError("user_lr must be > 0")
        self.prototypes, self.dims, self.user_lr = prototypes, dims, user_lr
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, adapt_l2, seed, device)

    def _network(self, x: np.ndarray | None):
        import torch

        net = torch.nn.Module()
        net.options = option_net(self.n_options_, x, self.dims, self.hidden, std=0.5)
        net.ideal = torch.nn.Parameter(torch.randn(self.prototypes, self.dims) * 0.5)
        net.users = torch.nn.Parameter(torch.zeros(self.n_users_ + 1, self.prototypes))
        return net

    def _param_groups(self, net) -> list[dict]:
        rest = [p for name, p in net.named_parameters() if name != "users"]
        return [{"params": rest}, {"params": [net.users], "lr": self.lr * self.user_lr}]

    def _utility(self, net, users, options, users_table=None):
        table = net.users if users_table is None else users_table
        ideal = table[self._rows(users)].softmax(1) @ net.ideal
        return -(net.options(options) - ideal).pow(2).sum(1)

    def mixture(self, users: np.ndarray) -> np.ndarray:
        """Each user's weights over the prototypes, float32 (n, K)."""
        import torch

        with torch.no_grad():
            return self.net_.users[self._rows(self._index(users))].softmax(1).cpu().numpy()
