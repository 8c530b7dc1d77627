"""The slate GRU + Thompson sampling policy (Eide et al. 2021) learning from clicks alone."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.models.protocols import LearningPolicy, SlatePolicy
from penchant.simulate.bandits import BetaThompson
from penchant.simulate.loop import run_policy
from penchant.simulate.slate_gru import SlateGRU
from penchant.simulate.slate_world import SlateWorld


def _world(seed: int = 0) -> SlateWorld:
    return SlateWorld.synthetic(n_users=200, n_items=50, dim=4, slate_size=3, choice="logit", no_click=0.0,
                                scale=2.0, offset=-1.0, seed=seed)


@pytest.mark.slow
def test_thompson_sampling_beats_the_same_model_used_greedily():
    """200 users, 50 items, lists of 3, conditional-logit clicks; 12,000 lists served 100 at a time.
    Nothing about users or items is given: both policies learn item vectors and a recurrent state from
    clicks. Measured on this seed: the last quarter's lists earn 0.962 of the best lists' clicks with
    Thompson sampling against 0.835 for the posterior mean used greedily; regret 1,290 against 2,180,
    and 2,510 for Beta–Bernoulli Thompson per user and item (no sharing). Over world seeds 0–5 Thompson
    won on all three counts 5 times of 6; on seed 4 its fits got stuck (0.761 of the best; docs/loop.md)."""
    world = _world()
    thompson = SlateGRU(200, 50, 3, seed=0)
    assert isinstance(thompson, SlatePolicy) and isinstance(thompson, LearningPolicy)
    runs = {name: run_policy(world, policy, 12_000, batch=100, seed=0)
            for name, policy in {"thompson": thompson, "greedy": SlateGRU(200, 50, 3, thompson=False, seed=0),
                                 "beta": BetaThompson(200, 50)}.items()}
    regret = {name: run.regret[-1] for name, run in runs.items()}
    assert regret["thompson"] < 0.7 * regret["beta"]
    late = slice(9_000, 12_000)
    share = {name: run.expected[late].mean() / run.best[late].mean() for name, run in runs.items()}
    assert share["thompson"] > 0.93 and share["thompson"] > share["greedy"] + 0.02
    assert runs["thompson"].regret_slope() < 0.6
    # refits came as the log grew by a quarter, not every 500 lists
    assert 5 <= len(thompson.history) <= 12 and thompson.history[-1]["steps"] >= 9_000


def test_propensities_are_the_posterior_draws_winning_shares():
    world = _world(1)
    policy = SlateGRU(200, 50, 3, refit_every=2_000, seed=1)
    run_policy(world, policy, 2_000, batch=100, seed=1)     # one fit: a posterior with some spread
    rng = np.random.default_rng(5)
    policy.propensity_draws = 4_000
    slates, propensity = policy.act(np.array([7]), 3, rng)
    assert ((propensity > 0) & (propensity <= 1)).all()
    policy.propensity_draws = 0
    shown = policy.act(np.full(20_000, 7), 3, rng)[0]
    frequency = (shown == slates).mean(axis=0)
    assert propensity[0] == pytest.approx(frequency, abs=0.03)
    greedy = SlateGRU(200, 50, 3, thompson=False)
    assert (greedy.act(np.array([0, 1]), 3, rng)[1] == 1.0).all()


def test_a_users_state_follows_their_clicks_in_order():
    """Two lists for one user in one batch advance their state twice, in order: the same as two batches."""
    policy = SlateGRU(3, 10, 2, refit_every=10_000, seed=0)
    twice = SlateGRU(3, 10, 2, refit_every=10_000, seed=0)
    slates = np.array([[1, 2], [3, 4]])
    clicks = np.array([[1.0, 0.0], [0.0, 0.0]])
    policy.update(np.array([2, 2]), slates, clicks)
    twice.update(np.array([2]), slates[:1], clicks[:1])
    twice.update(np.array([2]), slates[1:], clicks[1:])
    assert np.allclose(policy.state.numpy(), twice.state.numpy())
    assert not np.allclose(policy.state[2].numpy(), policy.state[0].numpy())
    assert np.allclose(policy.state[0].numpy(), policy.state[1].numpy())   # untouched users stay at h_0
