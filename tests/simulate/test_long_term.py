"""The long-term world (ML-100K tastes): its dynamics, and a policy trained for the long run
against the greedy use of the fitted recommender on held-out simulated users."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from penchant.models.registry import create
from penchant.simulate.experiment import run_policies, summary
from penchant.simulate.long_term import SIGNALS, LongTermWorld
from penchant.simulate.long_term_policies import HistoryGreedy, Oracle, floor_kept, run_episode


def test_world_is_seeded_and_built_from_the_data(worlds, ml100k):
    world = worlds("test", 5)
    assert isinstance(world, gym.Env) and world.n_items == 300 and world.genres.shape == (300, 19)
    a = run_episode(world, HistoryGreedy(worlds.scores), 30, seed=5)
    b = run_episode(worlds("test", 5), HistoryGreedy(worlds.scores), 30, seed=5)
    for name in SIGNALS:
        assert (a.returns[name] == b.returns[name]).all()
    assert set(worlds.pools["train"]).isdisjoint(worlds.pools["test"])
    assert set(world.reset(seed=1)[0]["base_user"]) <= set(worlds.pools["test"])
    # quality is the standardised mean rating of the 300 most rated movies
    counts = np.bincount(ml100k.items, minlength=ml100k.n_items)
    top = np.sort(np.argsort(-counts, kind="stable")[:300])
    mean = np.bincount(ml100k.items, ml100k.ratings, ml100k.n_items)[top] / counts[top]
    world.reset(seed=5)
    assert np.corrcoef(mean, world.truth()["quality"])[0, 1] == pytest.approx(1.0)


def test_boredom_creators_and_leaving_follow_the_stated_rules(worlds):
    world = worlds("test", 0).population(50, seed=0)
    obs, _ = world.reset(seed=0)
    # the same genre over and over: boredom in that genre grows, so its utility falls
    drama = np.flatnonzero(world.genres[:, 7] == 1)  # 'Drama' in ML-100K's class order
    assert len(drama) >= 5
    before = world.utility(np.arange(50), np.tile(drama[:5], (50, 1))).mean()
    for _ in range(5):
        avail = obs["available"]
        shown = [d for d in drama if avail[d]][:5]
        obs, *_ = world.step(np.tile(shown, (50, 1)))
    assert world.truth()["boredom"][:, 7].max() > 0
    assert world.utility(np.arange(50), np.tile(drama[:5], (50, 1))).mean() < before
    # a creator never shown loses motivation and leaves after the first 10 steps
    never = world.creators[0]
    for _ in range(20):
        avail = obs["available"] & (world.creators != never)
        obs, *_ = world.step(np.tile(np.flatnonzero(avail)[:5], (50, 1)))
    assert not obs["creator_active"][never] and not obs["available"][world.creators == never].any()
    # the worst items drive users away; the best keep more of them
    worst, best = (run_episode(worlds("test", 3), policy, 100, seed=3)
                   for policy in (HistoryGreedy(-worlds.scores), HistoryGreedy(worlds.scores)))
    assert worst.retained.mean() < best.retained.mean() and worst.returns["click"].mean() < best.returns["click"].mean()


@pytest.mark.slow
def test_a_policy_trained_for_the_long_run_beats_greedy_on_held_out_users(worlds):
    """Trained on 100 training users for the 200-step return, selected on 200 validation users,
    judged on 600 test users; the constrained one keeps the novelty of each user's clicks at 0.30
    or more for at least 95% of them and gives up at most 10% of the unconstrained clicks."""
    trained = create("trained", worlds, population=6, seed=0).fit()
    constrained = create("constrained", worlds, floor=("novelty", 0.30), init=tuple(trained.policy.theta), population=6,
                         seed=0).fit()
    episodes = run_policies(worlds, {"greedy": HistoryGreedy(worlds.scores), "trained": trained,
                                     "constrained": constrained, "oracle": Oracle(None)}, 200, seed=99)
    report = {name: summary(ep, episodes["oracle"], ("novelty", 0.30)) for name, ep in episodes.items()}
    greedy, long_run = report["greedy"], report["trained"]
    assert long_run["return"]["click"]["ci"][0] > greedy["return"]["click"]["ci"][1]
    assert long_run["retention"]["ci"][0] > greedy["retention"]["ci"][1]
    assert report["constrained"]["floor"]["share_of_users_kept"] >= 0.95
    assert floor_kept(episodes["greedy"], "novelty", 0.30) < 0.95  # the floor binds
    assert report["constrained"]["return"]["click"]["mean"] >= 0.9 * long_run["return"]["click"]["mean"]
    assert 0 < greedy["fraction_of_best"]["click"] < long_run["fraction_of_best"]["click"]


def test_world_refuses_an_unavailable_item(worlds):
    world: LongTermWorld = worlds("test", 1).population(4, seed=1)
    obs, _ = world.reset(seed=1)
    hidden = np.flatnonzero(~obs["available"])[0]
    with pytest.raises(ValueError, match="not available"):
        world.step(np.full((4, 5), hidden))
    with pytest.raises(ValueError, match="one list of 5 items per user"):
        world.step(np.zeros((3, 5), dtype=np.int64))
