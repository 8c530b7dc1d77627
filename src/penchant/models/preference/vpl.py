"""Variational preference learning (VPL, Poddar et al., "Personalizing Reinforcement Learning from
Human Feedback with Variational Preference Learning", 2024).

A user is known by some of their comparisons, the *context* C_u. An encoder reads each context
pair (winner w, loser l) as h = φ([c(w), c(l)]) and pools the pairs by their mean; two linear heads
give the posterior q(z | C_u) = N(μ, diag σ²) of a latent z ∈ R^L. The reward conditioned on z is

    r(x | z) = θ(x) + z · q(x),    P(a ≻ b | C_u) = σ(r(a | z) − r(b | z)),

with θ, q (and the context encoding c) over option ids or frozen text embeddings. Training
maximises, per target pair of user u with z ~ q(z | C_u) drawn by reparameterisation,

    log σ(r(w | z) − r(l | z)) − β · KL(q(z | C_u) ‖ N(0, I)),

where each target pair gets a fresh context of 1 to ``context`` of the user's other pairs, so the
latent must carry what the context says about the target. At prediction z = μ of the user's training pairs (the whole set; mean pooling takes any
count); a user with none (and the population, user −1) has the prior mean z = 0. A new user is
fitted by :meth:`adapt` with no gradient step: their few comparisons are the context.

The check that the latent is used: :meth:`shuffled` swaps latents between users, which must cost
accuracy.
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference.neural import TRAINING_ARGS, NeuralUtility, option_net
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.training import torch_device


@register
class VariationalPreference(NeuralUtility):
    """A reward conditioned on a latent inferred from the user's own comparisons.

    Args:
        latent: L, size of z.
        dims: width of the context encoder.
        context: most context pairs drawn per target pair in training.
        beta: weight of the KL term.
    """
    __doc__ = __doc__.rstrip() + TRAINING_ARGS.replace("        adapt_l2: pull of an adapted user's parameters towards the population's.\n", "")

    name = "vpl"
    search_space = {"latent": Int(2, 32, log=True), "beta": Float(1e-4, 1.0, log=True),
                    "weight_decay": Float(1e-6, 1e-2, log=True), "lr": Float(1e-3, 1e-1, log=True)}

    def __init__(self, *, latent: int = 8, dims: int = 32, context: int = 16, beta: float = 1e-2, features: str = "id",
                 text_model: str = "all-MiniLM-L6-v2", hidden: int = 0, lr: float = 1e-2, weight_decay: float = 1e-5,
                 epochs: int = 100, batch_size: int = 256, patience: int = 5, loss: str = "plain", epsilon: float = 0.0,
                 strength_heads: int = 0, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if latent < 1 or dims < 1 or context < 1 or beta < 0:
            raise ConfigError("latent, dims and context must be positive and beta ≥ 0")
        self.latent, self.dims, self.context, self.beta = latent, dims, context, beta
        self._common(features, text_model, hidden, lr, weight_decay, epochs, batch_size, patience, loss, epsilon,
                     strength_heads, None, seed, device)

    def _network(self, x: np.ndarray | None):
        import torch

        net = torch.nn.Module()
        net.options = option_net(self.n_options_, x, 1 + self.latent, self.hidden)
        net.context = option_net(self.n_options_, x, self.dims, self.hidden, std=0.5)
        net.pair = torch.nn.Sequential(torch.nn.Linear(2 * self.dims, self.dims), torch.nn.GELU())
        net.mu = torch.nn.Linear(self.dims, self.latent)
        net.logvar = torch.nn.Linear(self.dims, self.latent)
        net.register_buffer("latent", torch.zeros(self.n_users_ + 1, self.latent))
        return net

    # --- the encoder ---------------------------------------------------------------------------

    def _posterior(self, net, winner, loser, owner, n_rows: int):
        """(μ, log σ², count) per row from context pairs (winner, loser) owned by rows ``owner``;
        torch (n_rows, L), (n_rows, L), (n_rows,). Rows without pairs get the prior (0, 0)."""
        import torch

        h = net.pair(torch.cat([net.context(winner), net.context(loser)], 1))
        dev = h.device
        total = torch.zeros(n_rows, self.dims, device=dev).index_add_(0, owner, h)
        count = torch.zeros(n_rows, device=dev).index_add_(0, owner, torch.ones(len(owner), device=dev))
        pooled = total / count.clamp(min=1)[:, None]
        has = (count > 0)[:, None]
        zero = torch.zeros((), device=dev)
        return torch.where(has, net.mu(pooled), zero), torch.where(has, net.logvar(pooled), zero), count

    def _latents_from(self, net, pairs_user, pairs_winner, pairs_loser):
        """μ per user row (n_users + 1, L) from the given pairs (user −1 pairs are ignored)."""
        keep = pairs_user >= 0
        mu, _, _ = self._posterior(net, pairs_winner[keep], pairs_loser[keep], pairs_user[keep], self.n_users_ + 1)
        return mu

    # --- training ------------------------------------------------------------------------------

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        import torch

        dev = torch_device(self.device)
        self._pairs = tuple(torch.from_numpy(v.astype(np.int64)).to(dev) for v in (train.user, train.winner, train.loser))
        super()._fit(train, valid, weight)
        with torch.no_grad():  # the best epoch's weights are back: latents from all training pairs
            self.net_.latent.copy_(self._latents_from(self.net_, *self._pairs))
        self._stale = False
        for scratch in ("_pairs", "_by_user", "_start", "_count", "_kl"):
            self.__dict__.pop(scratch, None)

    def _before_epoch(self, train: PreferencePairs):
        """Index each user's training pairs (for drawing contexts); every epoch fits all pairs and
        marks the latents of the validation margins stale."""
        import torch

        rows = np.where(train.user < 0, self.n_users_, train.user)
        order = np.argsort(rows, kind="stable")
        count = np.bincount(rows, minlength=self.n_users_ + 1)
        count[self.n_users_] = 0  # the population has no context
        dev = self._pairs[0].device
        self._by_user = torch.from_numpy(order).to(dev)
        self._start = torch.from_numpy(np.concatenate(([0], np.cumsum(count)[:-1]))).to(dev)
        self._count = torch.from_numpy(count).to(dev)

        def hook(rng: np.random.Generator) -> None:
            self._stale = True

        return hook

    def _sampled_latent(self, net, rows, a, b):
        """z ~ q(z | context) per target pair of the batch, and the batch's mean KL to the prior.

        Each target gets its own context: k ~ U{1..context} pairs drawn (with replacement) from its
        user's training pairs, the target itself left out, so the latent must say what the *other*
        comparisons reveal; a user with no other pair gets the prior."""
        import torch

        n, c = len(rows), self.context
        count = self._count[rows]
        dev = count.device  # draws come from the CPU generator, then move: the same draws on every device
        draw = (torch.rand(n, c).to(dev) * count[:, None]).long()
        idx = self._by_user[(self._start[rows][:, None] + draw).clamp(max=len(self._by_user) - 1)]
        _, winner, loser = self._pairs
        size = torch.randint(1, c + 1, (n, 1)).to(dev)
        mask = ((torch.arange(c, device=dev)[None, :] < size) & (count[:, None] > 0)
                & ~((winner[idx] == a[:, None]) & (loser[idx] == b[:, None])))
        owner = torch.arange(n, device=dev)[:, None].expand_as(idx)[mask]
        pick = idx[mask]
        mu, logvar, _ = self._posterior(net, winner[pick], loser[pick], owner, n)
        z = mu + torch.randn(mu.shape, dtype=mu.dtype).to(dev) * (0.5 * logvar).exp()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return z, kl

    def _torch_margin(self, net, users, a, b, users_table=None):
        rows = self._rows(users)
        if net.training:
            z, self._kl = self._sampled_latent(net, rows, a, b)
        else:
            if getattr(self, "_stale", False):  # validation during training: latents of the current weights
                import torch

                with torch.no_grad():
                    net.latent.copy_(self._latents_from(net, *self._pairs))
                self._stale = False
            z = (net.latent if users_table is None else users_table)[rows]
        oa, ob = net.options(a), net.options(b)
        return oa[:, 0] - ob[:, 0] + (z * (oa[:, 1:] - ob[:, 1:])).sum(1)

    def _penalty(self, net, users, a, b):
        return self.beta * self._kl if net.training else 0.0

    def _utility(self, net, users, options, users_table=None):
        z = (net.latent if users_table is None else users_table)[self._rows(users)]
        o = net.options(options)
        return o[:, 0] + (z * o[:, 1:]).sum(1)

    # --- users ---------------------------------------------------------------------------------

    def latents(self, users: np.ndarray) -> np.ndarray:
        """Each user's latent mean z, float32 (n, L); zeros for users without comparisons."""

        return self.net_.latent[self._rows(self._index(users))].cpu().numpy().copy()

    def adapt(self, pairs: PreferencePairs, **_: object) -> VariationalPreference:
        """Set the latent of each user in ``pairs`` from those pairs alone (amortised inference: the
        encoder reads them as the user's context; no weight changes)."""
        import torch

        users = np.unique(pairs.user[pairs.user >= 0])
        if not len(users):
            return self
        t = [self._index(v) for v in (pairs.user, pairs.winner, pairs.loser)]
        with torch.no_grad():
            mu = self._latents_from(self.net_, *t)
            at = self._index(users)
            self.net_.latent[at] = mu[at]
        return self

    def forget(self, users: np.ndarray) -> VariationalPreference:
        """Give ``users`` the prior latent z = 0 (what a user without comparisons gets)."""
        import torch

        with torch.no_grad():
            self.net_.latent[self._index(users)] = 0
        return self

    def shuffled(self, seed: int = DEFAULT_SEED) -> VariationalPreference:
        """A copy in which every user that has a latent gets another such user's (a random cyclic
        shift, so nobody keeps their own, even with two users): the check that predictions depend
        on the latent, so accuracy must drop."""
        import copy

        import torch

        out = copy.deepcopy(self)
        table = out.net_.latent
        has = np.flatnonzero(table[:-1].abs().sum(1).cpu().numpy() > 0)
        order = np.random.default_rng(seed).permutation(len(has))
        source = np.empty_like(has)
        source[order] = has[np.roll(order, 1)]  # the user at order[i] takes the latent of the one at order[i − 1]
        with torch.no_grad():
            table[out._index(has)] = table[out._index(source)].clone()
        return out
