"""The Ray backend: blocks as Ray tasks over a cluster, shared inputs in its object store.

Imported only when the Ray backend is asked for. ``address`` is what ``ray.init`` takes: ``auto``
(the cluster ``ray start`` made on this machine), ``HOST:PORT`` of a head node's GCS, or
``ray://HOST:10001`` (Ray Client); None starts a Ray instance inside this process. Every node needs
penchant and its dependencies installed (the same version as the driver): tasks unpickle the
fitted model and call penchant's own functions there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from penchant.errors import ConfigError


def import_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    from penchant.extras import require

    require("ray", "the Ray backend")
    import ray

    return ray


def connect(address: str | None) -> Any:
    """``ray``, connected to the cluster at ``address`` (once per process; see the module)."""
    ray = import_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            options["include_dashboard"] = False
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
    return ray


def _call(fn: Callable[[Any, Any], Any], shared: Any, block: Any) -> Any:
    return fn(shared, block)


class RayBackend:
    """One Ray task (one CPU) per block; ``shared`` is put into the object store once, so every
    task on a node reads its numpy arrays from shared memory without a copy."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self.ray = connect(address)
        self._task = self.ray.remote(num_cpus=1)(_call)

    def map(self, fn: Callable[[Any, Any], Any], blocks: Sequence[Any], shared: Any,
            progress: Callable[[int], None] | None = None) -> list[Any]:
        ray = self.ray
        shared_ref = ray.put(shared)
        refs = [self._task.remote(fn, shared_ref, block) for block in blocks]
        pending, done = list(refs), 0
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            done += len(finished)
            if progress:
                progress(done)
        return ray.get(refs)

    def describe(self) -> str:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        return f"ray at {self.address or 'a local instance'}: {len(nodes)} node(s), {cpus} CPU(s)"
