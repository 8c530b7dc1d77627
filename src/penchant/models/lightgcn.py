"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the user–item graph, trained by BPR.

With ``Â = D^{-1/2} A D^{-1/2}`` the normalised adjacency of the bipartite graph and ``E⁰`` the
free embeddings of users and items, ``E^{k+1} = Â E^k`` and the final embedding is the mean of
``E⁰ … E^K``. Scores are dot products of final embeddings; the L2 penalty acts on ``E⁰`` of the
batch, as in the paper.

``propagation="full"`` (the default) propagates the whole graph forward and back at every step,
as the paper does: exact, and at 20M interactions (27M edges) about 2 s a step on this machine.
``propagation="sampled"`` is **edge-sampled propagation with control variates** for large logs:

* the undirected edges are split once per fit, at random, into ``chunks`` disjoint parts ``Â_c``
  (both directions of an edge in the same part, so each part stays symmetric); ``C·Â_c`` is an
  unbiased estimate of ``Â`` (each edge kept with probability 1/C and scaled by C, GraphSAINT's
  edge-sampler normalisation, Zeng et al., ICLR 2020);
* a step's layer ``k`` uses part ``(step·K + k) mod C`` in the control-variate estimator of Chen,
  Zhu & Song ("Stochastic Training of Graph Convolutional Networks with Variance Reduction", ICML
  2018): ``H^{k+1} = C·Â_c (H^k − H̄^k) + H̄^{k+1}``, with ``H̄^0 … H̄^K`` the layers of one
  exact propagation of a recent ``E⁰`` (no gradient), redone every ``chunks`` steps. Right after
  a refresh the forward pass is exact; between refreshes only the drift of ``E⁰`` is sampled.
  The gradient flows through the sampled parts only (a 1/C-sparse, unbiased-per-layer estimate of
  the exact one).

A step then costs K products with 1/C of the edges instead of 2K with all of them, plus the
refresh's K products every C steps and the dense passes over the (U + I, d) tables (the layers'
sums, Adam). Simplifications against VR-GCN: its neighbour sampling draws a fixed number of
neighbours per node, here a node keeps the edges that fell in the part (its sampled degree varies,
a low-degree node may have none in a part); the parts are drawn once per fit, not per step; two
layers of one step use different parts, so a path that goes back along the edge it came by is
never sampled.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.distributed import synced
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


def normalized_adjacency(x: sp.csr_matrix):
    """torch sparse (COO) ``D^{-1/2} A D^{-1/2}`` of the bipartite graph, shape (U+I, U+I); symmetric."""
    import torch

    n_users, n_items = x.shape
    a = sp.bmat([[None, x], [x.T, None]], format="coo")
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    values = inv[a.row] * inv[a.col]
    idx = torch.from_numpy(np.vstack([a.row, a.col]).astype(np.int64))
    coo = torch.sparse_coo_tensor(idx, torch.from_numpy(values.astype(np.float32)), (n_users + n_items,) * 2,
                                  check_invariants=True)
    return coo.coalesce()


def symmetric_propagator(adj):
    """``e ↦ Â e`` for a symmetric sparse ``Â``, differentiable in ``e``, through torch's CSR product.

    The gradient of ``Â e`` is ``Âᵀ g = Â g``, so the backward pass is one more CSR product; torch's
    own backward of a CSR product transposes the matrix on every call (at 20M interactions, 27M
    non-zeros and 64 columns: COO 3.7 s forward + 4.9 s backward, CSR 0.9 s + 8.4 s, this 0.9 s +
    0.9 s per three-layer propagation on this 2-core machine).
    """
    import warnings

    import torch

    with warnings.catch_warnings():  # "CSR support is in beta": the product and its use here are tested
        warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
        csr = adj.to_sparse_csr()

    class Propagate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, e):
            return csr @ e

        @staticmethod
        def backward(ctx, grad):
            return csr @ grad

    return Propagate.apply


def edge_parts(x: sp.csr_matrix, chunks: int, rng: np.random.Generator) -> list:
    """``chunks`` symmetric torch CSR matrices ``C·Â_c`` (U+I, U+I) whose sum over c is ``C·Â``: every
    undirected user–item edge of ``x`` falls in one part, drawn uniformly at random, both of its
    directions there, with the weight ``C/√(deg_u·deg_i)``."""
    import warnings

    import torch

    n_users, n_items = x.shape
    n = n_users + n_items
    coo = x.tocoo()
    deg = np.concatenate([np.diff(x.indptr), np.bincount(x.indices, minlength=n_items)]).astype(np.float64)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0)
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64) + n_users
    weight = (chunks * inv[users] * inv[items]).astype(np.float32)
    part = rng.integers(0, chunks, len(users))
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(chunks + 1))
    out = []
    for c in range(chunks):
        sel = order[bounds[c]:bounds[c + 1]]
        rows, cols, w = np.concatenate([users[sel], items[sel]]), np.concatenate([items[sel], users[sel]]), np.tile(weight[sel], 2)
        m = sp.csr_matrix((w, (rows, cols)), shape=(n, n))
        with warnings.catch_warnings():  # "CSR support is in beta": the product and its use here are tested
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            out.append(torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                               torch.from_numpy(m.indices.astype(np.int64)),
                                               torch.from_numpy(m.data), (n, n), check_invariants=True))
    return out


PROPAGATIONS = ("full", "sampled")


@register
class LightGCN(FactorModel):
    """Light graph convolution for collaborative filtering.

    Args:
        factors: embedding size.
        layers: propagation steps K.
        lr: Adam learning rate.
        reg: L2 weight on the batch's layer-0 embeddings.
        epochs: maximum epochs.
        batch_size: (user, positive, negative) triples per step.
        propagation: full (every step propagates the whole graph, the paper's) or sampled (edge-sampled
            propagation with control variates, for large logs; see the module docs).
        chunks: sampled only: the parts the edges are split into (a step's layer uses one, 1/chunks
            of the edges) and the steps between exact refreshes of the cached layers.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda: the graph and embeddings live there.
    """

    name = "lightgcn"
    summary = "LightGCN graph convolution trained with BPR (torch)"
    search_space = {"layers": Int(1, 4), "lr": Float(1e-3, 2e-2, log=True), "reg": Float(1e-6, 1e-2, log=True)}

    def __init__(self, *, factors: int = 64, layers: int = 3, lr: float = 0.005, reg: float = 1e-4, epochs: int = 300,
                 batch_size: int = 4096, propagation: str = "full", chunks: int = 16, patience: int = 3,
                 eval_every: int = 5, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if factors < 1 or layers < 0 or lr <= 0 or reg < 0:
            raise ConfigError("factors ≥ 1, layers ≥ 0, lr > 0 and reg ≥ 0 are required")
        if propagation not in PROPAGATIONS or chunks < 1:
            raise ConfigError(f"propagation must be one of {', '.join(PROPAGATIONS)} (not {propagation!r}) and chunks ≥ 1")
        self.propagation, self.chunks = propagation, chunks
        self.factors, self.layers, self.lr, self.reg = factors, layers, lr, reg
        self.epochs, self.batch_size, self.patience, self.eval_every, self.seed = epochs, batch_size, patience, eval_every, seed
        self.device = check_device(device)

    @blas_single_threaded
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        dev = torch_device(self.device)
        rng = np.random.default_rng(self.seed)
        x = train.csr
        n_users, n_items = x.shape
        step = symmetric_propagator(normalized_adjacency(x).to(dev))
        e0 = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(n_users + n_items, self.factors), std=0.1).to(dev))
        opt = synced(torch.optim.Adam([e0], lr=self.lr))
        sampler = NegativeSampler(x, None, rng)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        pairs = x.nonzero()

        def propagate():
            out, e = e0, e0
            for _ in range(self.layers):
                e = step(e)
                out = out + e
            return out / (self.layers + 1)

        sampled = self.propagation == "sampled" and self.layers > 0
        if sampled:  # the parts' own generator: the same triples as a full fit under one seed
            parts = [symmetric_propagator(m.to(dev)) for m in edge_parts(x, self.chunks, np.random.default_rng([self.seed, 1]))]
        cache: list = []
        steps = 0

        def propagate_sampled():
            """The rows of the final embeddings, by the control-variate estimator (module docs): the
            cached exact mean ``F̄`` plus the mean of the sampled drifts ``D^{k+1} = C·Â_c D^k``,
            ``D^0 = E⁰ − H̄^0`` (the same sum as ``H^k = D^k + H̄^k``, with no dense pass per layer
            beyond the product: only the batch's rows are summed). Returns ``rows(idx)`` (len(idx), d).
            The cache is redone every ``chunks`` steps."""
            if steps % self.chunks == 0 or not cache:
                with torch.no_grad():
                    layers = [e0.detach().clone()]
                    for _ in range(self.layers):
                        layers.append(step(layers[-1]))
                    cache[:] = [layers[0], torch.stack(layers).mean(0)]
            drifts = [e0 - cache[0]]
            for k in range(self.layers):
                drifts.append(parts[(steps * self.layers + k) % self.chunks](drifts[-1]))
            return lambda idx: cache[1][idx] + sum(dk[idx] for dk in drifts) / (self.layers + 1)

        self.epoch_seconds_: list[float] = []
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            for u, i, j in triple_batches(*pairs, sampler, self.batch_size, rng, dev):
                i, j = i + n_users, j + n_users
                rows = propagate_sampled() if sampled else propagate().__getitem__
                steps += 1
                eu, ei, ej = rows(torch.cat([u, i, j])).split(len(u))  # one gather: one dense gradient buffer
                diff = (eu * (ei - ej)).sum(1)
                penalty = self.reg * (e0[u].pow(2).sum() + e0[i].pow(2).sum() + e0[j].pow(2).sum()) / (2 * len(u))
                loss = -torch.nn.functional.logsigmoid(diff).mean() + penalty
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.epoch_seconds_.append(time.perf_counter() - start)
            if valid is not None and epoch % self.eval_every == 0:
                self._export(propagate, n_users)
                if stopper.update(epoch, valid(self), self._snapshot):
                    break
        if not stopper.restore_best(self):
            self._export(propagate, n_users)

    def _export(self, propagate, n_users: int) -> None:
        import torch

        with torch.no_grad():
            e = propagate().cpu().numpy()
        self._set_factors(e[:n_users], e[n_users:])
