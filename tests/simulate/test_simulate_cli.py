"""`penchant simulate run` and `compare`, in-process, on ML-100K tastes (small populations)."""

from __future__ import annotations

import json

from tests.conftest import cli


def test_simulate_run_writes_every_result_with_intervals(tmp_path, shared_data):
    out = tmp_path / "run.json"
    code, text, err = cli("simulate", "run", "--policy", "trained", "--users", "60", "--steps", "15", "--iterations", "1",
                          "--train-users", "10", "--param", "novelty_weight=3", "--json", str(out),
                          "--plot", str(tmp_path / "run.png"))
    assert code == 0, err
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    got = json.loads(out.read_text())
    assert got["world_params"]["novelty_weight"] == 3.0 and got["steps"] == 15 and got["users"] == 60
    for signal in ("click", "watch", "like", "share"):
        stat = got["return"][signal]
        assert stat["ci"][0] <= stat["mean"] <= stat["ci"][1]
    for key in ("retention", "active_share", "novelty", "creator_survival"):
        assert 0 <= got[key]["mean"] <= 1
    assert got["fraction_of_best"]["click"] > 0 and len(got["training"]["theta"]) == 6
    assert "trained" in text and "of oracle" in text


def test_simulate_compare_plots_and_refuses_what_it_cannot_do(tmp_path, shared_data):
    code, text, err = cli("simulate", "compare", "--policy", "greedy-recommender", "--policy", "oracle", "--users", "40",
                          "--steps", "12", "--json", str(tmp_path / "c.json"), "--plot-dir", str(tmp_path / "plots"))
    assert code == 0, err
    assert set(json.loads((tmp_path / "c.json").read_text())["policies"]) == {"greedy-recommender", "oracle"}
    for name in ("return_over_time.png", "retention.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("simulate", "run", "--policy", "magic")
    assert code != 0 and "magic" in err
    code, _, err = cli("simulate", "run", "--policy", "constrained", "--users", "10", "--steps", "2")
    assert code != 0 and "--floor" in err
    code, _, err = cli("simulate", "run", "--policy", "greedy-recommender", "--param", "boredom=2", "--users", "10",
                       "--steps", "2")
    assert code != 0 and "unknown world parameter 'boredom'" in err


def test_simulate_runs_the_actor_critics_from_the_command_line(tmp_path, shared_data):
    out = tmp_path / "ac.json"
    code, text, err = cli("simulate", "compare", "--policy", "actor-critic", "--policy", "tscac", "--policy", "hierarchical",
                          "--policy", "decision-transformer",
                          "--floor", "novelty:0.3",
                          "--users", "30", "--steps", "15", "--ac-iterations", "2", "--train-users", "10",
                          "--kl-weight", "0.5", "--dt-steps", "100", "--json", str(out))
    assert code == 0, err
    got = json.loads(out.read_text())["policies"]
    assert set(got["tscac"]["training"]["records"]) == {"stage one: novelty", "stage two"}
    stage_two = got["tscac"]["training"]["records"]["stage two"]
    assert sum(r.get("selected", False) for r in stage_two) == 1 and len(stage_two) == 2
    assert len(got["actor-critic"]["training"]["actor"]) == 6   # θ's weights: 6 features × 8 state inputs
    assert len(got["actor-critic"]["training"]["actor"][0]) == 8
    assert "floor" in got["tscac"] and "tscac" in text
    assert len(got["hierarchical"]["training"]["iterations"]) == 2
    intent = got["hierarchical"]["intent"]   # the high level's agreement with the hidden session mode
    assert 0 <= intent["chance"] <= 1 and intent["lists"] > 0 and "hierarchical: intent agrees" in " ".join(text.split())
    assert set(intent["clicks"]) == {"inferred", "always familiar", "always novel"}
    assert len(got["decision-transformer"]["training"]["target"]) == 2
    code, _, err = cli("simulate", "run", "--policy", "tscac", "--users", "10", "--steps", "2")
    assert code != 0 and "--floor" in err
    code, _, err = cli("simulate", "run", "--policy", "tscac", "--floor", "joy:0.3", "--users", "10", "--steps", "2")
    assert code != 0 and "joy:0.3" in err and "signal" in err


def test_simulate_slate_runs_the_bandit_policies(tmp_path):
    out, plot = tmp_path / "slate.json", tmp_path / "regret.png"
    code, text, err = cli("simulate", "slate", "--policy", "uniform", "--policy", "best", "--policy", "beta-thompson",
                          "--policy", "gru-thompson", "--policy", "linucb", "--users", "20", "--items", "10",
                          "--rounds", "600", "--batch", "50", "--json", str(out), "--plot", str(plot))
    assert code == 0, err
    got = json.loads(out.read_text())
    assert got["world"] == {"users": 20, "items": 10, "slate_size": 3, "dim": 4, "choice": "logit", "rounds": 600,
                            "batch": 50, "seed": 0}
    policies = got["policies"]
    assert policies["best"]["regret"] == 0.0 and policies["best"]["late_share_of_best"] == 1.0
    assert policies["uniform"]["regret_slope"] > 0.9 and policies["uniform"]["late_share_of_best"] < 1.0
    assert 0 < policies["gru-thompson"]["clicks_per_list"] <= 1   # a logit world: at most one click per list
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "gru-thompson" in text
    code, _, err = cli("simulate", "slate", "--policy", "oracle")
    assert code != 0 and "oracle" in err
    code, _, err = cli("simulate", "slate", "--policy", "uniform", "--items", "2", "--slate-size", "3")
    assert code != 0 and "--slate-size 3" in err
