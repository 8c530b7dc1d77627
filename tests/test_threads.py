"""penchant's thread count: the rule, where it comes from, and that it reaches torch and BLAS/OpenMP."""

from __future__ import annotations

import os

import pytest

from penchant import threads
from tests.conftest import cli, tiny_log, write


@pytest.fixture
def fresh(monkeypatch):
    """A process whose thread count is not decided yet; torch's and the BLAS pools' sizes and the
    pool variables are put back afterwards."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    saved_torch, saved_pools = torch.get_num_threads(), threadpool_info()
    for name in (*threads.POOL_VARIABLES, "OMP_WAIT_POLICY", threads.ENV):
        monkeypatch.delenv(name, raising=False)
    threads.reset()
    yield
    threads.reset()
    torch.set_num_threads(saved_torch)
    for pool in saved_pools:
        threadpool_limits({pool["prefix"]: pool["num_threads"]})


@pytest.mark.parametrize("cores, busy, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 2.0, 1), (2, 7.5, 1),  # never below one
    (8, 2.4, 6), (8, 2.5, 5), (16, 0.1, 16), (1, 0.0, 1),
])
def test_the_rule_leaves_out_the_cores_other_work_keeps_busy(cores, busy, expected):
    assert threads.choose_threads(cores, busy) == expected


def test_busy_is_the_larger_of_the_load_average_and_the_present_share_of_our_cores(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.0, 2.0, 1.0))
    monkeypatch.setattr(threads, "_own_load", lambda: 1.0)
    monkeypatch.setattr(threads, "_busy_now", lambda sample: None)
    # 2 of the 3 loaded cores are other work's, spread over 8 CPUs of which 2 are ours: 2 × 2/8
    assert threads.busy_elsewhere(2) == pytest.approx(0.5)
    monkeypatch.setattr(threads, "_busy_now", lambda sample: 1.25)  # hogs that started a moment ago
    assert threads.busy_elsewhere(2) == pytest.approx(1.25)


def test_two_cores_one_busy_give_one_thread(fresh, monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cores: 1.0)
    decision = threads.decide()
    assert (decision.threads, decision.source, decision.cores, decision.busy) == (1, "automatic", 2, 1.0)
    assert str(decision) == "1 thread (2 cores, 1.0 busy with other work)"


def test_the_environment_comes_before_the_machine(fresh, monkeypatch):
    monkeypatch.setattr(threads, "busy_elsewhere", lambda cores: pytest.fail("the machine was asked"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert (threads.decide().threads, threads.decide().source) == (2, "OMP_NUM_THREADS")
    monkeypatch.setenv(threads.ENV, "3")
    assert (threads.decide().threads, threads.decide().source) == (3, threads.ENV)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_count_is_an_error_naming_the_variable(fresh, monkeypatch, value):
    from penchant.errors import ConfigError

    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(ConfigError, match=f"PENCHANT_THREADS must be .* not '{value}'"):
        threads.decide()


def _openmp_and_blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info()}


def test_penchant_threads_reaches_torch_and_threadpoolctl_in_a_library_fit(fresh, monkeypatch):
    import torch

    from penchant.models import create

    torch.set_num_threads(3)  # what a library user's process might hold; nobody calls penchant.threads here
    monkeypatch.setenv(threads.ENV, "1")
    create("biasedmf", epochs=1, factors=4).fit(tiny_log())
    assert torch.get_num_threads() == 1
    assert _openmp_and_blas_threads() == {1}
    assert {os.environ[name] for name in threads.POOL_VARIABLES} == {"1"}  # for child processes


def test_the_cli_option_reaches_torch_and_threadpoolctl(fresh, tmp_path):
    import torch

    ds = tiny_log()
    log = write(tmp_path / "log.csv", "user,item,rating\n" + "".join(
        f"{ds.user_ids[u]},{ds.item_ids[i]},{r:g}\n" for u, i, r in zip(ds.users, ds.items, ds.ratings)))
    torch.set_num_threads(3)
    code, _, err = cli("--quiet", "--threads", "1", "ratings", "cv", log, "--model", "biasedmf", "--folds", "2",
                       "--param", "epochs=2", "--param", "factors=4")
    assert code == 0, err
    assert torch.get_num_threads() == 1
    assert _openmp_and_blas_threads() == {1}


def test_a_bad_cli_count_is_refused(fresh):
    code, _, err = cli("--threads", "0", "models")
    assert code == 2 and "--threads" in err


def test_the_decision_is_made_once(fresh, monkeypatch):
    calls = []
    monkeypatch.setattr(threads, "decide", lambda: calls.append(1) or threads.Decision(1, "automatic", 2, 1.0))
    assert threads.configure().threads == threads.configure().threads == threads.threads() == 1
    assert len(calls) == 1
    assert threads.configure(2).threads == 2  # the CLI's --threads overrides


def test_usable_cores_are_the_affinity(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert 1 <= threads.usable_cores() <= 3


def test_busy_now_reads_the_machine():
    busy = threads._busy_now(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1)


def test_openmp_threads_sleep_while_they_wait_unless_told_how_long_to_spin(fresh, monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    threads.configure()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    threads.reset()
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")
    threads.configure()
    assert "OMP_WAIT_POLICY" not in os.environ


def test_importing_penchant_makes_openmp_sleep_before_torch_loads():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import sys, os, penchant; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["PASSIVE", "False"]
