"""Where blockwise work runs: in this process (``local``) or on a Ray cluster (``ray``).

The one seam for scale-out. Batch scoring and full-ranking evaluation are written as one function
``fn(shared, block)`` over a list of blocks (users in chunks); a backend runs it over every block
and returns the results in block order. The local backend loops here; the Ray backend
(:mod:`penchant.backends.ray_cluster`) puts ``shared`` (the fitted model, the evaluation target)
into the cluster's object store once and runs one task per block. The same blocks, the same
function and the same model give the same numbers on either backend.

Nothing here imports Ray: :func:`resolve` imports it only when the Ray backend is asked for.

Choosing a backend: ``backend="ray"`` or an ``address`` picks Ray; with neither,
``PENCHANT_RAY_ADDRESS`` in the environment picks Ray at that address; else local.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from penchant.errors import ConfigError

#: the environment variable naming the Ray cluster to use when no backend is given
ENV_ADDRESS = "PENCHANT_RAY_ADDRESS"
BACKENDS = ("local", "ray")

Block = TypeVar("Block")
Result = TypeVar("Result")


class Backend(Protocol):
    """Runs ``fn(shared, block)`` for every block; results in block order."""

    name: str

    def map(self, fn: Callable[[Any, Any], Any], blocks: Sequence[Any], shared: Any,
            progress: Callable[[int], None] | None = None) -> list[Any]:
        """``[fn(shared, b) for b in blocks]``; ``progress(done)`` after each finished block."""
        ...

    def describe(self) -> str:
        """One line: where the work runs."""
        ...


class LocalBackend:
    """Every block in turn, in this process (memory bounded by one block at a time)."""

    name = "local"

    def map(self, fn: Callable[[Any, Any], Any], blocks: Sequence[Any], shared: Any,
            progress: Callable[[int], None] | None = None) -> list[Any]:
        out = []
        for block in blocks:
            out.append(fn(shared, block))
            if progress:
                progress(len(out))
        return out

    def describe(self) -> str:
        return "local (this process)"


LOCAL = LocalBackend()


def resolve(backend: str | Backend | None = None, address: str | None = None) -> Backend:
    """The backend asked for (see the module for the rule); a ConfigError names a bad choice."""
    if backend is not None and not isinstance(backend, str):
        return backend
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "local":
        if address:
            raise ConfigError("a Ray address was given with the local backend; drop --ray-address or use --backend ray")
        return LOCAL
    address = address or os.environ.get(ENV_ADDRESS) or None
    if backend is None and address is None:
        return LOCAL
    from penchant.backends.ray_cluster import RayBackend

    return RayBackend(address)
