"""Shared pieces of gradient training: seeding, negative sampling, early stopping on validation."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.errors import ConfigError
from penchant.models.distributed import current

DEVICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> str:
    """Validate a ``device`` parameter without importing torch: auto, cpu, cuda or cuda:N."""
    if name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}")


def torch_device(name: str):
    """The ``torch.device`` for a ``device`` parameter: ``auto`` is CUDA when torch sees a GPU, else
    the CPU; asking for CUDA where there is none is an error, never a silent CPU run. Every torch model
    asks for its device before it trains, so torch's pools are sized here too (once per process)."""
    import torch

    from penchant.threads import apply_to_torch

    check_device(name)
    apply_to_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}, but torch sees no CUDA device here; use device=auto or device=cpu")
    return torch.device(name)


def net_device(net: Any):
    """The device a torch module's parameters are on (inputs go there, outputs come back with ``.cpu()``)."""
    return next(net.parameters()).device


def seed_torch(seed: int) -> None:
    """The prologue of every torch training loop: size torch's thread pools to penchant's count
    (once per process; :mod:`penchant.threads`), seed torch's global generator (used by parameter
    initialisation) and ask for deterministic algorithms."""
    import torch

    from penchant.threads import apply_to_torch

    apply_to_torch()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class NegativeSampler:
    """Draws, for each (user, positive) pair, items the user has not interacted with.

    Args:
        seen: binary CSR (n_users, n_items) of observed pairs.
        weights: sampling weights over items (None: uniform).
        rng: the random generator.

    Rejection is vectorised: draws that hit a seen pair are redrawn until none is left (a
    user who has seen every item keeps whatever was drawn last). Membership: a dense bitmap on small
    logs, else a compiled binary search in the user's sorted CSR row
    (:func:`penchant.models.bpr_kernel.seen`, prefetched; 4.8M checks at the 20M shape 0.24 s).
    """

    #: below this many user×item cells, membership is looked up in a dense bitmap (1 byte a cell)
    DENSE_CELLS = 50_000_000

    def __init__(self, seen: sp.csr_matrix, weights: np.ndarray | None, rng: np.random.Generator) -> None:
        self.n_items = seen.shape[1]
        self.dense = seen.toarray() > 0 if seen.shape[0] * seen.shape[1] <= self.DENSE_CELLS else None
        rows = seen if seen.has_sorted_indices else seen.sorted_indices()
        self.indptr, self.indices = rows.indptr, rows.indices
        self.cdf = None if weights is None else np.cumsum(weights / weights.sum())
        self.rng = rng

    def _draw(self, n: int) -> np.ndarray:
        if self.cdf is None:
            return self.rng.integers(0, self.n_items, size=n)
        return np.minimum(np.searchsorted(self.cdf, self.rng.random(n)), self.n_items - 1)

    def is_seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[users, items]
        from penchant.models.bpr_kernel import seen

        # one compiled signature: the fit's users are int32 (the CSR's), the draws int64 (numpy's)
        return seen(self.indptr, self.indices, np.asarray(users, np.int32), np.asarray(items, np.int64))

    def sample(self, users: np.ndarray) -> np.ndarray:
        """One unseen item per entry of ``users``; int64 (len(users),)."""
        items = self._draw(len(users))
        bad = np.flatnonzero(self.is_seen(users, items))
        for _ in range(50):
            if not len(bad):
                break
            items[bad] = self._draw(len(bad))
            bad = bad[self.is_seen(users[bad], items[bad])]
        return items


def triple_batches(users: np.ndarray, items: np.ndarray, sampler: NegativeSampler, batch_size: int,
                   rng: np.random.Generator, device: Any = None):
    """One epoch of (user, positive, negative) int64 torch tensors, each observed pair once, shuffled,
    moved to ``device`` a batch at a time (only the batch is ever on the device).

    ``users``, ``items``: the observed pairs, (n,) each (e.g. ``x.nonzero()``, computed once per fit).
    """
    import torch

    order = rng.permutation(len(users))
    negatives = sampler.sample(users[order])
    if current() is not None:  # data-parallel: this rank's share of the local fit's triples
        keep, batch_size = current().shard(np.arange(len(order)), batch_size)
        order, negatives = order[keep], negatives[keep]
    for s in range(0, len(order), batch_size):
        sel = order[s:s + batch_size]
        yield tuple(torch.from_numpy(a.astype(np.int64)).to(device) for a in
                    (users[sel], items[sel], negatives[s:s + batch_size]))


@dataclass(frozen=True)
class TrainingStatus:
    """One validation check of a model trained by epochs: where it is, how it scores, how long is left
    at most (training may stop earlier, when validation stops improving)."""

    epoch: int
    epochs: int | None
    value: float
    best: float
    seconds: float

    @property
    def eta_seconds(self) -> float | None:
        if not self.epochs or self.epoch < 1:
            return None
        return self.seconds / self.epoch * max(0, self.epochs - self.epoch)

    @property
    def progress_text(self) -> str:
        """Where training is, without the time: ``epoch 12/200 · valid 0.9100 (best 0.9000)``."""
        return (f"epoch {self.epoch}" + (f"/{self.epochs}" if self.epochs else "") +
                f" · valid {self.value:.4f} (best {self.best:.4f})")

    def __str__(self) -> str:
        eta = self.eta_seconds
        return self.progress_text + ("" if eta is None else f" · ETA ≤ {int(eta // 60)}m{int(eta % 60):02d}s")


_REPORTER: ContextVar[Callable[[TrainingStatus], None] | None] = ContextVar("penchant_training_progress", default=None)


@contextmanager
def training_progress(callback: Callable[[TrainingStatus], None]) -> Iterator[None]:
    """Within the block, every validation check of a model trained by epochs calls ``callback``
    (the CLI shows it in its progress bar)."""
    token = _REPORTER.set(callback)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@dataclass
class EarlyStopping:
    """Keeps the best state seen on validation and says when to stop.

    ``update(epoch, value, state)`` records a validation value (higher is better) and returns
    True when ``patience`` checks have passed without improvement.
    """

    patience: int
    best_value: float = -np.inf
    best_epoch: int = -1
    best_state: Any = None
    history: list[tuple[int, float]] = field(default_factory=list)
    _bad: int = 0
    #: the epoch budget, for the ETA that progress reports carry
    epochs: int | None = None
    _start: float = field(default_factory=time.perf_counter)

    def restore_best(self, model: Any) -> bool:
        """Give ``model`` its best validated state (``model._restore``) and ``best_epoch_``; False if none."""
        if self.best_state is None:
            return False
        model._restore(self.best_state)
        model.best_epoch_ = self.best_epoch
        return True

    def update(self, epoch: int, value: float, state: Callable[[], Any]) -> bool:
        self.history.append((epoch, value))
        improved = value > self.best_value
        if improved:
            self.best_value, self.best_epoch, self.best_state = value, epoch, copy.deepcopy(state())
            self._bad = 0
        else:
            self._bad += 1
        report = _REPORTER.get()
        if report is not None:
            report(TrainingStatus(epoch, self.epochs, value, self.best_value, time.perf_counter() - self._start))
        return not improved and self._bad >= self.patience


def validate_net(model: Any, net: Any, stopper: EarlyStopping, epoch: int, valid: Callable | None, every: int) -> bool:
    """After an epoch: every ``every`` epochs put the torch ``net`` in eval mode, score ``model`` with
    ``valid`` and record it (the net's weights are the state kept); True when training should stop."""
    if valid is None or epoch % every:
        return False
    net.eval()
    return stopper.update(epoch, valid(model), net.state_dict)


def blas_single_threaded(fit):
    """Decorator for torch training loops: hold numpy's BLAS to one thread meanwhile.

    Validation between epochs runs numpy/scipy code; OpenBLAS threads then keep spinning and
    take the cores from torch's own threads (measured: BPR on ML-100K 5.5 s → 3.1 s).
    """
    import functools

    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            return fit(*args, **kwargs)

    return wrapper


@contextmanager
def torch_single_threaded() -> Iterator[None]:
    """Hold torch to one thread meanwhile. For small networks that learn from their own choices
    (the simulator's policies): a multi-threaded sum's order varies run to run, and a policy that
    feeds on its own actions turns that into different runs from one seed. And for training whose
    steps are too small to split (the rating models' batches of 1,024 ratings: one BiasedMF fold of
    ML-100K, 10 epochs, 3.6 s with one thread against 5.9 s with two on an idle 2-core machine, and
    5.7 s against 8.4 s beside two CPU-bound processes; benchmarks/bench_busy_machine.py --matrix)."""
    import torch

    from penchant.threads import apply_to_torch

    apply_to_torch()  # first, so that the once-per-process sizing never lands inside this block
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
