"""BPR-MF (Rendle et al., UAI 2009) in PyTorch, with three negative samplers.

* ``uniform``: a negative is any item the user has not interacted with, equally likely;
* ``popularity``: unseen items drawn with probability ∝ popularity^``pop_exponent``;
* ``nbpo``: the noisy-label-robust objective of Yu & Qin, "Sampler Design for Implicit Feedback
  Data by Noisy-label Robust Learning" (SIGIR 2020). Observed labels are treated as noisy
  versions of true preferences: an unvoted item may be a positive the user never saw. With
  ``s = σ(x_ui)`` the model's probability of a true positive and ``ε_ui`` a learned probability
  that a true positive stays unvoted, the likelihood of the observations is
  ``P(voted) = s(1−ε)`` and ``P(unvoted) = 1 − s(1−ε)``; both the preference model and the
  flip model (a small MF, ``ε = σ(a_u·b_i + c_i)``) are fitted by maximising it, and items are
  ranked by the preference model alone.

Scores are ``x_ui = p_u · q_i + b_i``.

Training (``uniform`` and ``popularity``) steps by lazy Adam (:class:`LazyAdam`): the gradients of a
batch are written by hand onto the distinct users and items it touches, and Adam moves those rows
only, with their moments; an untouched row, its moments included, stays as it was (as in torch's
``SparseAdam`` and TensorFlow's ``LazyAdam``: the bias correction follows the global step). A dense
Adam step over 138k users and 27k items costs the whole tables whatever the batch; this one costs
the batch. ``batch_size=0`` sizes batches to the log (:func:`auto_batch`): 4,096 pairs up to 1M
training pairs (ML-100K: 20 steps an epoch), then 1/256 of the pairs (62,500 at 16M). ``nbpo``
keeps autograd and dense Adam (its flip model has more terms; it is not the large-log path).

Which code runs the lazy-Adam steps (``uniform`` and ``popularity``; ``path_`` says after a fit):

* ``compiled`` — on the CPU in a local fit (``device=cpu``, or ``auto`` without CUDA): the whole
  epoch in one numba call (:mod:`penchant.models.bpr_kernel`: one pass over a step's pairs summing
  their gradients onto the touched rows, one pass over those rows for Adam, on a row layout that
  keeps each row's value, gradient and moments side by side). Same mathematics, same shuffle and
  negatives from the same seed; the factors equal the torch steps' to float rounding (3e-6 after 7 steps on a small log).
  It runs on penchant's thread count (:mod:`penchant.threads`): with more than one, each step's
  rows are split by owner (:class:`~penchant.models.bpr_kernel.LazyAdamState`), no hogwild.
  A 16M-pair epoch of the 20M shape on one thread: 1.07–1.23× implicit's BPR in CPU seconds
  (docs/benchmarks.md), where the torch step was 4.9×; the first fit in a fresh environment
  compiles the kernel (3.2 CPU s; cached for later processes).
* ``torch`` — on CUDA, and in a data-parallel fit (Ray; :func:`merge_rows` inside
  :meth:`LazyAdam.update` averages the ranks' rows): :func:`bpr_row_gradients` + :class:`LazyAdam`.
"""

from __future__ import annotations

import time

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.distributed import current, merge_rows, synced
from penchant.models.factors import FactorModel
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.training import (
    EarlyStopping,
    NegativeSampler,
    blas_single_threaded,
    check_device,
    seed_torch,
    torch_device,
    triple_batches,
)

SAMPLERS = ("uniform", "popularity", "nbpo")
#: ``batch_size=0``: pairs per step are max(MIN_BATCH, pairs // STEPS_PER_EPOCH)
MIN_BATCH, STEPS_PER_EPOCH = 4096, 256


def auto_batch(n_pairs: int, minimum: int = MIN_BATCH, min_steps: int = 1) -> int:
    """Pairs per step for ``batch_size=0``: ``minimum`` (4,096), or 1/256 of an epoch's pairs on larger logs, so a
    step's fixed costs (a few dozen torch calls, the unique rows' sort) stay small beside its work
    (one epoch of 1.25M pairs over 138k users × 27k items: 4,096 → 65,536 pairs a step, 29 → 26 s,
    on a loaded machine; benchmarks/train_speed.py). Mult-VAE and RecVAE size their users per step
    by it with ``minimum`` 128 (their Adam step over two (items × hidden) tables is the fixed cost).

    ``min_steps``: a log too small for that many steps of ``minimum`` gets ⌈n_pairs / min_steps⌉ a step
    instead (LightGCN passes 16: 12,004 pairs would otherwise be 3 steps an epoch, and early stopping,
    which counts epochs, ended its fit before it had learned anything)."""
    batch = max(minimum, n_pairs // STEPS_PER_EPOCH)
    if min_steps > 1 and n_pairs < batch * min_steps:
        batch = max(1, -(-n_pairs // min_steps))
    return batch


class LazyAdam:
    """Adam on the rows a step touches: for each table (n, w), moments (n, 2, w) kept beside it.

    ``update(k, rows, values, grad)``: ``rows`` int64 (r,) distinct rows of table ``k``, ``values``
    float (r, w) their current values (already gathered by the caller), ``grad`` (r, w) their
    gradients. Those rows' first and second moments decay and take the gradient, and the rows move
    by −lr·m̂/(√v̂ + eps) with the bias correction of the global step ``t`` (call :meth:`tick` once a
    step); every other row and its moments stay as they were.
    """

    def __init__(self, tables: list, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        import torch

        self.tables, self.lr, self.betas, self.eps = tables, lr, betas, eps
        self.moments = [torch.zeros((t.shape[0], 2, *t.shape[1:]), dtype=t.dtype, device=t.device) for t in tables]
        self.t = 0

    def tick(self) -> None:
        self.t += 1

    def update(self, k: int, rows, values, grad) -> None:
        rows, values, grad = merge_rows(self.tables[k], rows, values, grad)  # data-parallel: the ranks' mean
        b1, b2 = self.betas
        state = self.moments[k].index_select(0, rows)  # (r, 2, w)
        m, v = state[:, 0], state[:, 1]
        m.lerp_(grad, 1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.moments[k].index_copy_(0, rows, state)
        denom = v.div(1 - b2 ** self.t).sqrt_().add_(self.eps)
        self.tables[k].index_copy_(0, rows, values.addcdiv_(m, denom, value=-self.lr / (1 - b1 ** self.t)))


def bpr_row_gradients(p, q, u, i, j, reg: float) -> tuple:
    """Gradients of mean −log σ(x_ui − x_uj) + reg·(‖p_u‖² + ‖q_i‖² + ‖q_j‖²)/B over one batch, on
    the rows the batch touches.

    ``p`` (n_users, d) user factors; ``q`` (n_items, d + 1) item factors with the item bias in the
    last column (not regularised); ``u``, ``i``, ``j`` int64 (B,) users, positives, negatives.
    Returns (users (r_u,) distinct, their values (r_u, d), their gradients (r_u, d), items (r_i,)
    distinct, values (r_i, d + 1), gradients (r_i, d + 1)). A row met k times in the batch gets
    the sum of its k gradients; the values are gathered copies the optimiser may write into.
    """
    import torch
    import torch.nn.functional as F

    n, d = len(u), p.shape[1]
    pu = F.embedding(u, p)
    diff = F.embedding(i, q).sub_(F.embedding(j, q))  # (B, d + 1): q_i − q_j, b_i − b_j last
    x = torch.linalg.vecdot(pu, diff[:, :d]) + diff[:, d]
    g = torch.sigmoid(-x).mul_(-1.0 / n).unsqueeze(1)  # d(mean −log σ(x))/dx, (B, 1)
    c = 2 * reg / n
    users, inv_u, count_u = torch.unique(u, return_inverse=True, return_counts=True)
    pr = p.index_select(0, users)
    gp = (pr * (c * count_u.to(p.dtype)).unsqueeze(1)).index_add_(0, inv_u, diff[:, :d].mul_(g))
    items, inv, count = torch.unique(torch.cat([i, j]), return_inverse=True, return_counts=True)
    qr = q.index_select(0, items)
    gq = qr * (c * count.to(q.dtype)).unsqueeze(1)
    gq[:, d] = 0
    gx = torch.cat([pu.mul_(g), g], 1)  # (B, d + 1): dℓ/dq_i (and b_i); dℓ/dq_j is its negative
    gq.index_add_(0, inv[:n], gx).index_add_(0, inv[n:], gx, alpha=-1)
    return users, pr, gp, items, qr, gq


@register
class BPR(FactorModel):
    """Matrix factorisation trained for pairwise ranking (or NBPO), with early stopping on valid.

    Args:
        factors: latent dimensions.
        sampler: uniform, popularity or nbpo (see the module docs).
        pop_exponent: exponent on item popularity for the popularity sampler.
        lr: Adam learning rate (lazy Adam: a step moves the rows of its batch only).
        reg: L2 weight on the embeddings of each batch.
        epochs: maximum passes over the training pairs.
        batch_size: pairs per step; 0 sizes it to the log (:func:`auto_batch`: 4,096 up to 1M pairs,
            then 1/256 of the pairs).
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        noise_factors: latent dimensions of the NBPO flip model.
        seed: seed of initialisation and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda; parameters live there, batches move
            there one at a time, and the same seed gives the same draws on every device (uniform and
            popularity on the CPU outside Ray: compiled steps, numba; else torch's; the fitted line
            says which ran).
    """

    name = "bpr"
    summary = "BPR matrix factorisation (torch); samplers uniform, popularity, nbpo"
    search_space = {"factors": Int(16, 256, log=True), "lr": Float(1e-3, 5e-2, log=True), "reg": Float(1e-4, 1e-1, log=True)}

    def __init__(self, *, factors: int = 64, sampler: str = "uniform", pop_exponent: float = 0.75, lr: float = 0.01,
                 reg: float = 0.01, epochs: int = 200, batch_size: int = 0, patience: int = 3, eval_every: int = 5,
                 noise_factors: int = 8, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        if factors < 1 or epochs < 1 or batch_size < 0 or lr <= 0 or reg < 0:
            raise ConfigError("factors and epochs must be ≥ 1, batch_size ≥ 0 (0: sized to the log), lr positive and reg non-negative")
        self.factors, self.sampler, self.pop_exponent, self.lr, self.reg = factors, sampler, pop_exponent, lr, reg
        self.epochs, self.batch_size, self.patience, self.eval_every = epochs, batch_size, patience, eval_every
        self.noise_factors, self.seed, self.device = noise_factors, seed, check_device(device)

    @blas_single_threaded
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        dev = torch_device(self.device)
        rng = np.random.default_rng(self.seed)
        x = train.csr
        n_users, n_items, d = x.shape[0], x.shape[1], self.factors
        # drawn on the CPU, then moved: one seed, the same initial factors on every device
        p = (torch.randn(n_users, d) * 0.1).to(dev)
        q = (torch.randn(n_items, d) * 0.1).to(dev)
        weights = train.item_counts.astype(np.float64) ** self.pop_exponent if self.sampler == "popularity" else None
        # the compiled epoch (models/bpr_kernel.py) on the CPU in a local fit; torch's step on CUDA
        # and in a data-parallel fit (whose LazyAdam.update averages the ranks' rows)
        self.path_ = "compiled" if self.sampler != "nbpo" and dev.type == "cpu" and current() is None else "torch"
        sampler = NegativeSampler(x, weights, rng)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        pairs = x.nonzero()
        batch = self.batch_ = self.batch_size or auto_batch(len(pairs[0]))
        if self.sampler == "nbpo":
            p, q, b = (torch.nn.Parameter(t) for t in (p, q, torch.zeros(n_items, device=dev)))
            noise = (torch.nn.Parameter((torch.randn(n_users, self.noise_factors) * 0.1).to(dev)),
                     torch.nn.Parameter((torch.randn(n_items, self.noise_factors) * 0.1).to(dev)),
                     torch.nn.Parameter(torch.full((n_items,), -2.0, device=dev)))
            opt = synced(torch.optim.Adam([p, q, b, *noise], lr=self.lr))
            factors = lambda: (p, q, b)
        elif self.path_ == "compiled":  # the same step as below, in the kernel's layout (its own copy)
            from penchant.models.bpr_kernel import LazyAdamState
            from penchant.threads import threads

            state = LazyAdamState(p.numpy(), torch.cat([q, torch.zeros(n_items, 1)], 1).numpy(), batch, self.lr,
                                  reg=self.reg, threads=threads())
            vu, vq = state.values()
            self.threads_ = state.threads
            factors = lambda: (vu, vq[:, :d], vq[:, d])
        else:  # the item bias is q's last column: one gather and one update per item row
            q = torch.cat([q, torch.zeros(n_items, 1, device=dev)], 1)
            lazy = LazyAdam([p, q], lr=self.lr)
            factors = lambda: (p, q[:, :d], q[:, d])
        self.epochs_run_ = 0
        self.epoch_seconds_: list[float] = []
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            if self.path_ == "compiled":  # triple_batches' shuffle and draws, every step in one call
                order = rng.permutation(len(pairs[0]))
                users = pairs[0][order]
                state.epoch(users, pairs[1][order], sampler.sample(users))
            else:
                for u, i, j in triple_batches(*pairs, sampler, batch, rng, dev):
                    if self.sampler == "nbpo":
                        self._nbpo_step(opt, p, q, b, noise, u, i, j)
                    else:
                        self._bpr_step(lazy, p, q, u, i, j)
            self.epoch_seconds_.append(time.perf_counter() - start)
            self.epochs_run_ = epoch
            if valid is not None and epoch % self.eval_every == 0:
                self._set_factors(*factors())
                if stopper.update(epoch, valid(self), self._snapshot):
                    break
        if not stopper.restore_best(self):
            self._set_factors(*factors())

    def fit_note(self) -> str:
        """Which code ran the steps (``path_``) and the pairs a step, for the fitted line."""
        if not hasattr(self, "path_"):  # loaded from an artefact: no fit here
            return ""
        if self.sampler == "nbpo":
            how = "torch steps (autograd, dense Adam)"
        elif self.path_ == "compiled":
            how = f"compiled steps (numba, lazy Adam, {self.threads_} thread{'s' * (self.threads_ > 1)})"
        else:
            how = "torch steps (lazy Adam)"
        return f"{how}, {self.batch_:,} pairs a step" + (" (batch_size=0: sized to the log)" if not self.batch_size else "")

    def _bpr_step(self, opt: LazyAdam, p, q, u, i, j) -> None:
        """One lazy Adam step on mean −log σ(x_ui − x_uj) + reg·(‖p_u‖² + ‖q_i‖² + ‖q_j‖²)/B
        (gradients by hand, :func:`bpr_row_gradients`; twice as fast as autograd here)."""
        import torch

        with torch.no_grad():
            users, pr, gp, items, qr, gq = bpr_row_gradients(p, q, u, i, j, self.reg)
            opt.tick()
            opt.update(0, users, pr, gp)
            opt.update(1, items, qr, gq)

    def _nbpo_step(self, opt, p, q, b, noise, u, i, j) -> None:
        """One Adam step on the NBPO likelihood (autograd)."""
        import torch

        na, nb, nc = noise
        pu, qi, qj = p[u], q[i], q[j]
        xi = (pu * qi).sum(1) + b[i]
        xj = (pu * qj).sum(1) + b[j]
        eps_i = torch.sigmoid((na[u] * nb[i]).sum(1) + nc[i])
        eps_j = torch.sigmoid((na[u] * nb[j]).sum(1) + nc[j])
        voted = torch.sigmoid(xi) * (1 - eps_i)
        unvoted = 1 - torch.sigmoid(xj) * (1 - eps_j)
        loss = -(torch.log(voted + 1e-8) + torch.log(unvoted + 1e-8)).mean()
        penalty = self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()
                              + na[u].pow(2).sum() + nb[i].pow(2).sum() + nb[j].pow(2).sum()) / len(u)
        opt.zero_grad()
        (loss + penalty).backward()
        opt.step()
