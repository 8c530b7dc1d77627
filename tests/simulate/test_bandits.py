"""The slate world's ground truth and the bandit policies that learn in it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from penchant.models.protocols import LearningPolicy, SlatePolicy, StochasticPolicy
from penchant.simulate.bandits import BetaThompson, EpsilonGreedy, Greedy, LinearThompson, LinUCB, Softmax
from penchant.simulate.loop import log_rounds, run_policy
from penchant.simulate.slate_world import SlateWorld


def test_world_is_a_seeded_gymnasium_env_with_exact_truth():
    world = SlateWorld.synthetic(n_users=5, n_items=6, dim=3, slate_size=2, seed=0)
    assert isinstance(world, gym.Env)
    first = [world.reset(seed=7)[0]] + [world.step([0, 1])[1:2][0] for _ in range(20)]
    again = [world.reset(seed=7)[0]] + [world.step([0, 1])[1:2][0] for _ in range(20)]
    assert first == again
    users = np.arange(5)
    sig = 1 / (1 + np.exp(-world.utility))
    probs = world.click_probabilities(users, np.tile([3, 4], (5, 1)))
    assert probs == pytest.approx(np.c_[sig[:, 3], 0.5 * sig[:, 4]])  # κ = 1, 1/2
    # the best list: the two highest utilities, the higher on top
    best = world.best_slates(users)
    assert (world.utility[users[:, None], best] == -np.sort(-world.utility, axis=1)[:, :2]).all()
    # the exact value of a stochastic policy equals the mean of its simulated clicks
    policy = Softmax(world.utility)
    exact = world.policy_value(policy.slot_probabilities(users, 2))
    log = log_rounds(world, policy, 200_000, seed=1)
    assert log.reward.sum() / log.n_rounds == pytest.approx(exact, rel=0.01)


def test_logit_choice_clicks_at_most_once_with_the_stated_probabilities():
    world = SlateWorld(np.array([[0.0, 1.0, -1.0]]), slate_size=2, choice="logit", no_click=0.5, seed=0)
    slate = np.tile([1, 0], (100_000, 1))
    clicks = world.respond(np.zeros(100_000, np.int64), slate)
    assert clicks.sum(axis=1).max() == 1
    e = np.exp([1.0, 0.0 + np.log(0.5)])
    expected = e / (np.exp(0.5) + e.sum())
    assert world.click_probabilities(np.array([0]), slate[:1])[0] == pytest.approx(expected)
    assert clicks.mean(axis=0) == pytest.approx(expected, abs=0.005)


def test_policies_give_their_propensities():
    world = SlateWorld.synthetic(n_users=4, n_items=5, dim=2, slate_size=2, seed=2)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(4), 50_000)
    for policy in (EpsilonGreedy(world.utility, 0.3), Softmax(world.utility, 0.7)):
        assert isinstance(policy, SlatePolicy) and isinstance(policy, StochasticPolicy)
        slates, propensity = policy.act(users, 2, rng)
        probs = policy.slot_probabilities(np.arange(4), 2)
        assert probs.sum(axis=2) == pytest.approx(np.ones((4, 2)))
        np.testing.assert_allclose(propensity, probs[users[:, None], np.arange(2)[None], slates])
        for u in range(4):  # the frequencies are the stated probabilities
            mine = slates[users == u]
            freq = np.stack([np.bincount(mine[:, s], minlength=5) / len(mine) for s in range(2)])
            assert freq == pytest.approx(probs[u], abs=0.01)
    thompson = BetaThompson(1, 3, propensity_draws=2000)
    thompson.update(np.zeros(10, np.int64), np.array([[0]] * 10), np.array([[1.0]] * 5 + [[0.0]] * 5))
    slates, propensity = thompson.act(np.zeros(1, np.int64), 1, rng)
    thompson.propensity_draws = 0  # many rounds at once, each a fresh posterior draw
    shown = thompson.act(np.zeros(20_000, np.int64), 1, rng)[0][:, 0]
    assert propensity[0, 0] == pytest.approx(np.mean(shown == slates[0, 0]), abs=0.04)


def test_thompson_sampling_regret_grows_sublinearly():
    world = SlateWorld.synthetic(n_users=1, n_items=20, dim=6, slate_size=1, seed=3)
    policy = BetaThompson(1, 20)
    assert isinstance(policy, LearningPolicy)
    run = run_policy(world, policy, 5000, seed=0)
    uniform = run_policy(world, EpsilonGreedy(np.zeros((1, 20)), 1.0), 5000, seed=0)
    assert run.regret_slope() < 0.5 and uniform.regret_slope() > 0.95
    assert run.regret[-1] < 0.05 * uniform.regret[-1]
    # the second half adds far less regret than the first
    assert run.regret[-1] - run.regret[2499] < 0.5 * run.regret[2499]


def test_linear_policies_learn_per_user_tastes():
    world = SlateWorld.synthetic(n_users=30, n_items=40, dim=4, slate_size=3, seed=4)
    random = run_policy(world, EpsilonGreedy(np.zeros((30, 40)), 1.0), 3000, batch=10, seed=1)
    for policy in (LinearThompson(world.item_features, 30), LinUCB(world.item_features, 30)):
        run = run_policy(world, policy, 3000, batch=10, seed=1)
        late = slice(2000, 3000)
        assert run.expected[late].mean() > 1.5 * random.expected[late].mean()
    greedy = run_policy(world, Greedy(world.utility), 500, seed=1)
    assert greedy.regret[-1] == pytest.approx(0.0)
