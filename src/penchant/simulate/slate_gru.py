"""A slate policy with a recurrent user state and Thompson sampling over item vectors.

After "Dynamic Slate Recommendation with Gated Recurrent Units and Thompson Sampling" (Eide, Leslie
& Frigessi, 2021). Nothing about users or items is given: the policy learns item vectors and a
recurrent user state from the slates it showed and what was clicked, and explores by sampling item
vectors from their approximate posterior.

* **User state**: h_0 is learned; after each shown slate h ← GRU(h, x), where x is the vector of the
  clicked item (its posterior mean) or a learned no-click vector. Users are known only by what they
  clicked, so a new user starts at h_0 and the same network serves everyone.
* **Click model** (the likelihood): the user picks one of the shown slots or no click by a
  conditional logit, slot l of item i having utility h·v_i + b_i + ρ_l (ρ_l a learned position
  effect) and no click w·h + c.
* **Posterior**: item vectors v_i and biases b_i have a N(0, ``prior_scale``²) prior and a mean-field
  Gaussian variational posterior q; the GRU, ρ, w and c are point estimates. Fitting maximises the
  ELBO, E_q[log likelihood of every logged choice] − KL(q ‖ prior), by Adam with one reparameterised
  draw per step, over all steps so far (warm refits as the log grows; see :class:`SlateGRU`).
* **Thompson sampling**: for each arriving user draw (v, b) ~ q, show the top-k of h·v + b among
  items (the slots in order of their learned position effect, i.e. best on top). ``thompson=False``
  is the same model's greedy use (the posterior mean), the paper's baseline.

``act`` returns Monte-Carlo propensities (the share of ``propensity_draws`` fresh posterior draws
that put each shown item in its slot) when ``propensity_draws`` > 0, else NaN.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from penchant.models.training import torch_single_threaded
from penchant.simulate.bandits import top_k


class _Network(nn.Module):
    def __init__(self, n_items: int, dim: int, slate_size: int, prior_scale: float) -> None:
        super().__init__()
        self.mean = nn.Parameter(0.1 * torch.randn(n_items, dim + 1))    # [v_i, b_i]
        self.log_scale = nn.Parameter(torch.full((n_items, dim + 1), np.log(0.1 * prior_scale)))
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.start = nn.Parameter(torch.zeros(dim))
        self.no_click_input = nn.Parameter(torch.zeros(dim))
        self.no_click = nn.Linear(dim, 1)
        self.position = nn.Parameter(torch.zeros(slate_size))
        self.prior_scale = prior_scale

    def draw(self, generator: torch.Generator | None) -> torch.Tensor:
        """(M, d + 1) item vectors and biases: a reparameterised draw from q (its mean without a generator)."""
        if generator is None:
            return self.mean
        return self.mean + self.log_scale.exp() * torch.randn(self.mean.shape, generator=generator)

    def kl(self) -> torch.Tensor:
        """KL(q ‖ N(0, s² I)) summed over every item parameter."""
        var, s2 = (2 * self.log_scale).exp(), self.prior_scale ** 2
        return 0.5 * ((var + self.mean ** 2) / s2 - 1.0 - 2 * self.log_scale + np.log(s2)).sum()

    def inputs(self, clicked: torch.Tensor) -> torch.Tensor:
        """(..., d) GRU inputs for clicked item indices (−1 = no click)."""
        vectors = self.mean[:, :-1].detach()[clicked.clamp(min=0)]
        return torch.where((clicked >= 0)[..., None], vectors, self.no_click_input)

    def states(self, clicked: torch.Tensor) -> torch.Tensor:
        """(n, T, d): the state before each of T steps, given the clicks (n, T) at those steps."""
        n = clicked.shape[0]
        start = self.start.expand(n, -1)
        after, _ = self.gru(self.inputs(clicked[:, :-1]), start[None].contiguous())
        return torch.cat([start[:, None], after], dim=1)

    def step(self, h: torch.Tensor, clicked: torch.Tensor) -> torch.Tensor:
        """(n, d): the states after one step from ``h`` (n, d) with clicks (n,)."""
        return self.gru(self.inputs(clicked)[:, None], h[None].contiguous())[1][0]

    def log_likelihood(self, h: torch.Tensor, slates: torch.Tensor, choice: torch.Tensor,
                       items: torch.Tensor) -> torch.Tensor:
        """Summed log-probability of ``choice`` (N,; slot, or k for no click) among ``slates`` (N, k)
        for states ``h`` (N, d), with item parameters ``items`` (M, d + 1)."""
        shown = items[slates]                                        # (N, k, d + 1)
        utility = (shown[..., :-1] * h[:, None, :]).sum(-1) + shown[..., -1] + self.position[: slates.shape[1]]
        logits = torch.cat([utility, self.no_click(h)], dim=1)       # no click is the last option
        return -nn.functional.cross_entropy(logits, choice, reduction="sum")


class SlateGRU:
    """See the module. A :class:`~penchant.models.protocols.SlatePolicy` and ``LearningPolicy``.

    Args:
        n_users, n_items: the world's size (users only index the policy's memory of their clicks).
        slate_size: items per list.
        dim: size of the item vectors and of the user state.
        thompson: sample item vectors from the posterior (True) or use its mean (False).
        refit_every: served lists before the first refit; later refits come when the log has grown by
            ``growth`` (a share) since the last one, and at least ``refit_every`` lists.
        epochs: Adam steps per refit, over every logged step.
        prior_scale: the item parameters' prior standard deviation.
        propensity_draws: posterior draws for the propensities (0: none, NaN).
        seed: seeds the network's initial values and the training draws.
    """

    def __init__(self, n_users: int, n_items: int, slate_size: int, *, dim: int = 8, thompson: bool = True,
                 refit_every: int = 500, growth: float = 0.25, epochs: int = 100, lr: float = 0.02, prior_scale: float = 1.0,
                 propensity_draws: int = 0, seed: int = 0) -> None:
        self._generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():  # the initial values from this seed, leaving torch's global RNG alone
            torch.manual_seed(seed)
            self.net = _Network(n_items, dim, slate_size, prior_scale)
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.n_users, self.n_items, self.slate_size = int(n_users), int(n_items), int(slate_size)
        self.thompson, self.refit_every, self.epochs = bool(thompson), int(refit_every), int(epochs)
        self.growth, self._fitted_steps = float(growth), 0
        self.propensity_draws = int(propensity_draws)
        self._users: list[np.ndarray] = []
        self._slates: list[np.ndarray] = []
        self._clicked: list[np.ndarray] = []   # item index, −1 for no click
        self._since_fit = 0
        with torch.no_grad():
            self.state = self.net.start.detach().expand(self.n_users, -1).clone()  # (U, d)
        self.history: list[dict] = []

    # --- acting -------------------------------------------------------------------------------
    def _scores(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, M) scores h·v + b; a fresh posterior draw per user when sampling."""
        mean = self.net.mean.detach().numpy()
        h = self.state[users].numpy()
        if not self.thompson:
            return h @ mean[:, :-1].T + mean[:, -1]
        scale = np.exp(self.net.log_scale.detach().numpy())
        items = mean + scale * rng.standard_normal((len(users), *mean.shape))   # (n, M, d + 1)
        return np.einsum("nd,nmd->nm", h, items[..., :-1]) + items[..., -1]

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, dtype=np.int64)
        ranked = top_k(self._scores(users, rng), k)
        order = np.argsort(-self.net.position.detach().numpy()[:k], kind="stable")  # best slot first
        slates = np.empty_like(ranked)
        slates[:, order] = ranked
        if self.propensity_draws and self.thompson:
            propensity = np.empty(ranked.shape)
            propensity[:, order] = self._winning_share(users, ranked, rng)
            return slates, propensity
        if not self.thompson:
            return slates, np.ones(slates.shape)
        return slates, np.full(slates.shape, np.nan)

    def _winning_share(self, users: np.ndarray, ranked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, k): the share of ``propensity_draws`` fresh posterior draws that rank each item of
        ``ranked`` (n, k) at its place, at least 1 / draws; draws in blocks of bounded memory."""
        n, k = ranked.shape
        draws, hits = self.propensity_draws, np.zeros(ranked.shape)
        block = max(1, int(2e7 // (n * self.net.mean.numel())))
        for start in range(0, draws, block):
            b = min(block, draws - start)
            top = top_k(self._scores(np.repeat(users, b), rng), k).reshape(n, b, k)
            hits += (top == ranked[:, None, :]).sum(axis=1)
        return np.maximum(hits / draws, 1.0 / draws)

    # --- learning -----------------------------------------------------------------------------
    def update(self, users: np.ndarray, slates: np.ndarray, rewards: np.ndarray) -> None:
        """Log each user's choice (the clicked slot, at most one) and advance their state; refit
        when the log has grown enough (see the class)."""
        users, slates = np.asarray(users, dtype=np.int64), np.asarray(slates, dtype=np.int64)
        rewards = np.asarray(rewards)
        clicked = np.where(rewards.any(axis=1), slates[np.arange(len(slates)), rewards.argmax(axis=1)], -1)
        self._users.append(users)
        self._slates.append(slates)
        self._clicked.append(clicked)
        self._since_fit += len(users)
        if self._since_fit >= max(self.refit_every, self.growth * self._fitted_steps):
            self.fit()
        else:
            self._advance(users, clicked)

    def _advance(self, users: np.ndarray, clicked: np.ndarray) -> None:
        """One GRU step for each (user, click) in order; a user twice in a batch steps twice."""
        with torch.no_grad():
            remaining = np.arange(len(users))
            while len(remaining):  # waves of distinct users keep a user's steps in order
                _, first = np.unique(users[remaining], return_index=True)
                wave = remaining[np.sort(first)]
                u = torch.from_numpy(users[wave])
                self.state[u] = self.net.step(self.state[u], torch.from_numpy(clicked[wave]))
                remaining = np.setdiff1d(remaining, wave, assume_unique=True)

    def _sequences(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        """Every logged step as per-user padded sequences: clicked (U', T), slates (U', T, k),
        choice (U', T), the mask (U', T) and the users (U',)."""
        users = np.concatenate(self._users)
        slates, clicked = np.concatenate(self._slates), np.concatenate(self._clicked)
        order = np.argsort(users, kind="stable")           # each user's steps in the order served
        users, slates, clicked = users[order], slates[order], clicked[order]
        present, starts, counts = np.unique(users, return_index=True, return_counts=True)
        position = np.arange(len(users)) - np.repeat(starts, counts)
        row = np.repeat(np.arange(len(present)), counts)
        T = int(counts.max())
        seq_clicked = np.full((len(present), T), -1, dtype=np.int64)
        seq_slates = np.zeros((len(present), T, slates.shape[1]), dtype=np.int64)
        seq_choice = np.full((len(present), T), -100, dtype=np.int64)   # −100: padding, ignored
        seq_clicked[row, position] = clicked
        seq_slates[row, position] = slates
        hit = clicked >= 0
        choice = np.where(hit, (slates == clicked[:, None]).argmax(axis=1), slates.shape[1])
        seq_choice[row, position] = choice
        mask = seq_choice >= 0
        return (torch.from_numpy(seq_clicked), torch.from_numpy(seq_slates), torch.from_numpy(seq_choice),
                mask, present)

    @torch_single_threaded()
    def fit(self) -> None:
        """Refit on every logged step (warm start), then recompute every user's state (on one
        thread: see :func:`~penchant.models.training.torch_single_threaded`)."""
        clicked, slates, choice, mask, present = self._sequences()
        n_steps = int(mask.sum())
        keep = torch.from_numpy(mask.ravel())
        flat_slates, flat_choice = slates.reshape(-1, slates.shape[-1])[keep], choice.ravel()[keep]
        for _ in range(self.epochs):
            self.optimiser.zero_grad()
            items = self.net.draw(self._generator)
            h = self.net.states(clicked).reshape(-1, self.net.start.shape[0])[keep]
            loss = -(self.net.log_likelihood(h, flat_slates, flat_choice, items) - self.net.kl()) / n_steps
            loss.backward()
            self.optimiser.step()
        self.history.append({"steps": n_steps, "loss": float(loss.detach())})
        with torch.no_grad():
            self.state[:] = self.net.start
            last = torch.from_numpy(mask.sum(axis=1))
            # the state after each user's last step: one more GRU step past the last logged input
            rows = torch.arange(len(present))
            states = self.net.states(clicked)
            self.state[torch.from_numpy(present)] = self.net.step(states[rows, last - 1], clicked[rows, last - 1])
        self._since_fit, self._fitted_steps = 0, n_steps
