"""Whether a version's owner process still runs (:func:`penchant.serve.host.owner_alive`), by its
start ticks where /proc has them and by signal 0 (:func:`penchant.serve.runner.process_running`) where not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from penchant.serve.host import owner_alive, process_owner
from penchant.serve.runner import process_running


@pytest.fixture(scope="module")
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now (the kernel does not reuse it at once)
    return child.pid


def test_this_process_is_alive_and_a_reaped_child_is_not(dead_pid, monkeypatch):
    host = socket.gethostname()
    assert process_running(os.getpid()) and not process_running(dead_pid)
    assert owner_alive(process_owner(), embedded=True)
    assert not owner_alive(f"{host}:{dead_pid}:", embedded=True)
    assert owner_alive(f"another-{host}:{dead_pid}:", embedded=True)  # another host answers for its own
    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # no /proc: signal 0 decides
    assert owner_alive(f"{host}:{os.getpid()}:", embedded=True)
    assert not owner_alive(f"{host}:{dead_pid}:", embedded=True)
