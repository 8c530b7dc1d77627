"""The two-node Ray cluster the backend tests share: started once for the worker that runs the
``ray-cluster`` group (test_ray.py and test_ray_train.py), stopped at the end of the session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict) -> None:
    # stdin closed: the daemons `ray start` leaves behind must not hold this worker's stdin, which
    # pytest-xdist talks to it through
    r = subprocess.run([str(RAY), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """The address of a two-node Ray cluster (1 CPU each) on this machine, driven from this process."""
    pytest.importorskip("ray")
    # a cluster of this test alone: no token (one in ~/.ray from an earlier local instance would
    # otherwise be demanded of the second node), no usage reports
    settings = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)  # the driver (this process) connects under the same settings
    env = dict(os.environ)
    env.pop("PENCHANT_RAY_ADDRESS", None)
    address = f"127.0.0.1:{_free_port()}"
    store = str(200 * 1024 * 1024)
    common = ["--num-cpus", "1", "--object-store-memory", store, "--disable-usage-stats"]
    _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1],
         "--include-dashboard", "false", *common, env=env)
    try:
        _ray("start", "--address", address, "--node-ip-address", "127.0.0.1", *common, env=env)
        import ray

        ray.init(address=address, log_to_driver=False)
        deadline = time.monotonic() + 60
        while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sum(n["Alive"] for n in ray.nodes()) == 2
        yield address
    finally:
        try:
            import ray

            ray.shutdown()
        finally:
            subprocess.run([str(RAY), "stop", "--force"], stdin=subprocess.DEVNULL, capture_output=True, env=env,
                           timeout=120)
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="session")
def split_files(ml100k_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("split")
    assert cli("split", ml100k_dir, "--out", out, "--ratios", "0.8,0.1,0.1", "--seed", "2026").returncode == 0
    return out
