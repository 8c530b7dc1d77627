"""Actor-critic policies in the long-term world (ML-100K tastes): trained for the long-run return,
and the two-stage constrained actor-critic keeping a novelty floor, on held-out simulated users."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from penchant.models.registry import create
from penchant.simulate.actor_critic import ActorRerank, GaussianActor, Rollout, advantages, train_two_stage
from penchant.simulate.experiment import run_policies, summary
from penchant.simulate.long_term_policies import HistoryGreedy, Oracle, floor_kept


def test_advantages_follow_each_users_own_sequence():
    """GAE by hand: user 0 acts at steps 0 and 2 (away at 1), user 1 only at step 1."""
    acted = np.array([[True, False], [False, True], [True, False]])
    rewards = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    values = np.array([[0.5, 0.0], [0.0, 1.0], [1.0, 0.0]])
    adv, returns = advantages(values, Rollout(np.zeros((3, 2, 8)), np.zeros((3, 2, 6)), rewards, acted), 0.9, 0.5)
    last = 3.0 - 1.0                                # user 0's last step: r − V
    first = 1.0 + 0.9 * 1.0 - 0.5 + 0.9 * 0.5 * last  # δ + γλ · the next advantage of the same user
    assert adv[2, 0] == pytest.approx(last) and adv[0, 0] == pytest.approx(first)
    assert adv[1, 1] == pytest.approx(2.0 - 1.0) and adv[1, 0] == 0.0 and returns[1, 0] == 0.0
    assert returns[0, 0] == pytest.approx(first + 0.5)


def test_gaussian_kl_is_zero_to_itself_and_matches_the_closed_form():
    a, b = GaussianActor(np.ones(6)), GaussianActor(np.zeros(6), log_std=0.0)
    s = torch.ones(4, 8, dtype=torch.float64) / 8
    assert a.kl(s, a).detach().numpy() == pytest.approx(np.zeros(4))
    mean_gap = 1.0 / 8   # the bias column is 1 / 8 here
    one = np.log(1.0 / 0.5) + (0.25 + mean_gap ** 2) / 2 - 0.5
    assert a.kl(s, b).detach().numpy() == pytest.approx(np.full(4, 6 * one))


@pytest.mark.slow
def test_actor_critics_beat_greedy_and_the_two_stage_one_keeps_its_floor(worlds):
    """Trained on 100 training users a round, selected on 200 validation users, judged on 600 test
    users (seed 99), ranking with observed features only (docs/loop.md). Measured: greedy 68.5 clicks
    [66.0, 71.0], retention 0.28; actor-critic 89.9 [87.9, 91.9], 0.457; two-stage (novelty floor 0.30,
    λ = 0.3) 89.8 [87.7, 91.9], 0.45, floor kept for 99.5% of test users (greedy 55.5%)."""
    # 16 and 11 iterations, not the default 30: at 30 the selection on validation users picks iteration
    # 14 (actor-critic) and 9 and 8 (the two stages) and stops 8 later (its patience), so these caps
    # select the same actors, weight for weight, with 26 s less CPU (74 → 48 s for the two fits)
    ac = create("actor-critic", worlds, ac_iterations=16, seed=0).fit()
    tscac = create("tscac", worlds, floor=("novelty", 0.30), kl_weight=0.3, ac_iterations=11, seed=0).fit()
    for cap, history in ((16, ac.training["records"]["iterations"]), *((11, h) for h in tscac.training["records"].values())):
        chosen = [r["iteration"] for r in history if r.get("selected")]
        assert chosen[0] <= cap - 2, (cap, chosen)  # the cap did not cut the selection short (14, 9, 8 measured)
    records = tscac.training
    assert set(records["records"]) == {"stage one: novelty", "stage two"}
    episodes = run_policies(worlds, {"greedy": HistoryGreedy(worlds.scores), "actor-critic": ac, "tscac": tscac,
                                     "oracle": Oracle(None)}, 200, seed=99)
    report = {name: summary(ep, episodes["oracle"], ("novelty", 0.30)) for name, ep in episodes.items()}
    greedy = report["greedy"]
    for name in ("actor-critic", "tscac"):
        assert report[name]["return"]["click"]["ci"][0] > greedy["return"]["click"]["ci"][1]
        assert report[name]["retention"]["ci"][0] > greedy["retention"]["ci"][1]
    assert report["tscac"]["floor"]["share_of_users_kept"] >= 0.95
    assert floor_kept(episodes["greedy"], "novelty", 0.30) < 0.95  # the floor binds
    # the constraint costs at most 10% of the unconstrained actor-critic's clicks
    assert report["tscac"]["return"]["click"]["mean"] >= 0.9 * report["actor-critic"]["return"]["click"]["mean"]


def test_stage_two_stays_closer_to_the_auxiliary_actor_the_higher_its_weight(worlds):
    """Stage two with a large KL weight ends nearer (in mean θ) to its stage-one actor than with none."""
    short = {"iterations": 3, "patience": 3, "steps": 60}
    aux, _ = train_two_stage(worlds, worlds.scores, auxiliary={}, main="novelty", seed=101, **short)  # stage one's actor
    gaps = []
    for weight in (0.0, 20.0):
        main, records = train_two_stage(worlds, worlds.scores, auxiliary={"novelty": weight}, seed=1, **short)
        gaps.append(float((main.weight - aux.weight).abs().sum().detach()))
    assert gaps[1] < gaps[0]
    world = worlds("test", 0)
    policy = ActorRerank(worlds.scores, world, main, steps=60)
    obs, _ = world.reset(seed=0)
    policy.observe(obs)
    slates, propensity = policy.act(np.flatnonzero(obs["in_session"]), 5, np.random.default_rng(0))
    assert slates.shape[1] == 5 and (propensity == 1).all()
    assert all(len(set(row)) == 5 for row in slates)
    # a trained policy keeps the horizon it was trained for: its state's time is a share of it
    quick = create("actor-critic", worlds, train_steps=20, ac_iterations=1, seed=0).fit().policy
    assert quick.steps == 20
