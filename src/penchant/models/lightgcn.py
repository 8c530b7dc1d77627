"""LightGCN (He et al., SIGIR 2020): embeddings smoothed over the user–item graph, trained by BPR.

With ``Â = D^{-1/2} A D^{-1/2}`` the normalised adjacency of the bipartite graph and ``E⁰`` the
free embeddings of users and items, ``E^{k+1} = Â E^k`` and the final embedding is the mean of
``E⁰ … E^K``. Scores are dot products of final embeddings; the L2 penalty acts on ``E⁰`` of the
batch, as in the paper.

``propagation="full"`` (the default) propagates the whole graph forward and back at every step,
as the paper does: exact, and at 20M interactions (16M training pairs, 32M entries of ``Â``) about
12.5 s of CPU a step on this machine (2·K whole-graph products of ~1.5 s each, the layers' sums
and dense Adam; benchmarks/train_speed.py, 2026-12-07).
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

The sampled step computes only what the batch's loss needs, by hand (no autograd, no dense
pass over the (U + I, d) tables): with ``S`` the batch's distinct nodes, the rows of layer k it
needs are ``T_K = S`` and ``T_k = S ∪ cols(Â_c[T_{k+1}])`` (the part's neighbours of the rows
above), so the products run on the sub-matrices ``C·Â_c[T_{k+1}, T_k]``, forward and (their
transposes) back; the drift ``E⁰ − H̄⁰`` and the gradient live on ``T_0`` only, and Adam is lazy
(:class:`penchant.models.bpr.LazyAdam`): the rows of ``T_0``, the batch's receptive field through
the sampled parts, move with their moments; every other row and its moments stay as they were.
This is a different optimiser trajectory from dense Adam (an untouched row's moments do not decay
that step). On a power-law log the receptive field is most of the graph after two layers at any
useful batch (20M shape, chunks 32, batch 16,384: |T_0| ≈ 160k of 165k rows), so the gain is the
last layer's product (rows S only) and the dense passes of the autograd path, not the first layers.

A step then costs K products with at most 1/C of the edges forward and K back, plus the
refresh's K products every C steps (20M shape, chunks 32, batch 62,500: 1.15 s of CPU a step
against 12.5 s for the full propagation; a whole epoch of 256 steps 323 s of CPU). The fit counts
the entries its products read in ``propagated_entries_`` (for the benchmarks' bound). Per epoch that is (pairs / batch) steps whose cost hardly
depends on the batch, so ``batch_size=0`` sizes batches to the log as BPR does
(:func:`penchant.models.bpr.auto_batch`: 4,096 up to 1M pairs, then 1/256 of the pairs, 62,500 at
16M). Simplifications against VR-GCN: its neighbour sampling draws a fixed number of
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
from penchant.models.bpr import LazyAdam, auto_batch
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


def _torch_csr(m: sp.csr_matrix, device=None):
    """torch CSR of a scipy CSR (index arrays shared on the CPU, no invariant check: built here)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # "CSR support is in beta": the product and its use here are tested
        warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64, copy=False)),
                                       torch.from_numpy(m.indices.astype(np.int64, copy=False)),
                                       torch.from_numpy(m.data), m.shape, check_invariants=False).to(device)


def receptive_field(nodes: np.ndarray, parts: list, n: int) -> tuple[list, list]:
    """The rows each layer of a sampled step needs, last layer first, and the sub-matrices between them.

    ``nodes`` sorted distinct int64 (s,): the batch's nodes ``S`` (items offset by the users);
    ``parts`` K scipy CSR (n, n): the parts ``C·Â_c`` of layers 0 … K−1, in order. Returns
    (fields, mats): ``fields[k]`` sorted int64 (|T_k|,) with ``T_K = S`` and ``T_k = S ∪`` the
    columns of ``parts[k]``'s rows ``T_{k+1}``; ``mats[k]`` scipy CSR (|T_{k+1}|, |T_k|), those rows
    with columns renumbered to positions in ``T_k``, so ``D^{k+1}[T_{k+1}] = mats[k] @ D^k[T_k]``
    is the part's product on the rows that layer needs. Vectorised: a (n,) mark per layer.
    """
    fields, mats = [nodes], [None] * len(parts)
    for k in reversed(range(len(parts))):
        sub = parts[k][fields[0]]
        mark = np.zeros(n, dtype=bool)
        mark[sub.indices] = True
        mark[nodes] = True
        local = np.cumsum(mark, dtype=np.int64) - 1  # a marked node's position in T_k
        mats[k] = sp.csr_matrix((sub.data, local[sub.indices], sub.indptr), shape=(len(fields[0]), int(local[-1]) + 1))
        fields.insert(0, np.flatnonzero(mark))
    return fields, mats


def sampled_gradient(e0, h0, mean, parts: list, u, i, j, reg: float) -> tuple:
    """One sampled step's BPR loss gradient on the rows it reaches, by hand (module docs).

    ``e0`` (n, d) the free embeddings ``E⁰`` (users, then items); ``h0`` (n, d) the cached ``H̄⁰``
    and ``mean`` (n, d) the cached exact final embeddings ``F̄`` (both from the last refresh);
    ``parts`` K scipy CSR (n, n), layer k's part ``C·Â_c``; ``u``, ``i``, ``j`` int64 (B,) node
    ids of users, positives and negatives (items already offset by the users). The batch's final
    rows are ``F̄[S] + Σ_k D^k[S] / (K + 1)`` with ``D^0 = E⁰ − H̄⁰`` and
    ``D^{k+1} = C·Â_c D^k``, on the receptive field only (:func:`receptive_field`). Loss: mean
    −log σ(x_ui − x_uj) + reg·(‖E⁰_u‖² + ‖E⁰_i‖² + ‖E⁰_j‖²)/(2B).

    Returns (rows int64 (r,) = ``T_0`` on e0's device, their values (r, d) gathered from ``e0``
    (a copy the optimiser may write into), their gradients (r, d), the product entries read
    forward and back (an int)). Rows outside ``T_0`` have no gradient.
    """
    import torch

    n, dev, layers = e0.shape[0], e0.device, len(parts)
    batch = torch.cat([u, i, j])
    nodes, inv, count = torch.unique(batch, return_inverse=True, return_counts=True)
    fields, mats = receptive_field(nodes.cpu().numpy(), parts, n)
    fwd = [_torch_csr(m, dev) for m in mats]
    bwd = [_torch_csr(m.T.tocsr(), dev) for m in mats]
    at = [torch.from_numpy(np.searchsorted(f, fields[-1])).to(dev) for f in fields]  # S's positions in T_k
    rows = torch.from_numpy(fields[0]).to(dev)
    values = e0.index_select(0, rows)
    with torch.no_grad():
        drift = values - h0.index_select(0, rows)  # D^0 on T_0, (|T_0|, d)
        out = drift.index_select(0, at[0])
        for k in range(layers):
            drift = fwd[k] @ drift
            out += drift.index_select(0, at[k + 1])
        final = mean.index_select(0, nodes).addcdiv_(out, torch.tensor(layers + 1.0, device=dev))  # (s, d)
        b = len(u)
        eu, ei, ej = final.index_select(0, inv).split(b)
        diff = ei - ej
        g = torch.sigmoid(-torch.linalg.vecdot(eu, diff)).mul_(-1.0 / b).unsqueeze(1)  # dℓ/dx, (B, 1)
        eu.mul_(g)
        grad_final = torch.zeros_like(final).index_add_(0, inv, torch.cat([diff.mul_(g), eu, eu.neg()]))
        direct = grad_final.div_(layers + 1)  # dℓ/dD^k[S], every k
        grad = direct
        for k in reversed(range(layers)):
            grad = (bwd[k] @ grad).index_add_(0, at[k], direct)
        grad.index_add_(0, at[0], values.index_select(0, at[0]) * (reg / b * count.to(values.dtype)).unsqueeze(1))
    read = 2 * sum(m.nnz for m in mats)
    return rows, values, grad, read


PROPAGATIONS = ("full", "sampled")
#: ``batch_size=0`` gives at least this many steps an epoch (early stopping counts epochs: on a small log
#: 4,096-pair steps left 3 an epoch, and the default patience stopped a fit that had not learned yet)
MIN_STEPS = 16


@register
class LightGCN(FactorModel):
    """Light graph convolution for collaborative filtering.

    Args:
        factors: embedding size.
        layers: propagation steps K.
        lr: Adam learning rate (sampled: lazy Adam, a step moves the rows it reaches only).
        reg: L2 weight on the batch's layer-0 embeddings.
        epochs: maximum epochs.
        batch_size: (user, positive, negative) triples per step; 0 sizes it to the log
            (:func:`penchant.models.bpr.auto_batch`: 4,096 up to 1M pairs, then 1/256 of the pairs;
            at least 16 steps an epoch, so a log under 65,536 pairs gets pairs / 16 a step).
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
                 batch_size: int = 0, propagation: str = "full", chunks: int = 16, patience: int = 3,
                 eval_every: int = 5, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if factors < 1 or layers < 0 or lr <= 0 or reg < 0 or batch_size < 0:
            raise ConfigError("factors ≥ 1, layers ≥ 0, lr > 0, reg ≥ 0 and batch_size ≥ 0 (0: sized to the log) are required")
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
        e0 = torch.nn.init.normal_(torch.empty(n_users + n_items, self.factors), std=0.1).to(dev)
        sampled = self.propagation == "sampled" and self.layers > 0
        if sampled:  # lazy Adam on the rows a step reaches (module docs); the parts' own generator: the same triples as a full fit
            lazy = LazyAdam([e0], lr=self.lr)
            parts = [sp.csr_matrix((m.values().cpu().numpy(), m.col_indices().cpu().numpy(), m.crow_indices().cpu().numpy()),
                                   shape=m.shape) for m in edge_parts(x, self.chunks, np.random.default_rng([self.seed, 1]))]
        else:
            e0 = torch.nn.Parameter(e0)
            opt = synced(torch.optim.Adam([e0], lr=self.lr))
        sampler = NegativeSampler(x, None, rng)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        pairs = x.nonzero()
        batch = self.batch_ = self.batch_size or auto_batch(len(pairs[0]), min_steps=MIN_STEPS)
        nnz = 2 * x.nnz  # entries of Â

        def propagate():
            out, e = e0, e0
            for _ in range(self.layers):
                e = step(e)
                out = out + e
            return out / (self.layers + 1)

        cache: list = []  # [H̄⁰, F̄]: the last exact propagation's layer 0 and final embeddings, (n, d) each
        steps = 0
        #: entries of Â (or of its parts) the training products read, forward and back (benchmarks' bound)
        self.propagated_entries_ = 0

        def sampled_step(u, i, j) -> int:
            """One lazy Adam step of the control-variate estimator on the batch's receptive field;
            refreshes the cache first every ``chunks`` steps. Returns the entries its products read."""
            read = 0
            if steps % self.chunks == 0 or not cache:
                with torch.no_grad():
                    e, total = e0, e0.clone()
                    for _ in range(self.layers):
                        e = step(e)
                        total += e
                    cache[:] = [e0.clone(), total.div_(self.layers + 1)]
                read = self.layers * nnz
            layer_parts = [parts[(steps * self.layers + k) % self.chunks] for k in range(self.layers)]
            rows, values, grad, entries = sampled_gradient(e0, *cache, layer_parts, u, i, j, self.reg)
            lazy.tick()
            lazy.update(0, rows, values, grad)
            return read + entries

        self.epoch_seconds_: list[float] = []
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            for u, i, j in triple_batches(*pairs, sampler, batch, rng, dev):
                i, j = i + n_users, j + n_users
                if sampled:
                    self.propagated_entries_ += sampled_step(u, i, j)
                    steps += 1
                    continue
                steps += 1
                eu, ei, ej = propagate()[torch.cat([u, i, j])].split(len(u))  # one gather: one dense gradient buffer
                diff = (eu * (ei - ej)).sum(1)
                penalty = self.reg * (e0[u].pow(2).sum() + e0[i].pow(2).sum() + e0[j].pow(2).sum()) / (2 * len(u))
                loss = -torch.nn.functional.logsigmoid(diff).mean() + penalty
                opt.zero_grad()
                loss.backward()
                opt.step()
                self.propagated_entries_ += 2 * self.layers * nnz
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
