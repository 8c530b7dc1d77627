"""How much memory a fit may use, and the one-line refusal when a model would need more.

Models whose memory grows faster than the data (dense item × item matrices) state what they
would need through :meth:`Recommender.memory_need`; :func:`check` compares it with what the
machine has free before any large allocation, so a fit that cannot finish refuses at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from penchant.errors import ConfigError, MemoryNeedError

#: caps the memory a fit may plan to use, e.g. ``8G``, ``512M`` or a number of bytes
LIMIT_ENV = "PENCHANT_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """``"8G"`` -> 8 GiB in bytes; ``"512M"``, ``"100000"`` likewise (binary units, optional ``iB``/``B``)."""
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in _UNITS and not raw[-1:].isdigit() else ""
    try:
        value = float(raw[: len(raw) - len(unit)])
    except ValueError:
        raise ConfigError(f"{LIMIT_ENV}={text!r} is not a size (expected e.g. 8G, 512M or a number of bytes)") from None
    return int(value * _UNITS[unit])


def available_bytes() -> int:
    """Memory a fit may use: ``PENCHANT_MEMORY_LIMIT`` when set, else the kernel's MemAvailable
    (free memory plus reclaimable caches), else physical memory."""
    if os.environ.get(LIMIT_ENV):
        return parse_bytes(os.environ[LIMIT_ENV])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def check(model: str, need: int, what: str, instead: tuple[str, ...]) -> None:
    """Raise :class:`MemoryNeedError` (one line) when ``need`` bytes exceed what is available."""
    have = available_bytes()
    if need > have:
        source = f" ({LIMIT_ENV})" if os.environ.get(LIMIT_ENV) else ""
        raise MemoryNeedError(f"{model} would need about {gib(need)} for {what}, and {gib(have)} is available{source}; "
                              f"use {', '.join(instead)} instead, which stay sparse at this size")
