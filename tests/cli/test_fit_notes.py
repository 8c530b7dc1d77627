"""What ``penchant fit`` tells a user about how it trained: BPR's fitted line names the code that ran
its steps (the compiled numba epoch, or torch's) and the pairs a step it used."""

from __future__ import annotations

import re

import numpy as np

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
