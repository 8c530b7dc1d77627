"""What the gradient-trained preference models share: option encoders over ids or frozen text
embeddings, per-user parameter rows (the last row is the population, used for user −1), training
with the robust losses, and few-shot adaptation of unseen users with everything else frozen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference.base import PreferenceModel
from penchant.models.preference.train import check_loss, pair_loss, train_pairs
from penchant.models.training import check_device, net_device, torch_device

#: the training arguments every neural preference model documents
TRAINING_ARGS = """
        features: ``id`` (a learned vector per option) or ``text`` / ``layers`` (an MLP over
            frozen MiniLM embeddings, so unseen options are scored; see :mod:`.features`).
        hidden: hidden units of the text MLP (0: linear).
        lr, weight_decay: Adam's step size and L2 weight.
        epochs, batch_size, patience: training length, pairs per step, early-stopping patience
            (epochs without a better validation log-loss).
        loss: ``plain``, ``smooth`` (label smoothing ε), ``robust`` (robust DPO's unbiased
            correction for a flip rate ε) or ``forward`` (the noise-aware likelihood at flip rate ε).
        epsilon: ε ∈ [0, 0.5) of the loss.
        strength_heads: H > 0 weights each training pair by the agreement of an H-head ensemble
            with its label (0: off).
        adapt_l2: pull of an adapted user's parameters towards the population's.
        seed: initialisation and batch order.
        device: auto (CUDA when torch sees one), cpu or cuda: the network lives there and the
            pairs' indices move there; initial weights are drawn on the CPU, so one seed gives the
            same start on every device.
"""


def option_net(n_options: int, x: np.ndarray | None, out: int, hidden: int, std: float = 0.1):
    """A torch module: ``forward(options)`` → (len(options), out) option vectors."""
    import torch

    class Options(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if x is None:
                self.table = torch.nn.Parameter(torch.randn(n_options, out) * std)
            else:
                self.register_buffer("x", torch.as_tensor(np.asarray(x, np.float32)))
                f = self.x.shape[1]
                self.mlp = (torch.nn.Sequential(torch.nn.Linear(f, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, out))
                            if hidden else torch.nn.Linear(f, out))

        def forward(self, options):
            return self.table[options] if x is None else self.mlp(self.x[options])

    return Options()


class NeuralPreference(PreferenceModel):
    """Subclasses build ``_network(x)`` (with a ``users`` parameter of n_users + 1 rows, or none)
    and ``_torch_margin(net, users, a, b)``; ``users`` = −1 reads the population row."""

    def _common(self, features: str, text_model: str, hidden: int, lr: float, weight_decay: float, epochs: int,
                batch_size: int, patience: int, loss: str, epsilon: float, strength_heads: int, adapt_l2: float | None,
                seed: int, device: str = "auto") -> None:
        self.features, self.text_model, self.hidden = features, text_model, hidden
        self.lr, self.weight_decay, self.epochs, self.batch_size = lr, weight_decay, epochs, batch_size
        self.patience, self.loss, self.epsilon, self.strength_heads = patience, loss, epsilon, strength_heads
        self.seed, self.device = seed, check_device(device)
        if adapt_l2 is not None:  # models that adapt users by gradient
            self.adapt_l2 = adapt_l2
        if lr <= 0 or epochs < 1 or batch_size < 1 or weight_decay < 0 or hidden < 0 or (adapt_l2 or 0) < 0:
            raise ConfigError("lr, epochs, batch_size must be positive; weight_decay, hidden, adapt_l2 ≥ 0")
        if strength_heads < 0 or strength_heads == 1:
            raise ConfigError("strength_heads must be 0 (off) or at least 2")
        check_loss(loss, epsilon)

    def _network(self, x: np.ndarray | None):
        raise NotImplementedError

    def _torch_margin(self, net, users, a, b):
        raise NotImplementedError

    def _index(self, values: np.ndarray):
        """Integer indices (n,) as an int64 tensor on the network's device."""
        import torch

        return torch.from_numpy(np.asarray(values, np.int64)).to(net_device(self.net_))

    def _rows(self, users):
        """User indices with −1 mapped to the population row."""
        import torch

        return torch.where(users < 0, torch.full_like(users, self.n_users_), users)

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        import torch

        torch.manual_seed(self.seed)
        x = self._fit_features(train)
        self.net_ = self._network(x).to(torch_device(self.device))
        self.history_ = train_pairs(self, self.net_, self._torch_margin, train, valid, lr=self.lr,
                                    weight_decay=self.weight_decay, epochs=self.epochs, batch_size=self.batch_size,
                                    patience=self.patience, seed=self.seed, loss=self.loss, epsilon=self.epsilon,
                                    weight=weight, penalty=getattr(self, "_penalty", None),
                                    before_epoch=self._before_epoch(train), param_groups=self._param_groups(self.net_))

    def _before_epoch(self, train: PreferencePairs):
        """A hook run before each training epoch (see :func:`train_pairs`); none by default."""
        return

    def _param_groups(self, net) -> list[dict] | None:
        """Adam's parameter groups for training (see :func:`train_pairs`); None: one group at ``lr``."""
        return None

    def _restore(self, state: dict) -> None:
        self.net_.load_state_dict(state)

    @contextmanager
    def _options_added(self, x: np.ndarray) -> Iterator[int]:
        import torch

        options = self.net_.options
        known, start = options.x, self.n_options_
        options.x = torch.cat([known, torch.as_tensor(np.asarray(x, np.float32)).to(known.device)])
        self.n_options_ = start + len(x)
        try:
            yield start
        finally:
            options.x, self.n_options_ = known, start

    def _margin(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch

        out = np.empty(len(users))
        with torch.no_grad():
            for s in range(0, len(users), 65536):
                t = [self._index(v[s:s + 65536]) for v in (users, a, b)]
                out[s:s + 65536] = self._torch_margin(self.net_, *t).double().cpu().numpy()
        return out

    def adapt(self, pairs: PreferencePairs, *, steps: int = 200, lr: float = 0.05) -> NeuralPreference:
        """Fit the parameter rows of the users in ``pairs`` from their pairs alone, everything else
        frozen, with an L2 pull (``adapt_l2``) towards the population row. Few-shot use: a new user
        from a handful of comparisons."""
        import torch

        if not hasattr(self.net_, "users"):
            raise NotImplementedError(f"{self.name} has no per-user parameters to adapt")
        users = np.unique(pairs.user[pairs.user >= 0])
        if not len(users):
            return self
        base = self.net_.users.detach().clone()
        at = self._index(users)
        rows = torch.nn.Parameter(base[at].clone())
        u, w, l = (self._index(v) for v in (pairs.user, pairs.winner, pairs.loser))
        opt = torch.optim.Adam([rows], lr=lr)
        self.net_.eval()
        for _ in range(steps):
            table = base.index_put((at,), rows)
            loss = pair_loss(self._torch_margin(self.net_, u, w, l, users_table=table)) * len(pairs)
            loss = loss + self.adapt_l2 * (rows - base[self.n_users_]).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            self.net_.users[at] = rows.detach()
        return self

    def forget(self, users: np.ndarray) -> NeuralPreference:
        """Put ``users`` back to the population (their rows := the population's row), as if they
        had never been seen; :meth:`adapt` then fits them afresh."""
        import torch

        if not hasattr(self.net_, "users"):
            raise NotImplementedError(f"{self.name} has no per-user parameters to forget")
        with torch.no_grad():
            self.net_.users[self._index(users)] = self.net_.users[self.n_users_].clone()
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self.net_ = self._network(arrays.get("net.options.x"))
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})  # copied: the arrays may be read-only maps
        self.net_ = self.net_.to(torch_device(self.device)).eval()


class NeuralUtility(NeuralPreference):
    """A neural model with a scalar utility ``_utility(net, users, options, users_table)``: margins
    are utility differences and ``score`` is the utility."""

    def _utility(self, net, users, options, users_table=None):
        raise NotImplementedError

    def _torch_margin(self, net, users, a, b, users_table=None):
        return self._utility(net, users, a, users_table) - self._utility(net, users, b, users_table)

    def _score(self, users: np.ndarray, options: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._utility(self.net_, self._index(users), self._index(options)).double().cpu().numpy()
