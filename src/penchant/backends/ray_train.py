"""Training on a Ray cluster: the torch learners data-parallel through Ray Train.

:func:`fit_on_ray` starts one Ray Train worker per rank (``TorchTrainer``: ``torch.distributed``
over gloo on CPUs, NCCL when every worker gets a GPU) and runs the caller's ordinary fit in each,
inside :func:`penchant.models.distributed.data_parallel`: every rank draws the same permutation of
the epoch's examples and trains on its shard of it, gradients are averaged before every step,
validation runs on rank 0 and its value is broadcast so that every rank stops at the same epoch
(the mechanism and its simplifications: :mod:`penchant.models.distributed`). Rank 0's fitted model
comes back to the driver as its artefact (through a small actor the driver owns, so no storage
shared by the nodes is needed) and is rebuilt there: the same object, and the same file once saved,
as a local fit gives.

Which models: those whose training loop takes its order, batches and optimiser through those
hooks (:func:`data_parallel_classes`: BPR, LightGCN, Mult-VAE, RecVAE and the neural sequential models,
SASRec and GRU4Rec). ALS and fsSLIM fit differently (:func:`block_solved_classes`): the driver runs
their fit, and their independent solves go to the cluster as Ray tasks, one per block
(:meth:`penchant.backends.ray_cluster.RayBackend.map`, what they share put into the object store
once): ALS's per-user (per-item) solves of each half-step (:mod:`penchant.models.als`), fsSLIM's
per-target ridge solves on the pruned Gram (:func:`penchant.models.sparse_linear.solve_targets`;
the co-occurrence counting before them stays in the driver). EASE is not among them: its weights are
one dense item × item inverse, not per-item solves (fsSLIM is the linear model for catalogues beyond
one process). Any other model is refused with a ConfigError rather than fitted ``world`` times over.
Every node needs penchant installed, as for :mod:`penchant.backends.ray_cluster`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from penchant.backends.ray_cluster import connect
from penchant.errors import ConfigError, DataError


def data_parallel_classes() -> tuple[type, ...]:
    """The model classes whose training honours :mod:`penchant.models.distributed` (subclasses too)."""
    from penchant.models.bpr import BPR
    from penchant.models.lightgcn import LightGCN
    from penchant.models.multvae import MultVAE
    from penchant.models.sequential.neural import NeuralSequential

    return (BPR, LightGCN, MultVAE, NeuralSequential)


def block_solved_classes() -> tuple[type, ...]:
    """The model classes that send their independent solves through
    :func:`penchant.models.distributed.solves_on` (ALS: per-user and per-item least squares;
    fsSLIM: per-target ridge regressions, in blocks of targets)."""
    from penchant.models.als import ALS
    from penchant.models.sparse_linear import FSSLIM

    return (ALS, FSSLIM)


def solves_in_blocks(name: str) -> bool:
    """Whether the registered model ``name`` fits on Ray by its per-row solves as tasks (not Ray Train)."""
    from penchant.models.registry import entry

    return issubclass(entry(name).cls, block_solved_classes())


def check_data_parallel(name: str) -> None:
    """A ConfigError unless the registered model ``name`` trains on Ray (data-parallel, or by its
    per-row solves as Ray tasks)."""
    from penchant.models.registry import entry, model_names

    kinds = data_parallel_classes() + block_solved_classes()
    if not issubclass(entry(name).cls, kinds):
        from penchant.models.linear import _LinearAutoencoder

        able = [n for n in model_names() if issubclass(entry(n).cls, kinds)]
        why = ""
        if issubclass(entry(name).cls, _LinearAutoencoder):  # EASE, EDLAE, DLAE
            why = " (its weights are one dense item × item inverse, not per-item solves: fsslim is the linear model for larger catalogues)"
        raise ConfigError(f"{name} does not train data-parallel on Ray{why}; --backend ray fits {', '.join(able)}")


def _inbox_class(ray: Any) -> Any:
    class Inbox:
        """What rank 0 sends the driver: progress statuses while training, then the result."""

        def __init__(self) -> None:
            self.statuses: list = []
            self.result: Any = None

        def status(self, status: Any) -> None:
            self.statuses.append(status)

        def put(self, result: Any) -> None:
            self.result = result

        def take(self) -> tuple[list, Any]:
            statuses, self.statuses = self.statuses, []
            return statuses, self.result

    return ray.remote(num_cpus=0)(Inbox)


def _checksum(arrays: dict[str, np.ndarray]) -> int:
    """CRC-32 of a model's arrays (names sorted): equal on every rank when their parameters are equal."""
    crc = 0
    for k in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[k]).tobytes(), zlib.crc32(k.encode(), crc))
    return crc


def _worker(config: dict) -> None:
    """One rank: the caller's fit inside the data-parallel context; rank 0 sends the result home."""
    import ray
    import ray.train

    from penchant.models.distributed import DataParallel, data_parallel
    from penchant.models.training import training_progress

    context = ray.train.get_context()
    ctx = DataParallel(context.get_world_rank(), context.get_world_size())
    inbox = config["inbox"]
    fit, judge = ray.get(config["fit"]), ray.get(config["judge"])
    report = None if judge is None else ctx.agreed(judge)
    start = time.perf_counter()
    progress = training_progress(inbox.status.remote) if ctx.rank == 0 else nullcontext()
    with data_parallel(ctx), progress:
        model = fit(report)
    seconds = time.perf_counter() - start
    art = model.to_artefact()
    node = int(ray.get_runtime_context().get_node_id()[:8], 16)  # a node's id, shortened to fit a float64 exactly
    table = ctx.gather([ctx.examples, ctx.steps, seconds, _checksum(art.arrays), node])
    if ctx.rank == 0:
        attributes = {k: v for k, v in vars(model).items()
                      if k.endswith("_") and isinstance(v, (bool, int, float, str, list, type(None)))}
        ranks = [{"rank": r, "examples": int(row[0]), "steps": int(row[1]), "seconds": float(row[2]),
                  "checksum": int(row[3]), "node": f"{int(row[4]):08x}"} for r, row in enumerate(table)]
        ray.get(inbox.put.remote((art, attributes, ranks)))


def fit_on_ray(fit: Callable[[Callable[[Any], float] | None], Any], judge: Callable[[Any], float] | None, *,
               address: str | None = None, workers: int | None = None,
               progress: Callable[[Any], None] | None = None) -> Any:
    """A model fitted data-parallel on the Ray cluster at ``address`` (see the module).

    Args:
        fit: ``fit(report)`` fits the model in the calling process's usual way, with ``report``
            (when not None) as its validation judge; it is shipped to every worker (with the data
            it closes over, once per node through the object store) and must be picklable.
        judge: scores a fitted model on validation (higher is better), or None for no validation;
            only rank 0 calls it.
        address: what ``ray.init`` takes (:mod:`penchant.backends.ray_cluster`).
        workers: ranks (one CPU each, or one GPU each when the cluster has a GPU per worker);
            default: one per alive node.
        progress: called in this process with each validation status of rank 0
            (:class:`penchant.models.training.TrainingStatus`).

    Returns the fitted model, rebuilt from rank 0's artefact, with its fit attributes (epochs,
    ``best_epoch_``, …) and ``ray_ranks_``: per rank, the examples and steps it trained on, its
    seconds, a checksum of its final parameters and its node.
    """
    from penchant.models.artefact import build

    ray = connect(address)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    workers = nodes if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) >= workers
    if not use_gpu and workers > resources.get("CPU", 0):  # Ray Train would wait for them forever
        raise ConfigError(f"--workers {workers} needs {workers} CPUs (one a rank); the cluster has "
                          f"{int(resources.get('CPU', 0))}")
    inbox = _inbox_class(ray).remote()
    config = {"inbox": inbox, "fit": ray.put(fit), "judge": ray.put(judge)}
    with tempfile.TemporaryDirectory(prefix="penchant-ray-train-") as scratch:
        # Ray Train's run records (no checkpoints are written): PENCHANT_RAY_STORAGE as for Ray Tune
        storage = os.environ.get("PENCHANT_RAY_STORAGE") or scratch
        trainer = TorchTrainer(_worker, train_loop_config=config,
                               scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                            placement_strategy="SPREAD"),
                               run_config=RunConfig(name="penchant-fit", storage_path=storage))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                trainer.fit()
            except BaseException as exc:  # noqa: BLE001 (handed to the calling thread below)
                failure.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.5)
            statuses, _ = ray.get(inbox.take.remote())
            for status in statuses if progress else ():
                progress(status)
    _, result = ray.get(inbox.take.remote())
    ray.kill(inbox)
    if failure:
        raise _one_line(failure[0]) from None
    art, attributes, ranks = result
    model = build(art, f"<rank 0 of {workers} on Ray>")
    for k, v in attributes.items():
        if k not in vars(model):
            setattr(model, k, v)
    model.ray_ranks_ = ranks
    return model


def _one_line(exc: BaseException) -> Exception:
    """A worker's ConfigError or DataError as itself; any other failure as one ConfigError line."""
    cause: BaseException | None = exc
    while cause is not None:
        for inner in getattr(cause, "worker_failures", {}).values() if hasattr(cause, "worker_failures") else ():
            if isinstance(inner, (ConfigError, DataError)):
                return inner
        if isinstance(cause, (ConfigError, DataError)):
            return cause
        cause = cause.__cause__ or getattr(cause, "cause", None)
    text = str(exc).strip().splitlines()
    return ConfigError(f"training on Ray failed: {type(exc).__name__}: {text[0] if text else ''}")
