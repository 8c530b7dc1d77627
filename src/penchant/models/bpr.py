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
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
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


@register
class BPR(FactorModel):
    """Matrix factorisation trained for pairwise ranking (or NBPO), with early stopping on valid.

    Args:
        factors: latent dimensions.
        sampler: uniform, popularity or nbpo (see the module docs).
        pop_exponent: exponent on item popularity for the popularity sampler.
        lr: Adam learning rate.
        reg: L2 weight on the embeddings of each batch.
        epochs: maximum passes over the training pairs.
        batch_size: pairs per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        noise_factors: latent dimensions of the NBPO flip model.
        seed: seed of initialisation and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda; parameters live there, batches move
            there one at a time, and the same seed gives the same draws on every device.
    """

    name = "bpr"
    summary = "BPR matrix factorisation (torch); samplers uniform, popularity, nbpo"
    search_space = {"factors": Int(16, 256, log=True), "lr": Float(1e-3, 5e-2, log=True), "reg": Float(1e-4, 1e-1, log=True)}

    def __init__(self, *, factors: int = 64, sampler: str = "uniform", pop_exponent: float = 0.75, lr: float = 0.01,
                 reg: float = 0.01, epochs: int = 200, batch_size: int = 4096, patience: int = 3, eval_every: int = 5,
                 noise_factors: int = 8, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        if factors < 1 or epochs < 1 or batch_size < 1 or lr <= 0 or reg < 0:
            raise ConfigError("factors, epochs and batch_size must be ≥ 1, lr positive and reg non-negative")
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
        p = torch.nn.Parameter((torch.randn(n_users, d) * 0.1).to(dev))
        q = torch.nn.Parameter((torch.randn(n_items, d) * 0.1).to(dev))
        b = torch.nn.Parameter(torch.zeros(n_items, device=dev))
        params = [p, q, b]
        noise = None
        if self.sampler == "nbpo":
            noise = (torch.nn.Parameter((torch.randn(n_users, self.noise_factors) * 0.1).to(dev)),
                     torch.nn.Parameter((torch.randn(n_items, self.noise_factors) * 0.1).to(dev)),
                     torch.nn.Parameter(torch.full((n_items,), -2.0, device=dev)))
            params += list(noise)
        else:
            for t in params:  # gradients are written by hand in _bpr_step (twice as fast as autograd here)
                t.grad = torch.zeros_like(t)
        weights = train.item_counts.astype(np.float64) ** self.pop_exponent if self.sampler == "popularity" else None
        sampler = NegativeSampler(x, weights, rng)
        opt = torch.optim.Adam(params, lr=self.lr)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        pairs = x.nonzero()
        self.epochs_run_ = 0
        for epoch in range(1, self.epochs + 1):
            for u, i, j in triple_batches(*pairs, sampler, self.batch_size, rng, dev):
                if self.sampler == "nbpo":
                    self._nbpo_step(opt, p, q, b, noise, u, i, j)
                else:
                    self._bpr_step(opt, p, q, b, u, i, j)
            self.epochs_run_ = epoch
            if valid is not None and epoch % self.eval_every == 0:
                self._set_factors(p, q, b)
                if stopper.update(epoch, valid(self), self._snapshot):
                    break
        if not stopper.restore_best(self):
            self._set_factors(p, q, b)

    def _bpr_step(self, opt, p, q, b, u, i, j) -> None:
        """One Adam step on mean −log σ(x_ui − x_uj) + reg·(‖p_u‖² + ‖q_i‖² + ‖q_j‖²)/B, gradients by hand."""
        import torch

        with torch.no_grad():
            pu, qi, qj = p[u], q[i], q[j]
            x = (pu * (qi - qj)).sum(1) + b[i] - b[j]
            g = (-torch.sigmoid(-x) / len(u)).unsqueeze(1)  # d(mean −log σ(x))/dx
            c = 2 * self.reg / len(u)
            for t in (p, q, b):
                t.grad.zero_()
            p.grad.index_add_(0, u, g * (qi - qj) + c * pu)
            q.grad.index_add_(0, i, g * pu + c * qi)
            q.grad.index_add_(0, j, c * qj - g * pu)
            b.grad.index_add_(0, i, g.squeeze(1))
            b.grad.index_add_(0, j, -g.squeeze(1))
        opt.step()

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
