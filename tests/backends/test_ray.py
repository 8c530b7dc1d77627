"""The Ray backend against a real local cluster: a head node and a second worker node started by
``ray start`` as separate processes. Evaluation, batch scoring and tuning through it give exactly
what the local backend gives; the core never imports Ray unless asked."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import cli

pytestmark = pytest.mark.xdist_group("ray-cluster")  # one cluster, on one worker

def _node_of(shared: float, block: int) -> tuple[int, str]:
    import ray

    time.sleep(shared)  # long enough that the two CPUs, one on each node, both take blocks
    return block * block, ray.get_runtime_context().get_node_id()


def test_blocks_run_on_both_nodes_and_come_back_in_order(cluster):
    from ray import cloudpickle

    from penchant.backends import resolve

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the nodes cannot import this test file
    backend = resolve("ray", cluster)
    seen = []
    results = backend.map(_node_of, list(range(6)), 1.0, progress=seen.append)
    assert [r[0] for r in results] == [b * b for b in range(6)]
    assert len({r[1] for r in results}) == 2
    assert seen == list(range(1, 7))
    assert "2 node(s), 2 CPU(s)" in backend.describe()


def _without(payload: dict, *keys: str) -> dict:
    return {k: v for k, v in payload.items() if k not in keys}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["als", "ease"])  # implicit's factors; a dense item-item product
def test_evaluate_on_the_cluster_gives_the_local_metrics(cluster, split_files, tmp_path, model):
    files = ["--train", split_files / "train.tsv", "--valid", split_files / "valid.tsv",
             "--test", split_files / "test.tsv", "--model", model, "--k", "10", "--k", "20"]
    assert cli("evaluate", *files, "--backend", "local", "--json", tmp_path / "local.json").returncode == 0
    ran = cli("evaluate", *files, "--ray-address", cluster, "--json", tmp_path / "ray.json")
    assert ran.returncode == 0, ran.stderr
    assert "backend: ray at" in ran.stderr and "2 node(s)" in ran.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    on_ray = json.loads((tmp_path / "ray.json").read_text())
    assert on_ray["metrics"] == local["metrics"]  # exactly, not approximately
    assert _without(on_ray, "fit_seconds", "eval_seconds", "epoch_seconds") == \
        _without(local, "fit_seconds", "eval_seconds", "epoch_seconds")
    assert local["users_evaluated"] > 900


@pytest.mark.slow
def test_tune_on_the_cluster_runs_the_local_trials(cluster, split_files, tmp_path):
    files = ["--train", split_files / "train.tsv", "--valid", split_files / "valid.tsv",
             "--test", split_files / "test.tsv", "--model", "itemknn", "--trials", "4", "--k", "10"]
    assert cli("tune", *files, "--json", tmp_path / "local.json").returncode == 0
    ran = cli("tune", *files, "--backend", "ray", "--ray-address", cluster, "--json", tmp_path / "ray.json")
    assert ran.returncode == 0, ran.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    on_ray = json.loads((tmp_path / "ray.json").read_text())
    assert on_ray["best_params"] == local["best_params"]
    assert on_ray["best_value"] == local["best_value"]
    strip = [{k: t[k] for k in ("number", "params", "value", "state")} for t in local["trials"]]
    assert [{k: t[k] for k in ("number", "params", "value", "state")} for t in on_ray["trials"]] == strip
    assert len({json.dumps(t["params"], sort_keys=True) for t in local["trials"]}) == 4
    assert on_ray["test"]["metrics"] == local["test"]["metrics"]


def test_recommend_on_the_cluster_through_the_environment(cluster, split_files, tmp_path, monkeypatch):
    model = tmp_path / "knn.penchant"
    assert cli("fit", "--train", split_files / "train.tsv", "--model", "itemknn:k=50", "--out", model).returncode == 0
    users = sorted({line.split("\t")[0] for line in (split_files / "test.tsv").read_text().splitlines()[1:]})
    ids = tmp_path / "users.txt"
    ids.write_text("\n".join(users + ["someone-new"]) + "\n")
    args = ["recommend", "--model-path", model, "--users-file", ids, "--k", "15"]
    assert cli(*args, "--json", tmp_path / "local.json").returncode == 0
    monkeypatch.setenv("PENCHANT_RAY_ADDRESS", cluster)
    ran = cli(*args, "--json", tmp_path / "ray.json")
    assert ran.returncode == 0 and "backend: ray at" in ran.stderr, ran.stderr
    local = json.loads((tmp_path / "local.json").read_text())
    assert json.loads((tmp_path / "ray.json").read_text()) == local
    assert len(local["users"]) == len(users) + 1 and local["fallback"] == {"someone-new": "popular"}
    assert all(len(rows) == 15 for rows in local["users"].values())
    assert cli(*args, "--backend", "local", "--json", tmp_path / "forced.json").returncode == 0
    assert json.loads((tmp_path / "forced.json").read_text()) == local


def test_the_core_never_imports_ray():
    code = ("import sys; import penchant.cli.main, penchant.eval.evaluate, penchant.experiment.tune, "
            "penchant.experiment.answers, penchant.backends; from penchant.cli.main import main\n"
            "try:\n    main(['models'])\nexcept SystemExit:\n    pass\n"
            "print('ray' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "PENCHANT_RAY_ADDRESS"})
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("args, words", [
    (["--backend", "spark"], "backend 'spark' is not one of local, ray"),
    (["--backend", "local", "--ray-address", "10.0.0.1:6379"], "a Ray address was given with the local backend"),
])
def test_a_wrong_backend_choice_is_one_line_and_exit_2(split_files, args, words):
    ran = cli("evaluate", "--train", split_files / "train.tsv", "--test", split_files / "test.tsv",
              "--model", "pop", *args)
    assert ran.returncode == 2 and words in ran.stderr, ran.stderr


def test_blocks_on_the_local_backend_are_the_unchunked_answer(ml100k_split, monkeypatch):
    """Evaluation split into many blocks (one user each) on the local backend gives what one block gives."""
    E = importlib.import_module("penchant.eval.evaluate")
    from penchant.models.registry import create

    train, test = ml100k_split.train, ml100k_split.test
    model = create("itemknn", k=40).fit(train)
    whole = E.evaluate(model, train, test, ks=[10], beyond_accuracy=False)
    monkeypatch.setattr(E, "chunk_size", lambda n_items, **_: 7)
    blocky = E.evaluate(model, train, test, ks=[10], beyond_accuracy=False)
    np.testing.assert_array_equal(whole.per_user["ndcg@10"], blocky.per_user["ndcg@10"])
