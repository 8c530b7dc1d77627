"""Progress of long commands on stderr: plain lines with elapsed time and ETA when stderr is not a
terminal, nothing with ``--quiet``."""

from __future__ import annotations

import re
import time

import pytest

from penchant.cli import render
from penchant.models.training import TrainingStatus
from tests.conftest import cli, tiny_log, write

ELAPSED = re.compile(r"\d+:\d\d elapsed")


@pytest.fixture(scope="module")
def ratings_log(tmp_path_factory):
    ds = tiny_log()
    return write(tmp_path_factory.mktemp("progress") / "log.csv", "user,item,rating\n" + "".join(
        f"{ds.user_ids[u]},{ds.item_ids[i]},{r:g}\n" for u, i, r in zip(ds.users, ds.items, ds.ratings)))


CV = ("ratings", "cv", "--model", "biasedmf", "--folds", "2", "--param", "epochs=3", "--param", "factors=4",
      "--param", "eval_every=1")


def test_a_command_whose_stderr_is_captured_writes_progress_lines(ratings_log):
    code, out, err = cli(*CV[:2], ratings_log, *CV[2:])
    assert code == 0, err
    lines = err.splitlines()
    assert lines, "no progress on a stderr that is not a terminal"
    assert all(ELAPSED.search(line) or "done in" in line for line in lines)
    # after the first of two folds: the fold, the steps done, the time so far and the time left
    assert any(re.fullmatch(r"fitting biasedmf fold 2/2 · 1/2 · \d+:\d\d elapsed · ETA \S+", line) for line in lines), lines
    assert re.fullmatch(r"fitting biasedmf fold 2/2 · 2/2 · done in \d+:\d\d", lines[-1])
    assert "RMSE" in out and "elapsed" not in out  # results on stdout, progress on stderr only


def test_quiet_writes_no_progress(ratings_log):
    code, out, err = cli("--quiet", *CV[:2], ratings_log, *CV[2:])
    assert code == 0
    assert err == "" and "RMSE" in out


def test_lines_carry_the_epoch_the_validation_score_and_the_time_left(monkeypatch, capsys):
    monkeypatch.setattr(render, "LINE_EVERY", 0.05)
    with render.Display("lines") as bar:
        task = bar.add_task("fitting biasedmf")
        bar.update(task, status=TrainingStatus(epoch=4, epochs=20, value=-0.93, best=-0.92, seconds=8.0))
        time.sleep(1.3)  # the ticker looks at least once a second; a line is due every LINE_EVERY
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"fitting biasedmf: epoch 4/20 · valid -0.9300 \(best -0.9200\) · \d+:\d\d elapsed · ETA ≤ 32s",
                        lines[0]), lines
    assert lines[-1].startswith("fitting biasedmf: epoch 4/20") and "done in" in lines[-1]


def test_a_new_phase_clears_the_training_status_and_steps_give_the_eta(capsys):
    with render.Display("lines") as bar:
        task = bar.add_task("models", total=4)
        bar.update(task, description="fitting bpr", status=TrainingStatus(2, 10, 0.1, 0.1, 1.0))
        bar.update(task, description="evaluating bpr")
        assert bar.tasks[task].status is None
        bar.advance(task)
    first = capsys.readouterr().err.splitlines()[0]
    assert re.fullmatch(r"evaluating bpr · 1/4 · 0:00 elapsed · ETA \S+", first), first


def test_many_steps_are_not_a_line_each(capsys):
    with render.Display("lines") as bar:
        task = bar.add_task("episodes", total=1000)
        for _ in range(1000):
            bar.advance(task)
    assert capsys.readouterr().err.splitlines() == ["episodes · 1,000/1,000 · done in 0:00"]


def test_quiet_and_the_bar_write_no_lines(capsys):
    for mode in ("quiet", "bar"):
        with render.Display(mode) as bar:
            task = bar.add_task("work", total=2)
            bar.advance(task)
            bar.update(task, status=TrainingStatus(1, 2, 0.0, 0.0, 1.0))
    assert "elapsed" not in capsys.readouterr().err


@pytest.mark.parametrize("seconds, clock, span", [(0, "0:00", "0s"), (41.7, "0:41", "42s"), (70, "1:10", "1m10s"),
                                                  (3723, "1:02:03", "1h02m")])
def test_time_is_written_for_people(seconds, clock, span):
    assert (render.clock(seconds), render.duration(seconds)) == (clock, span)


def test_llm_check_says_what_it_waits_for(monkeypatch):
    from tests.llm.scripted import ScriptedServer, completion

    with ScriptedServer(lambda n, body: (200, completion("ready"), 0.0)) as server:
        monkeypatch.setenv("PENCHANT_LLM_URL", server.url)
        code, out, err = cli("llm", "check")
        assert code == 0, err
        assert re.fullmatch(r"one round trip · done in \d+:\d\d\n", err) and "ready" in out
        code, out, err = cli("--quiet", "llm", "check")
        assert code == 0 and err == ""
