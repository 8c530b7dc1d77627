"""Mult-VAE (Liang, Krishnan, Hoffman & Jebara, WWW 2018): a variational autoencoder over a
user's whole interaction row with a multinomial likelihood.

Encoder: L2-normalised row → dropout → tanh layer → (μ, log σ²); decoder: z → tanh layer →
logits over all items. The loss is ``−Σ_i x_ui log softmax(logits)_i + β·KL(q(z|x) ‖ N(0, I))``
with β annealed linearly from 0 to ``beta_max``. Scoring uses z = μ, so any user with a
history — also one unseen in training — is scored by one forward pass.

During training z = μ + noise·ε·σ. The paper draws ε with unit variance (``noise=1``); RecBole draws
it with standard deviation 0.01, which makes the encoder nearly deterministic. On ML-100K
(per-user 80/10/10, seed 2026) ``noise=0.01`` scores NDCG@10 0.310 against 0.299 for ``noise=1``,
so 0.01 is the default here; pass ``noise=1`` for the paper's model. Weights start Xavier-normal
with zero biases.

Inputs are sparse end to end: a batch of users is its CSR rows (:class:`SparseRows`), the first
encoder layer is ``Σ_i x̃_ui W_i`` over the user's stored items only (:class:`SparseInput`, a
(n_items, hidden) table read by ``embedding_bag`` with the normalised, dropped-out values as
weights), and the multinomial likelihood gathers ``log softmax`` at those items. No (users × items)
dense row is built: on the 20M log's 26,744 items an encoder pass of 128 users then touches ~150
rows of the table per user instead of all 26,744. The decoder's logits over all items stay dense —
the multinomial likelihood's softmax needs them. Mathematically the model is the one above:
dropout on the stored entries with 1/(1 − p) scaling is the dense dropout's distribution (zeros
stay zero), only the random draws differ.

Adam is torch's fused one (``fused=True``: each tensor's update in one pass over its value,
gradient and two moments, the same rule as the default multi-tensor loop). At the 20M shape its
two (26,744 × 600) matrices made Adam the largest part of a step: 4 s against 0.5–0.7 s fused,
one thread on a loaded machine.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import HistoryScored, Validator
from penchant.models.bpr import auto_batch
from penchant.models.distributed import shard, synced
from penchant.models.registry import register
from penchant.models.search import Float
from penchant.models.training import (
    EarlyStopping,
    blas_single_threaded,
    check_device,
    net_device,
    seed_torch,
    torch_device,
    validate_net,
)

#: ``batch_size=0``: users per step are max(MIN_BATCH, users // 256) (:func:`penchant.models.bpr.auto_batch`)
MIN_BATCH = 128


class SparseRows(NamedTuple):
    """B users' rows of the user × item matrix as torch tensors on one device (CSR): ``indices``
    int64 (nnz,) the stored items, ``offsets`` int64 (B,) where each row starts in them, ``row``
    int64 (nnz,) each entry's row, ``values`` float32 (nnz,) the entries, ``n`` = B."""

    indices: Any
    offsets: Any
    row: Any
    values: Any
    n: int

    def sums(self):
        """float32 (B,): each row's sum of entries (|X_u| for a 0/1 log)."""
        import torch

        return torch.zeros(self.n, dtype=self.values.dtype, device=self.values.device).index_add_(0, self.row, self.values)


def sparse_rows(x: sp.csr_matrix, device: Any = "cpu") -> SparseRows:
    """The rows of ``x`` (B, n_items) as a :class:`SparseRows` batch on ``device``."""
    import torch

    x = sp.csr_matrix(x)
    counts = np.diff(x.indptr)

    def tensor(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)

    return SparseRows(tensor(x.indices, np.int64), tensor(x.indptr[:-1], np.int64),
                      tensor(np.repeat(np.arange(x.shape[0]), counts), np.int64), tensor(x.data, np.float32), x.shape[0])


def multinomial_nll(logits, batch: SparseRows):
    """(B,) −Σ_i x_ui log softmax(logits_u)_i of each user's row: ``logits`` (B, n_items) dense,
    the sum over the stored entries of ``batch`` only.

    One autograd node (:func:`_multinomial_nll_function`): the forward keeps log softmax (B, n_items)
    and its backward turns it in place into the gradient ``g_u·(|x_u|·softmax(logits_u) − x_u)``
    (exp, one scaling, the stored entries subtracted), instead of autograd's chain of the gather's
    zero-filled (B, n_items) gradient and log softmax's backward: at 540 users × 26,744 items these
    (B, n_items) passes were a sixth of a step. It computes the same values and gradients to 1e-6.
    Its backward runs once (``retain_graph`` is refused)."""
    return _multinomial_nll_function().apply(logits, batch.row, batch.indices, batch.values, batch.n)


_NLL = None


def _multinomial_nll_function():
    """The torch.autograd.Function of :func:`multinomial_nll` (built once, torch imported lazily)."""
    global _NLL
    if _NLL is None:
        import torch

        class MultinomialNLL(torch.autograd.Function):
            @staticmethod
            def forward(ctx, logits, row, indices, values, n):
                log_p = torch.log_softmax(logits, dim=1)
                picked = log_p[row, indices] * values
                ctx.save_for_backward(log_p, row, indices, values)
                ctx.spent = False
                return -torch.zeros(n, dtype=logits.dtype, device=logits.device).index_add_(0, row, picked)

            @staticmethod
            def backward(ctx, g):
                if ctx.spent:
                    raise RuntimeError("multinomial_nll's backward runs once: it reuses its saved log softmax")
                ctx.spent = True
                log_p, row, indices, values = ctx.saved_tensors
                sums = torch.zeros_like(g).index_add_(0, row, values)
                grad = log_p.exp_().mul_((g * sums)[:, None])  # in place: the saved tensor is not needed again
                grad.view(-1).index_add_(0, row * grad.shape[1] + indices, -(g[row] * values))
                return grad, None, None, None, None

        _NLL = MultinomialNLL
    return _NLL


def _sparse_input(n_items: int, out: int):
    """The first encoder layer over L2-normalised sparse rows: (B, n_items) × weight (n_items, out) + bias.

    ``embedding_bag`` (sum of the stored items' weight rows, scaled by their values) is the CSR
    product; its backward writes only those rows' gradient. Measured against ``torch.sparse`` CSR ×
    a (n_items, out) matrix at 128 users × 26,744 items × 600, one thread: forward + backward 0.09 s
    against 0.20 s (a dense (128, 26,744) × (26,744, 600) layer: 0.58 s). The weight is stored
    (n_items, out), the transpose of ``torch.nn.Linear``'s; xavier-normal is symmetric in the two."""
    import torch
    import torch.nn.functional as F

    class SparseInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(n_items, out))
            self.bias = torch.nn.Parameter(torch.zeros(out))
            torch.nn.init.xavier_normal_(self.weight)

        def forward(self, batch: SparseRows, dropout: float = 0.0):
            norm = torch.zeros(batch.n, dtype=batch.values.dtype, device=batch.values.device)
            norm = norm.index_add_(0, batch.row, batch.values.pow(2)).sqrt().clamp_min(1e-12)  # F.normalize's eps
            values = F.dropout(batch.values / norm[batch.row], dropout, self.training)
            return F.embedding_bag(batch.indices, self.weight, batch.offsets, mode="sum", per_sample_weights=values) + self.bias

    return SparseInput()


def transposed_inputs(arrays: dict[str, np.ndarray], keys: tuple[str, ...], n_items: int) -> dict[str, np.ndarray]:
    """Artefacts saved before the sparse input stored the first layer as ``torch.nn.Linear``'s
    (hidden, n_items): give those ``keys`` the (n_items, hidden) layout of :func:`_sparse_input`."""
    return {k: (v.T if k in keys and v.ndim == 2 and v.shape[0] != n_items else v) for k, v in arrays.items()}


def _network(n_items: int, hidden: int, latent: int, dropout: float, noise: float = 1.0):
    import torch

    class VAE(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = _sparse_input(n_items, hidden)
            self.mu = torch.nn.Linear(hidden, latent)
            self.logvar = torch.nn.Linear(hidden, latent)
            self.dec1 = torch.nn.Linear(latent, hidden)
            self.dec2 = torch.nn.Linear(hidden, n_items)
            for layer in (self.mu, self.logvar, self.dec1, self.dec2):
                torch.nn.init.xavier_normal_(layer.weight)
                torch.nn.init.zeros_(layer.bias)

        def forward(self, batch: SparseRows):
            h = torch.tanh(self.enc(batch, dropout))
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + noise * torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.dec2(torch.tanh(self.dec1(z))), mu, logvar

    return VAE()


@register
class MultVAE(HistoryScored):
    """Variational autoencoder with a multinomial likelihood over items.

    Args:
        hidden: width of the hidden layers.
        latent: dimensions of z.
        dropout: input dropout rate.
        beta_max: final weight of the KL term.
        anneal_steps: optimiser steps over which β rises from 0 to beta_max.
        lr: Adam learning rate.
        epochs: maximum epochs.
        batch_size: users per step; 0 sizes it to the log: max(128, users // 256)
            (:func:`penchant.models.bpr.auto_batch`), 128 up to 32,768 training users (ML-100K,
            ML-1M), 540 on the 20M log's 138k (the paper's code trains with 500).
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        noise: standard deviation of the reparameterisation noise ε while training (1 = the paper).
        seed: seed of initialisation, dropout and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda: the network lives there and each
            batch of users' rows is moved there as it is used.
    """

    name = "multvae"
    summary = "Mult-VAE: variational autoencoder with multinomial likelihood (torch)"
    search_space = {"dropout": Float(0.1, 0.7), "beta_max": Float(0.05, 1.0, log=True), "lr": Float(1e-4, 1e-2, log=True),
                    "noise": Float(0.01, 1.0, log=True)}

    def __init__(self, *, hidden: int = 600, latent: int = 64, dropout: float = 0.5, beta_max: float = 0.5,
                 anneal_steps: int = 2000, lr: float = 1e-3, epochs: int = 300, batch_size: int = 0,
                 patience: int = 10, eval_every: int = 2, noise: float = 0.01, seed: int = DEFAULT_SEED,
                 device: str = "auto") -> None:
        if not 0 <= dropout < 1 or beta_max < 0 or hidden < 1 or latent < 1 or noise < 0 or batch_size < 0:
            raise ConfigError("dropout must be in [0, 1), beta_max ≥ 0, noise ≥ 0, batch_size ≥ 0 (0: sized to the log), "
                              "hidden and latent ≥ 1")
        self.hidden, self.latent, self.dropout, self.beta_max = hidden, latent, dropout, beta_max
        self.anneal_steps, self.lr, self.epochs, self.batch_size = anneal_steps, lr, epochs, batch_size
        self.patience, self.eval_every, self.seed = patience, eval_every, seed
        self.noise, self.device = noise, check_device(device)
        self.net_ = None

    @blas_single_threaded
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        x = train.csr
        active = np.flatnonzero(np.diff(x.indptr) > 0)
        dev = torch_device(self.device)
        self.net_ = _network(x.shape[1], self.hidden, self.latent, self.dropout, self.noise).to(dev)
        opt = synced(torch.optim.Adam(self.net_.parameters(), lr=self.lr, fused=True))  # one pass per tensor: see the module
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        step = 0
        self.epoch_seconds_: list[float] = []  # training only, validation excluded
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            self.net_.train()
            order, batch = shard(rng.permutation(active), self.batch_size or auto_batch(len(active), minimum=MIN_BATCH))
            for s in range(0, len(order), batch):
                rows = sparse_rows(x[order[s:s + batch]], dev)
                logits, mu, logvar = self.net_(rows)
                nll = multinomial_nll(logits, rows).mean()
                kl = 0.5 * (torch.exp(logvar) + mu.pow(2) - 1 - logvar).sum(1).mean()
                beta = min(self.beta_max, self.beta_max * step / max(1, self.anneal_steps))
                opt.zero_grad()
                (nll + beta * kl).backward()
                opt.step()
                step += 1
            self.epoch_seconds_.append(time.perf_counter() - start)
            if validate_net(self, self.net_, stopper, epoch, valid, self.eval_every):
                break
        stopper.restore_best(self)
        self.net_.eval()

    def _restore(self, state: dict) -> None:
        assert self.net_ is not None
        self.net_.load_state_dict(state)

    def selected(self) -> dict[str, int]:
        return {"epochs": self.best_epoch_} if getattr(self, "best_epoch_", None) else {}

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        import torch

        assert self.net_ is not None
        with torch.no_grad():
            logits, _, _ = self.net_(sparse_rows(rows, net_device(self.net_)))
        return logits.cpu().numpy()

    def _state(self) -> dict[str, np.ndarray]:
        assert self.net_ is not None
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self.net_ = _network(self.n_items_, self.hidden, self.latent, self.dropout, self.noise)
        arrays = transposed_inputs(arrays, ("net.enc.weight",), self.n_items_)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})  # copied: the arrays may be read-only maps
        self.net_.eval()
