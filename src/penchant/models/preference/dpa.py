"""Directional preferences over attribute scores (after DPA, Wang et al., "Arithmetic Control of
LLMs for Diverse User Preferences: Directional Preference Alignment with Multi-Objective
Rewards", 2024).

Every option has a vector of attribute scores r(x) ∈ R^m: known ones (``pairs.option_attributes``,
e.g. a film's genres, used when ``given=True``) and/or ``attributes`` learned ones (heads over the
option's id or text embedding, a multi-objective reward model). A user is a unit direction v_u in
that attribute space, and

    utility_u(x) = s · v_uᵀ r(x),    v_u = (g + d_u) / ‖g + d_u‖,   s = exp(log_scale),

with g the population's direction and d_u the user's deviation (0 for the population, user −1).
Because a user is a direction, preferences can be steered arithmetically: "more of this, less
of that" is v' = normalise(v_u + Σ_k δ_k e_k) (:meth:`steer`), and any direction can rank the
options (:meth:`score_direction`). A new user is fitted from a few comparisons by :meth:`adapt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError
from penchant.models.preference.neural import TRAINING_ARGS, NeuralUtility, option_net
from penchant.models.registry import register
from penchant.models.search import Float, Int


@register
class DirectionalPreference(NeuralUtility):
    """A unit direction per user over the options' attribute scores.

    Args:
        attributes: learned attribute heads (0: only the given attributes).
        given: also use the pairs' known option attributes (``option_attributes``), standardised.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS

    name = "dpa"
    search_space = {"attributes": Int(1, 8), "weight_decay": Float(1e-6, 1e-2, log=True), "lr": Float(1e-3, 1e-1, log=True)}

    def __init__(self, *, attributes: int = 2, given: bool = False, features: str = "id",
                 text_model: str = "all-MiniLM-L6-v2", hidden: int = 0, lr: float = 1e-2, weight_decay: float = 1e-5,
                 epochs: int = 100, batch_size: int = 512, patience: int = 5, loss: str = "plain", epsilon: float = 0.0,
                 strength_heads: int = 0, adapt_l2: float = 0.1,
                 seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if attributes < 0 or (attributes == 0 and not given):
            raise ConfigError("need learned attributes (attributes > 0) or given=True")
        self.attributes, self.given = attributes, given
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, adapt_l2, seed, device)

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        names = [f"learned {k}" for k in range(self.attributes)]
        self._given = None
        if self.given:
            if train.option_attributes is None:
                raise DataError(f"{train.name} carries no option attributes; given=True needs them")
            a = np.asarray(train.option_attributes, np.float64)
            self._given = ((a - a.mean(0)) / np.where(a.std(0) > 0, a.std(0), 1.0)).astype(np.float32)
            names += [str(n) for n in (train.attribute_names if train.attribute_names is not None
                                      else [f"attribute {k}" for k in range(a.shape[1])])]
        self.attribute_names_ = names
        super()._fit(train, valid, weight)

    def _network(self, x: np.ndarray | None):
        import torch

        m = len(self.attribute_names_)
        net = torch.nn.Module()
        if self.attributes:
            net.options = option_net(self.n_options_, x, self.attributes, self.hidden, std=0.5)
        if self._given is not None:
            net.register_buffer("given", torch.from_numpy(self._given))
        net.direction = torch.nn.Parameter(torch.randn(m) / np.sqrt(m))
        net.users = torch.nn.Parameter(torch.zeros(self.n_users_ + 1, m))
        net.log_scale = torch.nn.Parameter(torch.zeros(()))
        return net

    def _scores(self, net, options):
        """r(x): (len(options), m) attribute scores, learned heads first."""
        import torch

        parts = []
        if self.attributes:
            parts.append(net.options(options))
        if hasattr(net, "given"):
            parts.append(net.given[options])
        return torch.cat(parts, 1)

    def _directions(self, net, users, users_table=None):
        import torch.nn.functional as F

        table = net.users if users_table is None else users_table
        return F.normalize(net.direction + table[self._rows(users)], dim=1)

    def _utility(self, net, users, options, users_table=None):
        v = self._directions(net, users, users_table)
        return net.log_scale.exp() * (v * self._scores(net, options)).sum(1)

    # --- directions ----------------------------------------------------------------------------

    def attribute_scores(self, options: np.ndarray) -> np.ndarray:
        """r(x) for ``options``: float32 (n, m), columns named by ``attribute_names_``."""
        import torch

        with torch.no_grad():
            return self._scores(self.net_, self._index(options)).cpu().numpy()

    def direction(self, users: np.ndarray) -> np.ndarray:
        """Each user's unit direction, float32 (n, m)."""
        import torch

        with torch.no_grad():
            return self._directions(self.net_, self._index(users)).cpu().numpy()

    def steer(self, users: np.ndarray, change: dict[str, float]) -> np.ndarray:
        """The users' directions moved by ``change`` ({attribute name: amount}, + for more, − for
        less) and renormalised: float32 (n, m)."""
        unknown = set(change) - set(self.attribute_names_)
        if unknown:
            raise ConfigError(f"no attribute {sorted(unknown)}; known: {', '.join(self.attribute_names_)}")
        delta = np.array([change.get(n, 0.0) for n in self.attribute_names_], np.float32)
        v = self.direction(users) + delta
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def score_direction(self, direction: np.ndarray, options: np.ndarray) -> np.ndarray:
        """Utility of ``options`` (K,) under a direction (m,) or per-option directions (K, m)."""
        import torch

        with torch.no_grad():
            scale = float(self.net_.log_scale.exp())
        return scale * (self.attribute_scores(options) * np.asarray(direction, np.float32)).sum(-1).astype(np.float64)

    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        state["attribute_names"] = np.array(self.attribute_names_, dtype=str)
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.attribute_names_ = [str(n) for n in arrays.pop("attribute_names")]
        self._given = arrays.get("net.given")
        super()._load_state(arrays)

    @contextmanager
    def _options_added(self, x: np.ndarray) -> Iterator[int]:
        if self.given:
            raise ConfigError(f"this {self.name} model reads the options' given attributes (given=true), which new "
                              "text does not carry")
        with super()._options_added(x) as start:
            yield start
