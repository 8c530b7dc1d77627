"""Off-policy estimators: hand-computed values, Open Bandit Pipeline's values on the same data,
interval coverage on simulator logs, and the ``penchant ope`` contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from obp.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
    SlateIndependentIPS,
    SlateStandardIPS,
    SwitchDoublyRobust,
)

from penchant.data.bandit_logs import Target, bandit_log, read_bandit_log, target_from_file
from penchant.errors import DataError
from penchant.eval.ope import ESTIMATORS, estimate
from penchant.eval.reward_models import CellMeans
from tests.conftest import cli, write


def _tiny() -> tuple:
    """Two rounds of two slots. Round a: user u saw x (μ .5, π .25) then y (μ .5, π 1), clicked y.
    Round b: user v saw y (μ .25, π .5) then x (μ 1, π 0), clicked y."""
    log = bandit_log(["a", "a", "b", "b"], ["u", "u", "v", "v"], ["x", "y", "y", "x"], [0, 1, 0, 1],
                     [0, 1, 1, 0], [0.5, 0.5, 0.25, 1.0])
    code = {v: i for i, v in enumerate(log.item_ids)}
    # per slot: round a slot 0 {x: .25, y: .75}, slot 1 {y: 1}; round b slot 0 {y: .5, x: .5}, slot 1 {y: 1}
    rows = [0, 0, 1, 2, 2, 3]
    items = [code["x"], code["y"], code["y"], code["y"], code["x"], code["y"]]
    probs = [0.25, 0.75, 1.0, 0.5, 0.5, 1.0]
    return log, Target(np.array(rows), log.item_ids, np.array(items), np.array(probs))


def test_estimators_match_hand_computed_values():
    log, target = _tiny()
    got = {k: v.value for k, v in estimate(log, target, ESTIMATORS, n_bootstrap=10).items()}
    # slot weights: a: .25/.5 = .5, 1/.5 = 2; b: .5/.25 = 2, 0/1 = 0. Round weights W: a 1, b 0.
    assert got["ips"] == pytest.approx((1 * 1 + 0 * 1) / 2)
    assert got["snips"] == pytest.approx(1.0)
    assert got["iips"] == pytest.approx(((0.5 * 0 + 2 * 1) + (2 * 1 + 0 * 0)) / 2)
    assert got["pi"] == pytest.approx(((0.5 + 2 - 1) * 1 + (2 + 0 - 1) * 1) / 2)
    # reward model "item": global mean .5; position means shrink to it with α = 1:
    # slot 0 rewards (0, 1) -> (1 + .5)/(2 + 1) = .5; slot 1 rewards (1, 0) -> .5.
    # (x, slot 0): one 0 -> (0 + .5)/2 = .25; (y, slot 0): one 1 -> .75; (y, 1): one 1 -> .75; (x, 1): one 0 -> .25
    q = {("x", 0): 0.25, ("y", 0): 0.75, ("y", 1): 0.75, ("x", 1): 0.25}
    dm_a = 0.25 * q["x", 0] + 0.75 * q["y", 0] + q["y", 1]
    dm_b = 0.5 * q["y", 0] + 0.5 * q["x", 0] + q["y", 1]
    assert got["dm"] == pytest.approx((dm_a + dm_b) / 2)
    corr_a = 0.5 * (0 - q["x", 0]) + 2 * (1 - q["y", 1])
    corr_b = 2 * (1 - q["y", 0]) + 0 * (0 - q["x", 1])
    assert got["dr"] == pytest.approx((dm_a + dm_b + corr_a + corr_b) / 2)
    switch = estimate(log, target, "switch-dr", tau=1.0, n_bootstrap=10)["switch-dr"].value
    assert switch == pytest.approx((dm_a + dm_b + 0.5 * (0 - q["x", 0]) + 0) / 2)


def _bandit_data(seed: int, n: int = 3000, n_actions: int = 6, n_users: int = 9, slots: int = 1):
    """Rounds with a stochastic logging policy per slot and a stochastic target, as penchant and obp take them."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    mu = rng.dirichlet(np.ones(n_actions), size=(n, slots))
    actions = (mu.cumsum(axis=2) < rng.random((n, slots, 1))).sum(axis=2)
    rewards = rng.binomial(1, 0.1 + 0.5 * (actions == users[:, None] % n_actions) / (1 + np.arange(slots)))
    pi = rng.dirichlet(np.ones(n_actions), size=(n, slots))
    # item ids "a0".."a5" sort in index order, so the log's item codes are the action indices
    names = np.array([f"a{i}" for i in range(n_actions)])
    log = bandit_log(np.repeat(np.arange(n), slots), np.repeat(users, slots), names[actions.ravel()],
                     np.tile(np.arange(slots), n), rewards.ravel(),
                     np.take_along_axis(mu, actions[:, :, None], axis=2).ravel())
    assert list(log.item_ids) == list(names) and (log.rounds == np.repeat(np.arange(n), slots)).all()
    target = Target(np.repeat(np.arange(n * slots), n_actions), log.item_ids, np.tile(np.arange(n_actions), n * slots),
                    pi.ravel())
    return log, target, actions, rewards, mu, pi


@pytest.mark.parametrize("reward_model", ["item", "user-item"])
def test_bandit_estimators_equal_open_bandit_pipeline(reward_model):
    log, target, actions, rewards, mu, pi = _bandit_data(0)
    n, n_actions = pi.shape[0], pi.shape[2]
    ours = estimate(log, target, ("ips", "snips", "dm", "dr", "switch-dr"), reward_model=reward_model,
                    n_bootstrap=20, tau=2.0)
    model = CellMeans(log.users, log.items, log.position, log.reward, np.repeat(log.users, n_actions),
                      np.tile(np.arange(n_actions), n), np.zeros(n * n_actions, np.int64), reward_model)
    q = model.predict(np.ones((1, n)))[0][model.query_index].reshape(n, n_actions, 1)
    kw = dict(reward=rewards[:, 0].astype(float), action=actions[:, 0], pscore=log.propensity, action_dist=pi.reshape(n, n_actions, 1),
              estimated_rewards_by_reg_model=q, position=np.zeros(n, int))
    theirs = {"ips": InverseProbabilityWeighting(), "snips": SelfNormalizedInverseProbabilityWeighting(),
              "dm": DirectMethod(), "dr": DoublyRobust(), "switch-dr": SwitchDoublyRobust(tau=2.0)}
    for name, est in theirs.items():
        assert ours[name].value == pytest.approx(est.estimate_policy_value(**kw), abs=1e-6), name


def test_slate_estimators_equal_open_bandit_pipeline():
    slots = 3
    log, target, actions, rewards, mu, pi = _bandit_data(1, n=2000, slots=slots)
    n, n_actions = pi.shape[0], pi.shape[2]
    ours = estimate(log, target, ("ips", "iips", "dm", "dr"), n_bootstrap=20)
    taken_mu = np.take_along_axis(mu, actions[:, :, None], axis=2)[:, :, 0]
    taken_pi = np.take_along_axis(pi, actions[:, :, None], axis=2)[:, :, 0]
    slate = dict(slate_id=np.repeat(np.arange(n), slots), reward=rewards.ravel().astype(float),
                 position=np.tile(np.arange(slots), n))
    sips = SlateStandardIPS(len_list=slots).estimate_policy_value(
        **slate, pscore=np.repeat(taken_mu.prod(axis=1), slots), evaluation_policy_pscore=np.repeat(taken_pi.prod(axis=1), slots))
    iips = SlateIndependentIPS(len_list=slots).estimate_policy_value(
        **slate, pscore_item_position=taken_mu.ravel(), evaluation_policy_pscore_item_position=taken_pi.ravel())
    assert ours["ips"].value == pytest.approx(sips, abs=1e-6)
    assert ours["iips"].value == pytest.approx(iips, abs=1e-6)
    # obp's position-aware DM/DR average over (round, slot) rows; ours sum a round's slots
    model = CellMeans(log.users, log.items, log.position, log.reward, np.repeat(log.users, n_actions),
                      np.tile(np.arange(n_actions), n * slots), np.repeat(log.position, n_actions), "item")
    q_rows = model.predict(np.ones((1, n * slots)))[0][model.query_index].reshape(n * slots, n_actions)
    q = np.zeros((n * slots, n_actions, slots))
    dist = np.zeros((n * slots, n_actions, slots))
    q[:] = q_rows[:, :, None]  # obp reads only each row's own slot; every slot must hold a distribution
    dist[:] = pi.reshape(n * slots, n_actions)[:, :, None]
    kw = dict(reward=log.reward, action=actions.ravel(), pscore=log.propensity, action_dist=dist, position=log.position,
              estimated_rewards_by_reg_model=q)
    assert ours["dm"].value == pytest.approx(slots * DirectMethod().estimate_policy_value(**kw), abs=1e-6)
    assert ours["dr"].value == pytest.approx(slots * DoublyRobust().estimate_policy_value(**kw), abs=1e-6)


def test_a_target_that_never_agrees_with_the_logs():
    log, _ = _tiny()
    never = Target(np.arange(4), log.item_ids, 1 - log.items, np.ones(4))  # always the other of the two items
    got = estimate(log, never, ("ips", "iips"), n_bootstrap=20)
    assert got["ips"].value == 0.0 and got["ips"].ci == (0.0, 0.0) and got["ips"].effective_sample_size == 0.0
    with pytest.raises(DataError, match="snips is undefined"):
        estimate(log, never, "snips", n_bootstrap=20)


def test_same_seed_same_interval_and_resamples_differ_by_seed():
    log, target, *_ = _bandit_data(2, n=500)
    a = estimate(log, target, "dr", n_bootstrap=200, seed=3)["dr"]
    b = estimate(log, target, "dr", n_bootstrap=200, seed=3)["dr"]
    c = estimate(log, target, "dr", n_bootstrap=200, seed=4)["dr"]
    assert a == b and a.ci != c.ci and a.value == c.value
    assert a.ci[0] < a.value < a.ci[1]


def test_reading_logs_and_targets_names_the_bad_line(tmp_path):
    good = "round,user,item,position,reward,propensity\nr1,u,x,0,1,0.5\nr1,u,y,1,0,0.25\n"
    log = read_bandit_log(write(tmp_path / "log.csv", good))
    assert log.n_rounds == 1 and len(log) == 2
    cases = {
        "round,user,item,position,reward,propensity\nr1,u,x,0,1,0\n": ("propensity", 2, "outside (0, 1]"),
        "round,user,item,position,reward,propensity\nr1,u,x,0,1,.5\nr1,u,y,0,0,.5\n": ("position", 3, "two rows at position 0"),
        "round,user,item,position,reward,propensity\nr1,u,x,0,1,.5\nr1,v,y,1,0,.5\n": ("user", 3, "two users"),
        "round,user,item,position,reward,propensity\nr1,u,x,1.5,1,.5\n": ("position", 2, "not a slot number"),
        "round,user,item,position,reward,propensity\nr1,u,x,0,yes,.5\n": ("reward", 2, "cannot parse"),
        "round,user,item,position,propensity\nr1,u,x,0,.5\n": ("reward", 1, "no column 'reward'"),
    }
    for i, (text, (column, line, words)) in enumerate(cases.items()):
        with pytest.raises(DataError) as caught:
            read_bandit_log(write(tmp_path / f"bad{i}.csv", text))
        assert caught.value.column == column and caught.value.line == line and words in caught.value.message, text
    target = write(tmp_path / "t.csv", "round,item,probability\nr1,x,0.5\nr1,y,0.5\nr9,x,1\n")
    parsed = target_from_file(log, target)
    assert parsed.unmatched_rounds == 1 and len(parsed.row) == 4  # each of the 2 slots gets both entries
    with pytest.raises(DataError, match="sum to 0.9"):
        target_from_file(log, write(tmp_path / "t2.csv", "round,item,probability\nr1,x,0.5\nr1,y,0.4\n"))
    with pytest.raises(DataError, match="no probabilities for round 'r1' position 1"):
        target_from_file(log, write(tmp_path / "t3.csv", "round,item,probability,position\nr1,x,1,0\n"))


def test_penchant_ope_writes_the_contract(tmp_path):
    log, target, actions, rewards, mu, pi = _bandit_data(3, n=400)
    rows = ["round,user,item,position,reward,propensity"]
    rows += [f"r{log.rounds[i]},{log.user_ids[log.users[i]]},{log.item_ids[log.items[i]]},{log.position[i]},"
             f"{log.reward[i]:g},{float(log.propensity[i])!r}" for i in range(len(log))]
    logs = write(tmp_path / "logs.csv", "\n".join(rows) + "\n")
    trows = ["round,item,probability"] + [f"r{target.row[j]},{log.item_ids[target.item[j]]},{float(target.prob[j])!r}"
                                          for j in range(len(target.row))]
    tfile = write(tmp_path / "target.csv", "\n".join(trows) + "\n")
    for name in ESTIMATORS:
        code, out, err = cli("ope", "--logs", str(logs), "--target", str(tfile), "--estimator", name,
                             "--bootstrap", "100", "--json", str(tmp_path / f"{name}.json"))
        assert code == 0, err
        got = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(got) == {"estimator", "value", "ci", "rounds", "effective_sample_size"}
        expected = estimate(log, target, name, n_bootstrap=100)[name]
        assert got["estimator"] == name and got["rounds"] == 400
        assert got["value"] == pytest.approx(expected.value) and got["ci"] == pytest.approx(list(expected.ci))
    code, out, err = cli("ope", "--logs", str(logs), "--target", str(tfile), "--estimator", "magic")
    assert code != 0 and "magic" in err


@pytest.mark.slow
def test_intervals_cover_the_true_value_on_simulator_logs():
    """100 seeded logs of a softmax logging policy in a slate world (2 slots, position-based clicks);
    the target is an ε-greedy policy whose value the world computes exactly."""
    from penchant.simulate.bandits import EpsilonGreedy, Softmax
    from penchant.simulate.loop import log_rounds, policy_target
    from penchant.simulate.slate_world import SlateWorld

    world = SlateWorld.synthetic(n_users=10, n_items=8, dim=4, slate_size=2, seed=1)
    rng = np.random.default_rng(5)
    logging = Softmax(world.utility + rng.normal(size=world.utility.shape))
    policy = EpsilonGreedy(world.utility + rng.normal(scale=0.5, size=world.utility.shape), 0.3)
    truth = world.policy_value(policy.slot_probabilities(np.arange(world.n_users), 2))
    covered = dict.fromkeys(ESTIMATORS, 0)
    width = {name: [] for name in ESTIMATORS}
    for rep in range(100):
        log = log_rounds(world, logging, 4000, seed=rep)
        for name, r in estimate(log, policy_target(log, policy), ESTIMATORS, reward_model="user-item",
                                n_bootstrap=200, seed=rep).items():
            covered[name] += r.ci[0] <= truth <= r.ci[1]
            width[name].append(r.ci[1] - r.ci[0])
    assert all(hits >= 90 for hits in covered.values()), covered
    assert np.mean(width["dr"]) < 0.6 * np.mean(width["ips"]), {k: np.mean(v) for k, v in width.items()}


def test_ips_says_when_the_target_never_agrees_with_the_logger(tmp_path):
    """`penchant ope` refuses a weight-based estimate with no support as it refuses snips: one line naming the
    share of lists with any support, exit 2 (it printed "0 per list, 95% interval [0, 0]" and exit 0); the
    library's estimate keeps the value and says what share of lists it stands on."""
    log, target = _tiny()
    logs = write(tmp_path / "logs.csv", "round,user,item,position,reward,propensity\n"
                 "a,u,x,0,0,0.5\na,u,y,1,1,0.5\nb,v,y,0,1,0.25\nb,v,x,1,0,1\n")
    never = write(tmp_path / "never.csv", "round,item,probability,position\na,y,1,0\na,x,1,1\nb,x,1,0\nb,y,1,1\n")
    for name in ("ips", "snips", "iips", "pi"):
        code, out, err = cli("ope", "--logs", logs, "--target", never, "--estimator", name, "--bootstrap", "20")
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("penchant: error: "), (name, code, out, err)
        assert "0 of 2 lists (0%)" in lines[0] and "per list" not in out, (name, err)
    code, out, err = cli("ope", "--logs", logs, "--target", never, "--estimator", "dm", "--bootstrap", "20")
    assert code == 0 and "per list" in out, err  # the reward model answers without any overlap
    never_target = Target(np.arange(4), log.item_ids, 1 - log.items, np.ones(4))
    assert estimate(log, never_target, "ips", n_bootstrap=20)["ips"].support == 0.0
    assert estimate(log, target, "ips", n_bootstrap=20)["ips"].support == 0.5  # round b's x has π 0
    code, out, err = cli("ope", "--logs", logs, "--target", write(tmp_path / "half.csv",
                         "round,item,probability,position\na,x,0.25,0\na,y,0.75,0\na,y,1,1\nb,y,0.5,0\nb,x,0.5,0\nb,y,1,1\n"),
                         "--estimator", "ips", "--bootstrap", "20")
    assert code == 0 and "the target supports 1 of 2 lists (50%)" in out, err
