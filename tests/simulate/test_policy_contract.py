"""The contract every registered simulation policy keeps, parametrised over the registry's ``slate``
and ``long-term`` families, so that a policy registered tomorrow is checked by being registered.

Each is built on a tiny world (slate: 8 users × 12 items; long-term: the tiny log's tastes, 30
items, a dozen users per split, a few steps) with settings that keep a case to about a second, then
checked for what it shows (shapes, items that exist and may be shown, propensities in [0, 1] that
match its own slot distributions), that the same seed gives the same run, that an unknown or a
missing required parameter is the registry's ConfigError naming it, and that only the policies
marked ``oracle`` read the world's hidden state. That the learners beat their baselines on worlds
of a realistic size is claimed by the other tests of this folder (test_bandits, test_slate_gru,
test_long_term, test_actor_critic, test_hierarchical, test_decision_transformer); here the slate
learners only have to beat ``uniform`` on a small planted world, and the long-term ones are
left to those tests (a tiny world and two training rounds say nothing about the long run).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pytest

from penchant.errors import ConfigError
from penchant.models.protocols import LearningPolicy, SlatePolicy, StochasticPolicy
from penchant.models.registry import create, entry, model_names
from penchant.simulate.experiment import Worlds, fit_policies, movielens_worlds, run_policies
from penchant.simulate.long_term import LongTermWorld
from penchant.simulate.long_term_policies import run_episode
from penchant.simulate.loop import run_policy
from penchant.simulate.slate_world import SlateWorld
from tests.conftest import tiny_log

SLATE = model_names("slate")
LONG_TERM = model_names("long-term")
#: settings that keep each case to about a second on the tiny worlds, and the required ones
#: (``requires``); everything else is the default
QUICK = {
    "gru-thompson": {"refit_every": 250, "epochs": 10}, "gru-greedy": {"refit_every": 250, "epochs": 10},
    "trained": {"train_steps": 8, "iterations": 2, "population": 4},
    "constrained": {"train_steps": 8, "iterations": 2, "population": 4, "floor": "novelty:0.3"},
    "actor-critic": {"train_steps": 8, "ac_iterations": 2},
    "tscac": {"train_steps": 8, "ac_iterations": 2, "floor": "novelty:0.3"},
    "hierarchical": {"train_steps": 8, "ac_iterations": 2},
    "decision-transformer": {"train_steps": 8, "dt_steps": 100, "batch": 16},
    "sim2rec": {"train_steps": 8, "ac_iterations": 2},
}
STEPS = 8


def test_both_families_are_registered_with_their_oracles_marked():
    assert len(SLATE) >= 7 and len(LONG_TERM) >= 8
    oracles = {n for n in SLATE + LONG_TERM if entry(n).cls.oracle}
    assert oracles == {"best", "oracle"}
    for name in SLATE + LONG_TERM:  # a summary and a description of every parameter, for `penchant models`
        assert entry(name).summary and all(p.help for p in entry(name).params()), name


# --- slate ----------------------------------------------------------------------------------------

def slate_world(seed: int = 0) -> SlateWorld:
    return SlateWorld.synthetic(n_users=8, n_items=12, dim=3, slate_size=3, choice="logit", no_click=0.0, scale=2.0,
                                offset=-1.0, seed=seed)


def platform_view(world: SlateWorld) -> SimpleNamespace:
    """What a platform knows of a slate world: its size and the item vectors, not the users' utilities."""
    return SimpleNamespace(n_users=world.n_users, n_items=world.n_items, slate_size=world.slate_size,
                           item_features=world.item_features)


@pytest.mark.parametrize("name", SLATE)
def test_slate_policy_contract(name):
    world = slate_world()
    policy = create(name, world, **QUICK.get(name, {}))
    assert isinstance(policy, SlatePolicy)
    run = run_policy(world, policy, 300, batch=20, seed=0)
    assert run.reward.shape == run.expected.shape == run.best.shape == (300,)
    assert ((run.expected >= 0) & (run.expected <= 1)).all() and set(run.reward) <= {0.0, 1.0}  # logit: one click at most
    users, rng = np.arange(world.n_users), np.random.default_rng(1)
    slates, propensity = policy.act(users, 3, rng)
    assert slates.shape == propensity.shape == (8, 3) and np.issubdtype(slates.dtype, np.integer)
    assert ((slates >= 0) & (slates < world.n_items)).all()
    # a propensity is a probability, or NaN for a sampler not asked to estimate them
    assert np.isnan(propensity).all() or ((propensity > 0) & (propensity <= 1)).all()
    if isinstance(policy, StochasticPolicy):  # exact slot distributions: they sum to one and give the propensities
        probs = policy.slot_probabilities(users, 3)
        assert probs.shape == (8, 3, world.n_items) and np.allclose(probs.sum(axis=2), 1.0)
        assert np.allclose(propensity, probs[users[:, None], np.arange(3)[None], slates])
    if (propensity == 1).all():  # deterministic: the same lists again
        assert np.array_equal(policy.act(users, 3, np.random.default_rng(2))[0], slates)
    if any(p.name == "propensity_draws" for p in entry(name).params()) and np.isnan(propensity).all():
        sampled = create(name, world, **QUICK.get(name, {}), propensity_draws=200)
        run_policy(world, sampled, 100, batch=20, seed=0)
        estimated = sampled.act(users, 3, rng)[1]
        assert ((estimated > 0) & (estimated <= 1)).all()
    with pytest.raises(ConfigError, match=f"model '{name}' has no parameter 'bogus'"):
        create(name, world, bogus=1)


@pytest.mark.parametrize("name", SLATE)
def test_slate_policy_same_seed_same_run(name):
    runs = [run_policy(slate_world(), create(name, slate_world(), **QUICK.get(name, {})), 300, batch=20, seed=4)
            for _ in range(2)]
    assert np.array_equal(runs[0].reward, runs[1].reward) and np.array_equal(runs[0].expected, runs[1].expected)


@pytest.mark.parametrize("name", SLATE)
def test_only_oracles_read_a_slate_worlds_utilities(name):
    """Built from what a platform knows (no utilities), every policy but an oracle acts."""
    view = platform_view(slate_world())
    if entry(name).cls.oracle:
        with pytest.raises(AttributeError, match="utility"):
            create(name, view, **QUICK.get(name, {}))
        return
    policy = create(name, view, **QUICK.get(name, {}))
    assert policy.act(np.arange(8), 3, np.random.default_rng(0))[0].shape == (8, 3)


@pytest.mark.parametrize("name", [n for n in SLATE if issubclass(entry(n).cls, LearningPolicy)])
def test_a_slate_learner_beats_uniform_on_a_planted_world(name):
    """4 users with planted tastes over 10 items, lists of 2, 1,000 lists served 50 at a time: the
    last half's expected clicks beat uniform play's (measured on world seeds 1, 2 and 7: uniform
    0.44–0.49, every learner 0.61 or more)."""
    world = SlateWorld.synthetic(n_users=4, n_items=10, dim=3, slate_size=2, choice="logit", no_click=0.0, scale=3.0,
                                 offset=-1.0, seed=7)
    late = slice(500, 1000)
    learned = run_policy(world, create(name, world, **QUICK.get(name, {})), 1000, batch=50, seed=0)
    uniform = run_policy(world, create("uniform", world), 1000, batch=50, seed=0)
    assert learned.expected[late].mean() > uniform.expected[late].mean()


# --- long-term ------------------------------------------------------------------------------------

def with_genres(log):
    """``log`` with a genre attribute (four genres, one per item by its index mod 4): a long-term
    world refuses a log without genres."""
    import dataclasses

    import scipy.sparse as sp

    from penchant.data.dataset import Attribute

    rows = np.arange(log.n_items)
    matrix = sp.csr_matrix((np.ones(log.n_items, np.float32), (rows, rows % 4)), shape=(log.n_items, 4))
    return dataclasses.replace(log, item_attributes={"genre": Attribute(np.array(["a", "b", "c", "d"]), matrix)})


@lru_cache(maxsize=None)
def tiny_worlds() -> Worlds:
    log = with_genres(tiny_log())
    return movielens_worlds(log, create("als", factors=8, iterations=5).fit(log), n_items=30, n_creators=5,
                            sizes={"train": 12, "valid": 12, "test": 16})


@lru_cache(maxsize=None)
def fitted(name: str):
    return create(name, tiny_worlds(), **QUICK.get(name, {})).fit()


@contextlib.contextmanager
def sealed():
    """The world's hidden state out of reach: its utility and truth raise while this holds."""
    def hidden(self, *args, **kwargs):
        raise RuntimeError("a policy read the world's hidden state")

    saved = LongTermWorld.utility, LongTermWorld.truth
    LongTermWorld.utility = LongTermWorld.truth = hidden
    try:
        yield
    finally:
        LongTermWorld.utility, LongTermWorld.truth = saved


class Watched:
    """A policy acting sealed off from the world's hidden state, its lists recorded with what was available."""

    def __init__(self, policy) -> None:
        self.policy, self.shown = policy, []

    def observe(self, obs: dict) -> None:
        self.available = obs["available"]
        with sealed():
            self.policy.observe(obs)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        with sealed():
            slates, propensity = self.policy.act(users, k, rng)
        self.shown.append((users, slates, propensity, self.available))
        return slates, propensity


@pytest.mark.parametrize("name", LONG_TERM)
def test_long_term_policy_contract(name):
    policy = fitted(name)
    assert isinstance(policy, SlatePolicy) and policy.name == name
    assert bool(policy.training) == entry(name).cls.learned  # what training recorded, for the report
    world = tiny_worlds()("test", 3)
    acting = policy.bind(world) if policy.oracle else policy
    if policy.oracle:  # it cannot act without the hidden state
        with pytest.raises(RuntimeError, match="hidden state"):
            run_episode(world, Watched(acting), STEPS, seed=3)
        watched = None
        episode = run_episode(world, acting, STEPS, seed=3)
    else:
        watched = Watched(acting)
        episode = run_episode(world, watched, STEPS, seed=3)
    assert all(v.shape == (16,) for v in episode.returns.values()) and episode.per_step["click"].shape == (STEPS,)
    for users, slates, propensity, available in watched.shown if watched else []:
        assert slates.shape == propensity.shape == (len(users), 5)
        assert all(len(set(row)) == 5 for row in slates) and available[slates].all()
        assert ((propensity >= 0) & (propensity <= 1)).all()
    with pytest.raises(ConfigError, match=f"model '{name}' has no parameter 'bogus'"):
        create(name, tiny_worlds(), bogus=1)
    for required in entry(name).cls.requires:
        params = {k: v for k, v in QUICK[name].items() if k != required}
        with pytest.raises(ConfigError, match=f"'{name}'.*needs {required}"):
            create(name, tiny_worlds(), **params)


@pytest.mark.parametrize("name", LONG_TERM)
def test_long_term_policy_same_seed_same_run(name):
    again = create(name, tiny_worlds(), **QUICK.get(name, {})).fit()
    assert again.training == fitted(name).training
    first, second = run_policies(tiny_worlds(), {"first": fitted(name), "second": again}, STEPS, seed=5).values()
    assert all(np.array_equal(first.returns[s], second.returns[s]) for s in first.returns)


def test_a_policy_fitted_with_the_one_it_starts_from_starts_from_its_theta():
    """``constrained`` fitted with ``trained`` (listed after it or not) starts its search from trained's θ."""
    both = fit_policies(tiny_worlds(), {"constrained": ("constrained", QUICK["constrained"]),
                                        "trained": ("trained", QUICK["trained"])})
    assert list(both) == ["constrained", "trained"]
    assert both["trained"].training == fitted("trained").training
    started = create("constrained", tiny_worlds(), **QUICK["constrained"], init=tuple(both["trained"].policy.theta)).fit()
    assert both["constrained"].training == started.training
    assert both["constrained"].training != fitted("constrained").training  # from zeros it goes elsewhere
