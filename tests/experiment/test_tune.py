"""Tuning with Optuna: trials are recorded, the best is refitted, gradient runs can be pruned."""

from __future__ import annotations

import pytest

from penchant.errors import ConfigError
from penchant.experiment.tune import tune


def test_tune_itemknn_records_trials_and_refits(ml100k_split):
    sp = ml100k_split
    result = tune("itemknn", sp.train, sp.valid, trials=6, seed=1)
    assert len(result.trials) == 6 and all(t["state"] == "complete" for t in result.trials)
    assert result.best_value == max(t["value"] for t in result.trials)
    best = next(t for t in result.trials if t["value"] == result.best_value)
    assert best["params"] == result.best_params
    assert result.best_model.k == result.best_params["k"]
    again = tune("itemknn", sp.train, sp.valid, trials=6, seed=1)
    assert again.best_params == result.best_params  # seeded search


def test_tune_prunes_gradient_runs():
    from penchant.data.synthetic import exposure_biased_world

    w = exposure_biased_world(n_users=150, n_items=100, seed=0)
    result = tune("bpr", w.train, w.valid, trials=8, seed=0, fixed={"epochs": 12, "eval_every": 1, "patience": 12})
    states = [t["state"] for t in result.trials]
    assert "pruned" in states and "complete" in states
    assert all(t["params"]["epochs"] == 12 for t in result.trials)


def test_tune_rating_model_uses_rmse(ml100k_split):
    result = tune("biasedmf", ml100k_split.train, ml100k_split.valid, trials=2, seed=0, fixed={"epochs": 4})
    assert result.metric == "-rmse" and -1.2 < result.best_value < -0.85


def test_nothing_to_tune():
    from penchant.data.synthetic import exposure_biased_world

    w = exposure_biased_world(n_users=30, n_items=20, seed=0)
    with pytest.raises(ConfigError, match="nothing to tune"):
        tune("pop", w.train, w.valid, trials=1)
