"""Learning from missing-not-at-random clicks with inverse propensity weighting.

A click means "exposed and relevant", so items shown rarely look unpopular although users may
like them. Both learners here weight observations by the inverse of an estimated exposure
propensity, the item-popularity estimator of the papers: ``θ_i = (n_i / max_j n_j)^η``, clipped
below at ``clip`` to bound the variance.

* Rel-MF (Saito et al., WSDM 2020): a pointwise loss with the unbiased relevance estimate
  ``Y/θ`` in place of the click: ``Σ_{u,i} [ (Y_ui/θ_i) δ⁺(x_ui) + (1 − Y_ui/θ_i) δ⁻(x_ui) ]``
  over all user–item pairs, with the squared losses ``δ⁺ = (1 − σ(x))²``, ``δ⁻ = σ(x)²`` that
  the authors' experiments use (bounded, unlike the log loss under negative weights).
* UBPR (Saito, SIGIR 2020): the pairwise BPR loss weighted by
  ``(Y_ui/θ_i) · (1 − Y_uj/θ_j)`` for a clicked ``i`` and any ``j`` drawn uniformly from all items.
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
from penchant.models.training import EarlyStopping, blas_single_threaded, check_device, seed_torch, torch_device


def item_propensity(item_clicks: np.ndarray, power: float = 0.5, clip: float = 0.1) -> np.ndarray:
    """θ_i = clip((n_i / max n)^power, clip, 1); float64 (n_items,)."""
    top = max(1.0, float(item_clicks.max()))
    return np.clip((item_clicks / top) ** power, clip, 1.0)


class _PropensityMF(FactorModel):
    """Matrix factorisation with item biases trained by a propensity-weighted loss."""

    search_space = {"factors": Int(8, 128, log=True), "power": Float(0.0, 1.0), "clip": Float(0.01, 0.5, log=True),
                    "lr": Float(1e-3, 5e-2, log=True), "reg": Float(1e-6, 1e-2, log=True)}

    def __init__(self, *, factors: int = 32, power: float = 0.5, clip: float = 0.1, lr: float = 0.01,
                 reg: float = 1e-4, epochs: int = 200, batch_size: int = 256, patience: int = 3,
                 eval_every: int = 5, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if factors < 1 or not 0 < clip <= 1 or power < 0 or lr <= 0 or reg < 0:
            raise ConfigError("factors ≥ 1, 0 < clip ≤ 1, power ≥ 0, lr > 0 and reg ≥ 0 are required")
        self.factors, self.power, self.clip, self.lr, self.reg = factors, power, clip, lr, reg
        self.epochs, self.batch_size, self.patience, self.eval_every, self.seed = epochs, batch_size, patience, eval_every, seed
        self.device = check_device(device)

    def _loss(self, u, clicks, theta, rng):
        raise NotImplementedError

    @blas_single_threaded
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        y = train.csr
        n_users, n_items = y.shape
        dev = torch_device(self.device)
        theta = torch.from_numpy(item_propensity(train.item_counts.astype(np.float64), self.power, self.clip).astype(np.float32)).to(dev)
        self._p = torch.nn.Parameter((torch.randn(n_users, self.factors) * 0.1).to(dev))
        self._q = torch.nn.Parameter((torch.randn(n_items, self.factors) * 0.1).to(dev))
        self._b = torch.nn.Parameter(torch.zeros(n_items, device=dev))
        opt = torch.optim.Adam([self._p, self._q, self._b], lr=self.lr)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        for epoch in range(1, self.epochs + 1):
            order = rng.permutation(n_users)
            for s in range(0, n_users, self.batch_size):
                users = order[s:s + self.batch_size]
                u = torch.from_numpy(users.astype(np.int64)).to(dev)
                clicks = torch.from_numpy(y[users].toarray()).to(dev)
                loss = self._loss(u, clicks, theta, rng)
                penalty = self.reg * (self._p[u].pow(2).sum() + self._q.pow(2).sum() * len(users) / n_users)
                opt.zero_grad()
                (loss + penalty).backward()
                opt.step()
            if valid is not None and epoch % self.eval_every == 0:
                self._set_factors(self._p, self._q, self._b)
                if stopper.update(epoch, valid(self), self._snapshot):
                    break
        if not stopper.restore_best(self):
            self._set_factors(self._p, self._q, self._b)
        del self._p, self._q, self._b

    def _logits(self, u):
        return self._p[u] @ self._q.T + self._b


_ARGS = """
    Args:
        factors: latent dimensions.
        power: η of the propensity estimate θ_i = (n_i / max n)^η.
        clip: lower bound on θ_i.
        lr: Adam learning rate.
        reg: L2 weight on user and item factors.
        epochs: maximum epochs.
        batch_size: users per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda: the factors live there and each batch
            of users' click rows is moved there as it is used.
"""


@register
class RelMF(_PropensityMF):
    __doc__ = "Rel-MF: pointwise squared loss on the inverse-propensity-weighted relevance estimate Y/θ.\n" + _ARGS

    name = "relmf"
    summary = "Rel-MF: unbiased pointwise MF for MNAR implicit feedback (inverse propensity weighting)"

    def _loss(self, u, clicks, theta, rng):
        import torch

        p = torch.sigmoid(self._logits(u))
        w = clicks / theta[None, :]
        return (w * (1 - p).pow(2) + (1 - w) * p.pow(2)).sum(1).mean()  # per user: a sum over all items


@register
class UBPR(_PropensityMF):
    __doc__ = "UBPR: BPR weighted by (Y_ui/θ_i)(1 − Y_uj/θ_j), j drawn uniformly from all items.\n" + _ARGS

    name = "ubpr"
    summary = "UBPR: unbiased pairwise BPR for MNAR implicit feedback (inverse propensity weighting)"

    def _loss(self, u, clicks, theta, rng):
        import torch

        rows, pos = torch.nonzero(clicks, as_tuple=True)
        if len(rows) == 0:
            return self._b.sum() * 0
        neg = torch.from_numpy(rng.integers(0, clicks.shape[1], size=len(rows))).to(clicks.device)
        logits = self._logits(u)
        diff = logits[rows, pos] - logits[rows, neg]
        weight = (1 / theta[pos]) * (1 - clicks[rows, neg] / theta[neg])
        return -(weight * torch.nn.functional.logsigmoid(diff)).sum() / len(u)
