"""Constrained composite proxy rewards (Moskovitz et al. 2024) in the long-term world over ML-100K tastes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from penchant.simulate.constrained import COMPONENTS, multiplier_step, proxy_points, rollout, train
from tests.conftest import cli


@pytest.fixture(scope="module")
def small(worlds):
    return replace(worlds, sizes={"train": 20, "valid": 20, "test": 20})


def test_multipliers_rise_while_violated_and_fall_to_zero_while_slack():
    mu = np.zeros(2)
    mu = multiplier_step(mu, np.array([0.6, 0.1]), np.array([0.5, 0.2]), rate=1.0)
    np.testing.assert_allclose(mu, [0.2, 0.0])  # (0.6 − 0.5) / 0.5; the slack one stays at 0
    mu = multiplier_step(mu, np.array([0.45, 0.1]), np.array([0.5, 0.2]), rate=1.0)
    np.testing.assert_allclose(mu, [0.1, 0.0])


def test_proxy_points_are_the_components_where_satisfaction_peaked():
    history = [{"components": [0.5, 0.1, 0.2], "satisfaction": 0.4}, {"components": [0.6, 0.2, 0.3], "satisfaction": 0.7},
               {"components": [0.4, 0.3, 0.5], "satisfaction": 0.5}]
    tau, peak = proxy_points(history)
    assert peak == 1 and tau.tolist() == [0.6, 0.2, 0.3]


def test_rollout_components_are_what_the_platform_logged(small):
    world = small("test", 3)
    r = rollout(world, small.scores, np.zeros(4), steps=8, seed=3)
    assert r.components.shape == (len(COMPONENTS),)
    assert r.components[0] == pytest.approx(r.clicks / 8)  # clicks per user and step
    assert 0 < r.components[1] <= r.components[0]  # a click's novelty is at most 1
    assert 0 < r.components[2] <= 1 and 0 <= r.satisfaction <= 1


def test_the_multiplier_of_a_violated_constraint_rises_and_unbounded_ones_stay_zero(small):
    start = rollout(small("valid", 7), small.scores, np.zeros(4), steps=8, seed=7).components
    tau = np.array([1e6, 1e6, 0.5 * start[2]])  # list novelty held to half of where the policy starts
    _, history = train(small, small.scores, np.array([1.0, 0.0, 4.0]), thresholds=tau, iterations=3, pairs=1, steps=8)
    mu = np.array([h["multipliers"] for h in history])
    assert (mu[:, :2] == 0).all()  # unbounded constraints never bind
    assert np.all(np.diff(mu[:, 2]) > 0)  # violated every round: its multiplier only rises
    _, free = train(small, small.scores, np.array([1.0, 0.0, 4.0]), iterations=3, pairs=1, steps=8)
    assert all(h["multipliers"] == [0.0, 0.0, 0.0] for h in free)


def test_constrained_cli_writes_runs_and_refuses_unknown_components(tmp_path, shared_data):
    out = tmp_path / "c.json"
    code, text, err = cli("simulate", "constrained", "--seeds", "1", "--iterations", "2", "--steps", "5", "--users", "20",
                          "--train-users", "10", "--json", str(out), "--plot", str(tmp_path / "c.png"))
    assert code == 0, err
    got = json.loads(out.read_text())
    (run,) = got["runs"]
    assert len(run["fixed"]) == len(run["constrained"]) == len(run["targets"]) == 3 and len(run["thresholds"]) == len(COMPONENTS)
    assert set(got["test"]) == {"recommender alone", "fixed weights", "fixed weights at its peak", "constrained", "targets"}
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "proxy points" in text
    code, _, err = cli("simulate", "constrained", "--weights", "likes=1")
    assert code != 0 and "likes" in err


def test_targets_push_a_component_under_its_point_up(small):
    start = rollout(small("valid", 7), small.scores, np.zeros(4), steps=8, seed=7).components
    tau = start * np.array([1.0, 1.0, 2.0])  # list novelty's point at twice where the policy starts
    _, history = train(small, small.scores, np.zeros(3), thresholds=tau, targets=True, iterations=3, pairs=1, steps=8)
    lam = np.array([h["multipliers"] for h in history])
    assert np.all(np.diff(lam[:, 2]) > 0)  # under its point every round: its weight only rises
    assert history[-1]["components"][2] > start[2]
