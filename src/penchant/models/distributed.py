"""Data-parallel training: the few hooks a torch learner asks for, whoever started the processes.

A learner trains data-parallel when it runs inside :func:`data_parallel` (one process per rank,
``torch.distributed`` initialised by the caller: :mod:`penchant.backends.ray_train` does it through
Ray Train). Outside it every hook hands back what it was given, so a local fit is untouched.
Nothing here imports Ray.

The mechanism, the same for every learner:

* **one order, sharded** (:func:`shard`): every rank draws the same permutation of the epoch's
  examples (same seed), pads it by wrapping to a multiple of the world size (as torch's
  ``DistributedSampler``) and keeps every ``world``-th example from its rank on, with
  ``ceil(batch_size / world)`` examples a step. Every rank takes the same number of steps (no rank
  waits forever in a collective), and one step of all ranks together covers one global batch of
  about ``batch_size`` examples: the same steps an epoch as a local fit, on 1/world of the work.
* **gradients averaged** (:func:`synced` for a torch optimiser: one flat all-reduce before each
  step; :func:`merge_rows` for learners that write row gradients by hand, e.g. BPR's lazy Adam):
  the mean of the ranks' batch means is the global batch's mean, so every rank takes the same step
  and the parameters stay equal on every rank.
* **validation on rank 0** (:meth:`DataParallel.agreed`): rank 0 scores the model and broadcasts
  the value; every rank sees the same value, so early stopping stops every rank at the same epoch
  and restores the same best state. The fitted model is rank 0's.

Simplifications, said in the docs: numpy's draws (the order, BPR's and LightGCN's negatives, the
sequential models' sampled negatives) come from the same seed on every rank — the order and
BPR's/LightGCN's negatives are drawn for the whole epoch and sharded, so they are exactly the local
fit's, but the sequential models' per-batch negatives of rank r repeat rank 0's draws on other
windows; torch's draws (dropout, Mult-VAE's noise) are per rank (:func:`synced`); per-position
losses (SASRec's) average the ranks' means, not the positions of the global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

_CURRENT: ContextVar[DataParallel | None] = ContextVar("penchant_data_parallel", default=None)


class DataParallel:
    """Where this process stands in a data-parallel fit: ``rank`` of ``world`` (``torch.distributed``
    already initialised with that rank and size). ``examples`` and ``steps`` count what this rank
    trained on (examples of its shards, steps of its epochs)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world
        self.examples = 0
        self.steps = 0

    @property
    def device(self):
        """The device collectives run on: the current CUDA device under NCCL, else the CPU (gloo)."""
        import torch
        import torch.distributed as dist

        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

    def shard(self, order: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
        """This rank's examples of one epoch's ``order`` (n,) and its examples per step (see the module)."""
        per_rank = -(-len(order) // self.world)
        mine = np.resize(order, per_rank * self.world)[self.rank::self.world]  # resize wraps: pads with the first
        batch = -(-batch_size // self.world)
        self.examples += len(mine)
        self.steps += -(-len(mine) // batch)
        return mine, batch

    def all_reduce_mean(self, flat) -> Any:
        """``flat`` (a 1-d float tensor) summed over the ranks in place, then divided by ``world``."""
        import torch.distributed as dist

        dev = flat.device
        moved = flat.to(self.device)
        dist.all_reduce(moved)
        moved.div_(self.world)
        if moved is not flat:
            flat.copy_(moved.to(dev))
        return flat

    def broadcast_(self, tensors: list) -> None:
        """Overwrite ``tensors`` on every rank with rank 0's (one flat broadcast)."""
        import torch
        import torch.distributed as dist

        if not tensors:
            return
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1).to(self.device, torch.float64) for t in tensors])
            dist.broadcast(flat, 0)
            at = 0
            for t in tensors:
                t.copy_(flat[at:at + t.numel()].view(t.shape).to(t.device, t.dtype))
                at += t.numel()

    def agreed(self, judge: Callable[[Any], float]) -> Callable[[Any], float]:
        """``judge`` computed on rank 0 and broadcast: every rank gets rank 0's value (other ranks
        never call ``judge``), so every rank takes the same early-stopping decisions."""
        import torch
        import torch.distributed as dist

        def value(model: Any) -> float:
            v = torch.tensor([float(judge(model)) if self.rank == 0 else 0.0], dtype=torch.float64, device=self.device)
            dist.broadcast(v, 0)
            return float(v.item())

        return value

    def gather(self, values: list[float]) -> np.ndarray:
        """float64 (world, len(values)): every rank's ``values``, on every rank."""
        import torch
        import torch.distributed as dist

        mine = torch.tensor(values, dtype=torch.float64, device=self.device)
        out = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(out, mine)
        return torch.stack(out).cpu().numpy()


@contextmanager
def data_parallel(ctx: DataParallel) -> Iterator[DataParallel]:
    """Within the block, torch learners train as rank ``ctx.rank`` of ``ctx.world`` (see the module)."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def current() -> DataParallel | None:
    """The data-parallel context this fit runs in, or None (a local fit)."""
    return _CURRENT.get()


def shard(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """One epoch's example ``order`` and examples per step for this rank: unchanged in a local fit,
    this rank's share and ``ceil(batch_size / world)`` in a data-parallel one (:meth:`DataParallel.shard`)."""
    ctx = _CURRENT.get()
    return (order, batch_size) if ctx is None else ctx.shard(order, batch_size)


def synced(opt):
    """A torch optimiser whose every ``step`` first averages the gradients over the ranks (one flat
    all-reduce; a parameter without a gradient on a rank counts as zero there); its parameters
    start from rank 0's. From here on rank r > 0 draws torch's random numbers (dropout, noise) from
    its own stream, seeded by the fit's torch seed + r: the ranks' masks are independent, as a
    local batch's rows are. Unchanged in a local fit."""
    ctx = _CURRENT.get()
    if ctx is None:
        return opt
    import torch

    params = [p for group in opt.param_groups for p in group["params"]]
    ctx.broadcast_(params)
    if ctx.rank:
        torch.manual_seed(torch.initial_seed() + ctx.rank)

    def average(optimizer, args, kwargs) -> None:
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            ctx.all_reduce_mean(flat)
            at = 0
            for p in params:
                p.grad.copy_(flat[at:at + p.numel()].view_as(p.grad))
                at += p.numel()

    opt.register_step_pre_hook(average)
    return opt


def merge_rows(table, rows, values, grad) -> tuple[Any, Any, Any]:
    """Row gradients written by hand, averaged over the ranks: ``table`` (n, w) the parameter table,
    ``rows`` int64 (r,) the distinct rows this rank's batch touched, ``values`` (r, w) their values,
    ``grad`` (r, w) their gradients. Returns (rows touched on any rank (r',), their current values
    (r', w), their mean gradients (r', w)); unchanged in a local fit. One all-reduce of a dense
    (n, w + 1) buffer a call: the cost grows with the table, not the batch."""
    ctx = _CURRENT.get()
    if ctx is None:
        return rows, values, grad
    import torch

    n, w = table.shape
    dense = torch.zeros((n, w + 1), dtype=grad.dtype, device=grad.device)
    dense[rows, :w] = grad
    dense[rows, w] = 1.0
    ctx.all_reduce_mean(dense.view(-1))
    rows = torch.nonzero(dense[:, w] > 0).squeeze(1)
    return rows, table.index_select(0, rows), dense[rows, :w]


#: where models that solve independent per-row problems (ALS's per-user and per-item least squares)
#: send their blocks: ``map(fn, blocks, shared) -> [fn(shared, b) for b in blocks]`` (a backend's map)
_BLOCKS: ContextVar[Callable[..., list] | None] = ContextVar("penchant_block_solves", default=None)


@contextmanager
def solves_on(map_blocks: Callable[..., list]) -> Iterator[None]:
    """Within the block, models that can (ALS) fit their per-row solves through ``map_blocks``
    (e.g. :meth:`penchant.backends.ray_cluster.RayBackend.map`: one Ray task per block)."""
    token = _BLOCKS.set(map_blocks)
    try:
        yield
    finally:
        _BLOCKS.reset(token)


def block_solves() -> Callable[..., list] | None:
    """The map a model's per-row solves go through (:func:`solves_on`), or None: its usual fit."""
    return _BLOCKS.get()
