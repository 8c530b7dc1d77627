"""Failpoints: named places in the service where a test can make the process die, to check what a
crash at that very step leaves behind (the fault suite, tests/serve/test_serve_faults.py).

``failpoint("feedback.before_commit")`` does nothing unless the environment armed that name when
this module was imported: ``PENCHANT_FAILPOINTS=feedback.before_commit,train.after_fit``. An armed
failpoint SIGKILLs its own process, as a power cut or the kernel's out-of-memory killer would: no
``finally``, no atexit, no flush. ``name@N`` arms the Nth time the place is reached (counted in
each process), so a test can let earlier requests through.

Unarmed, a failpoint costs one truthiness test of an empty dict: the environment is read once.

The names, in the order a request or a job reaches them:

- ``feedback.before_commit``: a feedback batch inserted in its transaction, not committed
- ``feedback.after_commit``: the batch committed, the answer not yet sent
- ``train.after_fit``: a training job's model fitted, nothing saved
- ``train.after_save``: the version's artefact saved (and synced), the version not yet ready
- ``version.before_ready``: a version live in this process, its "ready and active" not yet committed
- ``restore.midway``: a restore's first rows written in its transaction, not committed
"""

from __future__ import annotations

import os
import signal

NAMES = ("feedback.before_commit", "feedback.after_commit", "train.after_fit", "train.after_save",
         "version.before_ready", "restore.midway")


def _armed(text: str) -> dict[str, int]:
    """``"a,b@3"`` -> ``{"a": 1, "b": 3}``: each armed name and the hit that fires it."""
    armed = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, nth = part.partition("@")
        if name not in NAMES:
            raise ValueError(f"PENCHANT_FAILPOINTS names {name!r}; the failpoints are {', '.join(NAMES)}")
        armed[name] = int(nth) if nth else 1
    return armed


_ARMED = _armed(os.environ.get("PENCHANT_FAILPOINTS", ""))
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    """SIGKILL this process here when ``name`` is armed and this is the hit that fires it."""
    if _ARMED and name in _ARMED:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == _ARMED[name]:
            os.kill(os.getpid(), signal.SIGKILL)
