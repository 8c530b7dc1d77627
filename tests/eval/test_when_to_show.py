"""When to show a suggestion (CDHF): the display rule, the history features, the cascade on a planted
log, and `penchant when-to-show` on a simulated log and on a service dump."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.data.bandit_logs import bandit_log
from penchant.errors import ConfigError
from penchant.eval.when_to_show import (
    curve_area,
    hide_curve,
    log_features,
    operating_point,
    show,
    threshold,
    when_to_show,
)
from tests.conftest import cli


def test_the_display_rule_shows_when_expected_gain_beats_expected_cost():
    assert threshold(1.0) == 0.5 and threshold(0.25) == pytest.approx(0.2) and threshold(0.5, gain=2.0) == pytest.approx(0.2)
    # p = 0.3, cost 0.5: 0.3 · 1 − 0.7 · 0.5 = −0.05 < 0 → hide; p = 0.35: 0.35 − 0.325 > 0 → show
    assert show(np.array([0.3, 0.35, 0.0, 1.0]), cost=0.5).tolist() == [False, True, False, True]
    assert show(np.array([0.0, 1e-9]), cost=0.0).tolist() == [False, True]  # free to show: anything with a chance
    with pytest.raises(ConfigError):
        threshold(-1.0)
    # two accepted, three rejected; showing the first accepted and one rejected one
    point = operating_point(np.array([1, 1, 0, 0, 0]), np.array([1, 0, 1, 0, 0], bool), cost=0.5)
    assert point == pytest.approx({"rejections_avoided": 2 / 3, "acceptances_lost": 0.5, "display_rate": 0.4,
                                   "utility": (1 - 0.5) / 5, "utility_show_all": (2 - 1.5) / 5})
    lost, avoided = hide_curve(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.9]))
    assert lost.tolist() == [0, 0, 0.5, 0.5, 1] and avoided.tolist() == [0, 0.5, 0.5, 1, 1]
    assert curve_area(lost, avoided) == pytest.approx(0.75) and curve_area(np.linspace(0, 1, 5), np.linspace(0, 1, 5)) == 0.5


def test_history_features_count_only_earlier_lists():
    # rounds 0..3: u0 sees a (accepts), u1 sees a (rejects), u0 sees b then a (rejects both), u0 sees a
    log = bandit_log([0, 1, 2, 2, 3], ["u0", "u1", "u0", "u0", "u0"], ["a", "a", "b", "a", "a"], [0, 0, 0, 1, 0],
                     [1, 0, 0, 0, 0], [1.0, 1.0, 0.5, 0.5, 1.0])
    context, suggestion, accepted = log_features(log)
    assert accepted.tolist() == [1, 0, 0, 0, 0]
    assert np.expm1(context[:, 1]).round().tolist() == [0, 0, 1, 1, 3]  # user's earlier shown items
    assert np.expm1(context[:, 2]).round().tolist() == [0, 0, 1, 1, 1]  # ... and acceptances
    assert np.expm1(context[:, 4]).round().tolist() == [1, 1, 1, 1, 2]  # lists since the last acceptance
    assert context[:, 5].tolist() == [1, 1, 0, 0, 0]  # never accepted before
    assert np.expm1(suggestion[:, 0]).round().tolist() == [0, 1, 0, 2, 3]  # item's earlier showings
    assert np.expm1(suggestion[:, 3]).round().tolist() == [0, 0, 0, 1, 2]  # this user shown this item before
    assert suggestion[:, 4] == pytest.approx(np.log([1.0, 1.0, 0.5, 0.5, 1.0]))


@pytest.fixture(scope="module")
def planted():
    """Users see 4 of 150 items per list; an item's acceptance probability is σ(−2 + 3·q) for a hidden
    quality q ~ N(0, 1), so its earlier acceptance rate (a logged feature) predicts acceptance."""
    rng = np.random.default_rng(3)
    rounds, k, n_items = 6000, 4, 150
    quality = rng.normal(size=n_items)
    users = rng.integers(0, 200, rounds)
    items = np.argsort(rng.random((rounds, n_items)), axis=1)[:, :k]
    accept = rng.random((rounds, k)) < 1 / (1 + np.exp(-(-2.0 + 3.0 * quality[items])))
    log = bandit_log(np.repeat(np.arange(rounds), k), np.repeat(users, k), items.ravel(), np.tile(np.arange(k), rounds),
                     accept.ravel().astype(float), np.full(rounds * k, k / n_items))
    return when_to_show(log, cost=0.5, seed=0)


def test_the_cascade_hides_most_rejections_and_few_acceptances(planted):
    cascade, rand = planted.points["cascade"], planted.points["random"]
    assert planted.tau == pytest.approx(1 / 3)
    assert cascade["rejections_avoided"] > 0.75 and cascade["acceptances_lost"] < 0.3, cascade
    # a random rule showing as often hides as many rejections as it loses acceptances
    assert rand["display_rate"] == pytest.approx(cascade["display_rate"], abs=0.02)
    assert abs(rand["rejections_avoided"] - rand["acceptances_lost"]) < 0.05
    assert cascade["rejections_avoided"] - cascade["acceptances_lost"] > rand["rejections_avoided"] - rand["acceptances_lost"] + 0.4
    assert cascade["utility"] > max(rand["utility"], cascade["utility_show_all"])
    # stage 2 sees the item's record, stage 1 only the user's: it ranks better
    assert planted.auc["stage2"] > 0.8 and planted.auc["stage2"] > planted.auc["stage1"] + 0.2
    assert planted.area["cascade"] > 0.8
    assert 0 <= planted.stage1_decided < 0.2  # stage 1 alone decides few (its threshold spends 2 % of acceptances)


def test_penchant_when_to_show_on_a_simulated_log_and_on_a_service_dump(tmp_path):
    code, out, err = cli("when-to-show", "--rounds", "3000", "--cost", "0.25", "--json", tmp_path / "r.json",
                         "--plot", tmp_path / "r.png")
    assert code == 0, err
    assert "slate world (300 users × 200 items" in out and "τ = 0.200" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["rows"]["test"] == 900 * 5 and result["area"]["cascade"] > 0.6
    assert (tmp_path / "r.png").stat().st_size > 0

    # a service dump: served lists, then clicks after them; the clicked items are the high-quality ones
    rng = np.random.default_rng(0)
    good = {f"i{i}" for i in range(0, 40, 3)}
    lines = [{"kind": "item", "id": f"i{i}"} for i in range(40)]
    for n in range(600):
        user, items = f"u{n % 30}", [f"i{i}" for i in rng.choice(40, 3, replace=False)]
        lines.append({"kind": "served", "list_id": f"l{n}", "user_id": user, "items": items,
                      "propensities": [0.1] * 3, "slate_propensity": 0.001, "policy": "greedy", "timestamp": 1000.0 + n})
        for item in items:
            if rng.random() < (0.6 if item in good else 0.08):
                lines.append({"kind": "event", "event_id": f"e{n}{item}", "user_id": user, "item_id": item,
                              "type": "click", "timestamp": 1000.5 + n})
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out, err = cli("when-to-show", str(dump), "--cost", "0.5", "--json", tmp_path / "d.json")
    assert code == 0, err
    result = json.loads((tmp_path / "d.json").read_text())
    assert "600 served lists, 1,800 shown suggestions" in out and result["rows"]["test"] == 180 * 3
    cascade = result["points"]["cascade"]
    assert cascade["rejections_avoided"] > 0.7 and cascade["acceptances_lost"] < 0.3, cascade

    code, out, err = cli("when-to-show", "--rounds", "100", "--cost", "-1")
    assert code != 0
