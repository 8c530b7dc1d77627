"""Shared fixtures: the real MovieLens-100K folder, a CLI runner, and small file writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # One math thread per xdist worker: two workers of two threads each on two cores oversubscribe
    # them (measured: the GRU4Rec and text-SASRec tests together 279 s → 140 s). Set before numpy
    # and torch are imported; threadpoolctl covers a BLAS a plugin loaded earlier.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _ONE_THREAD = threadpool_limits(1)


def _keep_freed_memory_for_reuse() -> None:
    """glibc gives a freed block of 32 MiB or more back to the system, so a training step's large
    tensors (GRU4Rec's and SASRec's logits over every item, VPL's gathered feature rows) fault their
    pages in afresh at every step; held in the heap (up to 256 MiB a block, 512 MiB kept free) they
    are reused. GRU4Rec, 3 epochs of ML-100K: 9.5 → 7.1 s of CPU, peak memory 662 → 643 MB. This
    process only: the servers and commands the tests start keep glibc's defaults."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its allocator's own defaults
        pass


_keep_freed_memory_for_reuse()

ROOT = Path(__file__).resolve().parents[1]
# sentence embeddings are cached per checkout, shared by the xdist workers, not in the user's cache
os.environ.setdefault("PENCHANT_CACHE", str(ROOT / ".pytest_cache" / "penchant"))


def _shared_data() -> Path | None:
    for candidate in (os.environ.get("PENCHANT_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "ml-100k" / "ml-100k.inter").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    found = _shared_data()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data/ml-100k is missing in CI")
        pytest.skip("MovieLens-100K not available (set PENCHANT_DATA)")
    return found


@pytest.fixture(scope="session")
def ml100k_dir(shared_data: Path) -> Path:
    return shared_data / "ml-100k"


@pytest.fixture(scope="session")
def ml100k(ml100k_dir: Path):
    from penchant.data import load

    return load(ml100k_dir)


@pytest.fixture(scope="session")
def ml100k_split(ml100k):
    from penchant.data.split import random_holdout

    return random_holdout(ml100k, (0.8, 0.1, 0.1), seed=2026)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def penchant(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "penchant", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


class Ran(subprocess.CompletedProcess):
    """What an in-process run gave: ``returncode``, ``stdout``, ``stderr`` as a subprocess would,
    and unpackable as ``code, out, err``."""

    def __iter__(self):
        return iter((self.returncode, self.stdout, self.stderr))


def cli(*args: object) -> Ran:
    """Run ``penchant ARGS`` in this process (no interpreter start, no re-import): exit code, stdout, stderr."""
    import contextlib
    import io

    from penchant.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Ran([str(a) for a in args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def postgres_server():
    from tests.postgres import PostgresServer

    server = PostgresServer()
    try:
        server.start()
    except Exception as e:  # a missing server fails the PostgreSQL tests; it never skips them
        pytest.fail(f"no PostgreSQL server for the tests: {e}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """The store's URL: SQLite under tmp_path (the default), or a fresh database on a real PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").database()


def tiny_log(seed: int = 0):
    """60 users × 40 items, 8–20 time-ordered events each with 1–5 ratings, ids that are not indices,
    and item titles (for the text-reading models)."""
    from penchant.data import Dataset

    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 40
    taste = rng.normal(size=(n_users, 3)) @ rng.normal(size=(3, n_items))
    users, items = [], []
    for u in range(n_users):
        p = np.exp(taste[u] - taste[u].max())
        chosen = rng.choice(n_items, size=rng.integers(8, 21), replace=False, p=p / p.sum())
        users += [u] * len(chosen)
        items += list(chosen)
    users, items = np.array(users, np.int32), np.array(items, np.int32)
    titles = np.array([f"film number {i} about {('cats', 'space', 'love', 'war')[i % 4]}" for i in range(n_items)], dtype=object)
    return Dataset(np.array([f"u{u:03d}" for u in range(n_users)], dtype=object),
                   np.array([f"item-{i}" for i in range(n_items)], dtype=object), users, items,
                   ratings=rng.integers(1, 6, len(users)).astype(np.float32),
                   timestamps=np.arange(len(users), dtype=np.float64), item_text=titles, name="tiny")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first (the sort is stable): xdist hands tests out in this order, so a
    long test is not the last one given to a worker while the other sits idle. Any test of ten
    seconds or more on one core is marked (a 23-second one handed out last kept one worker idle for
    28 s at the end of a run)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
