"""One task per family: every registered file-learning model has one, and a family's task reads,
fits and judges the same way for every caller (CLI, tune, the service)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.errors import ConfigError
from penchant.experiment.tasks import FILE_FAMILIES, TASKS, PreferenceTask, task_for
from penchant.models.registry import FAMILIES, entry, model_names
from tests.conftest import cli, write


def test_every_model_that_learns_from_files_has_its_family_s_task():
    for family in FILE_FAMILIES:
        for name in model_names(family):
            assert family in task_for(name).families and task_for(name) is TASKS[entry(name).family]
    with pytest.raises(ConfigError, match="is a conversation model"):
        task_for("maxent")


def test_every_family_has_its_task_found_by_name():
    """Conversation and simulator policies too: their tasks are plug-ins from the layers above."""
    for family in FAMILIES:
        for name in model_names(family):
            assert family in task_for(name, (family,)).families
    assert TASKS["conversation"].service_kind is None and TASKS["slate"].service_kind is None


def test_a_slate_task_reads_a_world_fits_and_tests_a_policy():
    task = task_for("best", ("slate",))
    world = task.read(users=20, items=10, slate_size=2, seed=1)
    best, _ = task.test(task.fit("best", {}, world), world, rounds=300, batch=10, seed=1)
    uniform, line = task.test(task.fit("uniform", {}, world), world, rounds=300, batch=10, seed=1)
    assert best["regret"] == 0 and best["late_share_of_best"] == pytest.approx(1.0)
    assert uniform["regret"] > 0 and uniform["late_share_of_best"] < 1 and "regret" in line
    with pytest.raises(ConfigError, match="reads no file"):
        task.read("log.csv")


def _trl(path, prompts: range, seed: int):
    """TRL rows: each prompt has two replies; the longer one wins with probability 0.8."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in prompts:
        short, long = f"no {p}", f"yes of course, here is a full answer to question {p}"
        chosen, rejected = (long, short) if rng.random() < 0.8 else (short, long)
        rows.append(json.dumps({"prompt": f"question {p}?", "chosen": chosen, "rejected": rejected}))
    return write(path, "\n".join(rows) + "\n")


def test_the_validation_carve_out_does_not_depend_on_a_test_file_read_beside(tmp_path):
    """`prefs fit` + `prefs score` and `prefs evaluate` on the same files agree: the 10% of training
    prompts set apart for validation are the same whether or not the test file shares the vocabulary."""
    train = _trl(tmp_path / "train.jsonl", range(0, 120), seed=1)
    test = _trl(tmp_path / "test.jsonl", range(1000, 1040), seed=2)
    task = PreferenceTask()
    alone, beside = task.read(train, seed=3), task.read(train, test=test, seed=3)
    assert len(alone.valid) == len(beside.valid) == 12
    assert sorted(alone.valid.option_context[alone.valid.winner]) == sorted(beside.valid.option_context[beside.valid.winner])
    code, _, err = cli("prefs", "fit", "--train", train, "--model", "bt", "--param", "features=length", "--seed", "3",
                       "--out", tmp_path / "m.npz")
    assert code == 0, err
    code, _, err = cli("prefs", "score", "--model-path", tmp_path / "m.npz", "--pairs", test, "--json", tmp_path / "s.json")
    assert code == 0, err
    code, _, err = cli("prefs", "evaluate", "--train", train, "--test", test, "--model", "bt", "--param", "features=length",
                       "--seed", "3", "--json", tmp_path / "e.json")
    assert code == 0, err
    scored = json.loads((tmp_path / "s.json").read_text())
    evaluated = json.loads((tmp_path / "e.json").read_text())
    assert scored["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-9)


def test_a_validation_set_with_nothing_new_is_refused_not_judged_as_nan():
    """Validation interactions all inside the training data leave no user to judge: a search would
    compare NaNs (it used to end in optuna's traceback); the task's judge says so, naming the set."""
    from penchant.errors import DataError
    from tests.conftest import tiny_log

    train = tiny_log()
    with pytest.raises(DataError, match="no user of .* can be judged"):
        task_for("itemknn").judge(train, train)
