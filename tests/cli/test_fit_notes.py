"""What ``penchant fit`` tells a user about how it trained: BPR's fitted line names the code that ran
its steps (the compiled numba epoch, or torch's) and the pairs a step it used; the compiled epoch
still runs, with a warning, where numba has no writable cache folder."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.conftest import cli, write


def test_bpr_fit_line_names_the_compiled_path_and_the_batch_it_chose(tmp_path):
    rng = np.random.default_rng(0)
    rows = {(f"reader-{u:03d}", f"isbn-978{i:07d}") for u, i in zip(rng.integers(0, 40, 600), rng.integers(0, 30, 600))}
    log = write(tmp_path / "books.csv", "user,item\n" + "".join(f"{u},{i}\n" for u, i in sorted(rows)))
    code, out, err = cli("fit", "--train", log, "--model", "bpr", "--param", "epochs=1", "--param", "device=cpu",
                         "--out", tmp_path / "bpr.npz")
    assert code == 0, err
    line = " ".join(out.split())
    # a CPU fit outside Ray runs the numba epoch; batch_size=0 on a log under 1M pairs is 4,096 a step
    assert re.search(r"compiled steps \(numba, lazy Adam, \d+ threads?\), 4,096 pairs a step \(batch_size=0: sized to the log\)",
                     line), line
    code, out, err = cli("fit", "--train", log, "--model", "bpr", "--param", "epochs=1", "--param", "sampler=nbpo",
                         "--param", "batch_size=256", "--out", tmp_path / "nbpo.npz")
    assert code == 0, err
    assert "torch steps (autograd, dense Adam), 256 pairs a step" in " ".join(out.split())
    # `penchant recommend` for one of the log's own ids
    code, out, err = cli("recommend", "--model-path", tmp_path / "bpr.npz", "--user", "reader-001", "--k", "3",
                         "--json", tmp_path / "recs.json")
    assert code == 0, err
    assert "bpr: 1 user (1 known to the model, 0 by fold-in, 0 by popularity)" in " ".join(out.split()), out
    code, out, err = cli("similar", "--model-path", tmp_path / "bpr.npz", "--item", "isbn-9780000001", "--k", "3",
                         "--json", tmp_path / "similar.json")
    assert code == 0, err
    assert "bpr: similar items of 1 item written to" in " ".join(out.split()), out


def test_kernel_cache_falls_back_to_compiling_with_a_warning_where_no_folder_is_writable(monkeypatch):
    """A read-only install without a writable home: numba's cache=True would raise at import (and no
    BPR fit would run); the kernels compile in the process instead and the user is told how to keep them."""
    from numba.core import caching

    from penchant.models.bpr_kernel import machine_code_cache

    assert machine_code_cache() is True  # here: __pycache__ (or NUMBA_CACHE_DIR, ~/.cache/numba) is writable

    def read_only(self):
        raise PermissionError(13, "Permission denied", self.get_cache_path())

    monkeypatch.setattr(caching._CacheLocator, "ensure_cache_path", read_only)
    with pytest.raises(RuntimeError, match="no locator available"):  # what cache=True meets there
        caching.FunctionCache(machine_code_cache)
    with pytest.warns(RuntimeWarning, match="set NUMBA_CACHE_DIR to a writable folder"):
        assert machine_code_cache() is False


def test_fit_on_an_absent_gpu_is_refused_before_the_log_is_read(tmp_path):
    """``--param device=cuda`` where torch sees no GPU: one line, exit 2, before a (possibly large) log is
    read; the log here has a bad row, so an error about it would mean it was read first."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: device=cuda is not refused")
    log = write(tmp_path / "books.csv", "user,item,rating\nreader-1,isbn-1,5\nreader-2,isbn-2,five\n")
    code, _, err = cli("fit", "--train", log, "--model", "bpr", "--param", "device=cuda", "--out", tmp_path / "x.npz")
    assert code == 2
    assert "device='cuda', but torch sees no CUDA device here" in err and "five" not in err, err
    code, _, err = cli("fit", "--train", log, "--model", "bpr", "--param", "device=cpu", "--out", tmp_path / "x.npz")
    assert code == 2 and "line 3, column 'rating'" in err, err  # device=cpu goes on to the log, which is refused
    assert not (tmp_path / "x.npz").exists()
