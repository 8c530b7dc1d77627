"""Fair exposure: the impression-variance gap (shuffle distance), the VRS-style controller, `penchant fairness`."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from penchant.errors import ConfigError
from penchant.eval.exposure import exposure_gap, impression_counts, shuffle_distance
from penchant.simulate.campaigns import campaign_world, deliver, sweep, synthetic_campaign_world
from tests.conftest import cli


def test_shuffle_distance_by_hand():
    delivered = np.array([[3.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    eligible = np.array([[1.0, 1.0], [2.0, 2.0], [1.0, 4.0]])
    # campaign 0: delivered (.75, .25) against (.5, .5) -> .25; campaign 1 not delivered; campaign 2: (.5, .5) against (.2, .8) -> .3
    gap = shuffle_distance(delivered, eligible)
    assert gap[0] == pytest.approx(0.25) and np.isnan(gap[1]) and gap[2] == pytest.approx(0.3)
    g = exposure_gap(delivered, eligible, threshold=0.25)
    assert g.weighted == pytest.approx((0.25 * 4 + 0.3 * 2) / 6)
    assert g.mean == pytest.approx(0.275)
    assert g.within == pytest.approx(4 / 6)
    # counts from an impression log (campaign, viewer's group) match the table above
    log_c, log_g = np.array([0, 0, 0, 0, 2, 2]), np.array([0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(impression_counts(log_c, log_g, 3, 2), delivered)
    assert shuffle_distance(np.array([[2.0, 6.0]]), np.array([[1.0, 3.0]]))[0] == pytest.approx(0.0)
    with pytest.raises(ConfigError):
        shuffle_distance(delivered, eligible[:2])


@pytest.fixture(scope="module")
def small_sweep():
    world = synthetic_campaign_world(300, 6, groups=3, skew=1.0, seed=0)
    return world, sweep(world, [1.0, 4.0, 16.0], rounds=40, arrivals=100, seed=0)


def test_controller_closes_the_gap_monotonically_at_a_cost(small_sweep):
    world, rows = small_sweep
    gaps = [r["gap"]["group"] for r in rows]
    assert [r["knob"] for r in rows] == [0.0, 1.0, 4.0, 16.0]
    assert gaps[0] > 0.2  # the groups' different engagement skews plain delivery
    assert all(a > b for a, b in itertools.pairwise(gaps)), gaps
    assert gaps[-1] < 0.35 * gaps[0]
    lost = [r["value_lost"] for r in rows]
    assert lost[0] == 0.0 and all(v >= 0 for v in lost) and lost[-1] > 0
    assert all(r["impressions"] == rows[0]["impressions"] for r in rows)  # re-ranked, not withheld
    # without engagement differences between groups plain delivery is already close to the audience
    flat = deliver(synthetic_campaign_world(300, 6, groups=3, skew=0.0, seed=0), rounds=40, arrivals=100)
    assert flat.gaps["group"].weighted < 0.5 * gaps[0]
    # a noisy (privacy-preserving) measurement of the delivered counts still closes most of the gap
    noisy = deliver(world, 4.0, rounds=40, arrivals=100, measurement_noise=5.0)
    assert noisy.gaps["group"].weighted < 0.6 * gaps[0]


def test_ml100k_world_and_command(ml100k, ml100k_dir, tmp_path):
    world = campaign_world(ml100k)
    assert world.group_names["gender"] == ("F", "M") and "25-34" in world.group_names["age"]
    assert world.ctr.shape == (ml100k.n_users, world.n_campaigns) and 0 < world.eligible.mean() < 1
    r = cli("fairness", ml100k_dir, "--knob", 2, "--rounds", 40, "--json", tmp_path / "f.json",
            "--plot", tmp_path / "f.png")
    assert r.returncode == 0, r.stderr
    assert "gap gender" in r.stdout and "value lost" in r.stdout
    rows = json.loads((tmp_path / "f.json").read_text())["sweep"]
    assert [x["knob"] for x in rows] == [0.0, 2.0]
    for a in ("gender", "age"):
        assert rows[1]["gap"][a] < 0.6 * rows[0]["gap"][a]
    assert rows[1]["value_lost"] > 0
    assert (tmp_path / "f.png").stat().st_size > 0
    bad = cli("fairness", ml100k_dir, "--attribute", "race", "--rounds", 2)
    assert bad.returncode != 0 and "race" in bad.stderr
