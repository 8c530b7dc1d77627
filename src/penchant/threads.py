"""How many threads penchant's arithmetic uses: decided once per process, applied to torch, to
BLAS and OpenMP (through threadpoolctl) and exported to child processes.

Why it matters: torch's intra-op pool (OpenMP here) and OpenBLAS spin-wait at the end of each
parallel region. A pool as wide as the machine, on a machine where another process holds a core,
waits every few microseconds for a thread that is not running; BiasedMF on ML-100K went from 0.4 s
to 20 s an epoch with two threads beside two CPU-bound processes on two cores (docs/benchmarks.md,
"A busy machine"). So the default count leaves out the cores other work keeps busy, and waiting
threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning.

The count, in order of precedence: :func:`configure` with a number (the CLI's ``--threads N``),
``PENCHANT_THREADS``, ``OMP_NUM_THREADS``, else :func:`choose_threads` of the cores this process may
use and how busy they are. Only the standard library is imported here (threadpoolctl and torch
lazily, and only when already loaded): this module sits under every layer.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

ENV = "PENCHANT_THREADS"
#: variables that size the pools of libraries loaded later in this process and in its children
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: seconds over which the cores' current use is sampled (the 1-minute load average lags a burst)
SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Decision:
    """The thread count and where it came from (``--threads``, an environment variable, or
    ``automatic``: then ``cores`` usable and ``busy`` of them taken by other work)."""

    threads: int
    source: str
    cores: int
    busy: float | None = None

    def __str__(self) -> str:
        why = f"{self.source}" if self.busy is None else f"{self.cores} cores, {self.busy:.1f} busy with other work"
        return f"{self.threads} thread{'s' * (self.threads != 1)} ({why})"


_decision: Decision | None = None
_torch_done = False


def choose_threads(cores: int, busy: float) -> int:
    """The automatic thread count: the usable ``cores`` less the cores other work keeps busy
    (``busy``, in cores, rounded to the nearest whole core), at least 1.

    >>> choose_threads(2, 0.0), choose_threads(2, 0.6), choose_threads(8, 2.4), choose_threads(2, 5.0)
    (2, 1, 6, 1)
    """
    return max(1, min(cores, cores - math.floor(busy + 0.5)))


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_elsewhere(cores: int, sample: float = SAMPLE_SECONDS) -> float:
    """Cores (of the ``cores`` this process may use) that other work keeps busy: the larger of the
    1-minute load average less this process's own part of it, and the share of the usable CPUs
    busy over the last ``sample`` seconds (the load average takes a minute to see work that has
    just started). The machine's load is spread over all its CPUs, so with an affinity narrower than
    the machine only that share of it counts."""
    machine = os.cpu_count() or cores
    busy = 0.0
    try:
        busy = max(0.0, os.getloadavg()[0] - _own_load()) * cores / max(machine, cores)
    except OSError:
        pass
    now = _busy_now(sample)
    return max(busy, now) if now is not None else busy


def _own_load() -> float:
    """This process's contribution to the 1-minute load average: its mean CPU use since it started,
    weighted by how much of that minute it has existed (the average decays with a 60 s constant)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
        age = float(open("/proc/uptime").read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return 0.0
    if age <= 0:
        return 0.0
    return min(1.0 * os.cpu_count(), time.process_time() / age) * (1 - math.exp(-age / 60))


def _busy_now(sample: float) -> float | None:
    """Busy cores among this process's CPUs over ``sample`` seconds, less this process's own use
    (None where /proc/stat cannot be read)."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        cpus = None

    def read() -> tuple[float, float]:
        busy = total = 0.0
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                if cpus is not None and int(name[3:]) not in cpus:
                    continue
                values = [float(v) for v in fields[:8]]
                total += sum(values)
                busy += sum(values) - values[3] - values[4]  # all but idle and iowait
        return busy, total

    try:
        busy0, total0 = read()
        cpu0 = time.process_time()
        time.sleep(sample)
        busy1, total1 = read()
    except (OSError, ValueError):
        return None
    n = len(cpus) if cpus is not None else (os.cpu_count() or 1)
    if total1 <= total0:
        return None
    own = (time.process_time() - cpu0) / sample
    return max(0.0, (busy1 - busy0) / (total1 - total0) * n - own)


def decide() -> Decision:
    """The thread count as the environment and the machine say now (nothing is applied)."""
    cores = usable_cores()
    for source in (ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(source, "").strip()
        if value:
            return Decision(_count(value, source), source, cores)
    busy = busy_elsewhere(cores)
    return Decision(choose_threads(cores, busy), "automatic", cores, busy)


def _count(value: str | int, source: str) -> int:
    from penchant.errors import ConfigError

    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{source} must be a whole number of threads, at least 1, not {value!r}")
    return n


def configure(threads: int | None = None) -> Decision:
    """Decide penchant's thread count (once per process; a number given here overrides and
    re-applies) and apply it: the pool variables for libraries not loaded yet and for child
    processes, OpenMP waits that sleep rather than spin, and torch and BLAS if they are loaded."""
    global _decision, _torch_done
    if threads is not None:
        _decision = Decision(_count(threads, "--threads"), "--threads", usable_cores())
        _torch_done = False
    elif _decision is None:
        _decision = decide()
    else:
        return _decision
    n = str(_decision.threads)
    for name in POOL_VARIABLES:
        os.environ[name] = n
    sleep_while_waiting()
    if "torch" in sys.modules:
        apply_to_torch()
    if any(lib in sys.modules for lib in ("numpy", "torch", "scipy")):
        from threadpoolctl import threadpool_limits

        threadpool_limits(_decision.threads)
    return _decision


def sleep_while_waiting() -> None:
    """OpenMP threads that wait for work sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` says otherwise). OpenMP reads it once, when the library
    that carries it loads (torch, lazily): ``import penchant`` calls this, so it holds wherever torch is
    imported after penchant."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads() -> int:
    """penchant's thread count (deciding it if nothing has yet)."""
    return configure().threads


def apply_to_torch() -> None:
    """Size torch's pools to penchant's count, once: the training prologue calls it, so a library user
    gets it without calling anything (``torch.set_num_interop_threads`` works only before torch's
    first parallel work; when that has passed, the inter-op pool is left as it is)."""
    global _torch_done
    n = configure().threads
    if _torch_done:
        return
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass
    _torch_done = True


def reset() -> None:
    """Forget the decision (tests): the next :func:`configure` decides again."""
    global _decision, _torch_done
    _decision, _torch_done = None, False
