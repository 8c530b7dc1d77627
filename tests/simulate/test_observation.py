"""Observation discipline in the long-term world: a policy sees what a platform logs and nothing of the
world's hidden state. Every registered long-term policy (oracles aside) is run in a world, then again
after the world's hidden item quality is shuffled in place: fed the same observations it must serve the
same lists, and live in the shuffled world what it is given stays the same until the world's clicks
differ. A world whose log lacks what it is made of refuses to build."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from penchant.errors import DataError
from penchant.models.registry import create, entry, model_names
from penchant.simulate.long_term import Catalogue, LongTermWorld, Observation
from penchant.simulate.long_term_policies import run_episode
from tests.conftest import tiny_log
from tests.simulate.test_policy_contract import STEPS, fitted, tiny_worlds, with_genres

LEARNERS = [n for n in model_names("long-term") if not entry(n).cls.oracle]


class Recorder:
    """A policy whose every observation and list is recorded."""

    def __init__(self, policy) -> None:
        self.policy, self.seen, self.lists = policy, [], []

    def observe(self, obs: Observation) -> None:
        self.seen.append(obs)
        self.policy.observe(obs)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        slates, propensity = self.policy.act(users, k, rng)
        self.lists.append((users.copy(), slates.copy()))
        return slates, propensity


def same(a: Observation, b: Observation) -> bool:
    for f in dataclasses.fields(Observation):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            if x.keys() != y.keys() or not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def same_lists(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def reachable(obj, depth: int = 2):
    """The attribute values of ``obj`` and of theirs, ``depth`` levels down (containers opened)."""
    values = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    for value in values:
        yield value
        if depth > 1:
            if isinstance(value, (list, tuple)):
                for item in value:
                    yield item
                    yield from reachable(item, depth - 1)
            elif hasattr(value, "__dict__") and not isinstance(value, type):
                yield from reachable(value, depth - 1)


@pytest.mark.parametrize("name", LEARNERS)
def test_a_policy_is_given_nothing_of_the_hidden_quality(name):
    worlds, policy = tiny_worlds(), fitted(name)
    hidden = worlds.template._quality  # the world's own array, shared by every population of the catalogue
    acting = policy.policy
    assert not any(isinstance(v, LongTermWorld) or v is hidden for v in reachable(acting)), \
        f"{name} keeps the world or its hidden quality"
    assert not any(f.name == "quality" for f in dataclasses.fields(Catalogue))
    before = Recorder(policy)
    run_episode(worlds("test", 3), before, STEPS, seed=3)
    original = hidden.copy()
    try:
        hidden[:] = np.random.default_rng(0).permutation(original)
        assert not np.array_equal(hidden, original)
        # fed what it saw before, it serves what it served before
        replay, rng = [], np.random.default_rng(4)
        for obs, (users, _) in zip(before.seen, before.lists, strict=False):
            policy.observe(obs)
            replay.append((users, policy.act(users, 5, rng)[0]))
        assert all(same_lists(a, b) for a, b in zip(before.lists, replay, strict=True))
        # live in the shuffled world: the same observations and lists until the clicks differ
        after = Recorder(policy)
        run_episode(worlds("test", 3), after, STEPS, seed=3)
    finally:
        hidden[:] = original
    diverged = next((t for t, (a, b) in enumerate(zip(before.seen, after.seen, strict=True)) if not same(a, b)), None)
    assert diverged is not None, "the shuffled quality changed nothing the world did"
    assert diverged >= 1  # the first observation (the reset) cannot depend on it
    for t in range(diverged):
        assert same_lists(before.lists[t], after.lists[t]), f"{name} served another list at step {t}"
    diff = before.seen[diverged]
    assert not (np.array_equal(diff.clicked, after.seen[diverged].clicked)
                and all(np.array_equal(diff.signals[k], after.seen[diverged].signals[k]) for k in diff.signals)), \
        "observations diverged before the world's feedback did"


def test_the_observation_is_a_copy_and_holds_the_last_lists_feedback():
    world = tiny_worlds()("test", 1)
    obs, _ = world.reset(seed=1)
    assert not obs.shown.any() and (obs.clicked == -1).all() and obs["step"] == 0
    obs.consumed[:] = True  # a policy scribbling on its observation does not reach the world
    assert not world.observation().consumed.any()
    avail = np.flatnonzero(obs.available)[:5]
    nxt, signals, *_ = world.step(np.tile(avail, (world.n_users, 1)))
    clicked = nxt.clicked >= 0
    assert nxt.shown.all() and (signals["click"] == clicked).all()
    assert np.isin(nxt.clicked[clicked], avail).all() and (nxt.history[clicked, 0] == nxt.clicked[clicked]).all()
    assert np.array_equal(nxt.signals["watch"], signals["watch"]) and "left" not in vars(nxt)


def test_a_world_refuses_a_log_without_what_it_is_made_of():
    log = tiny_log()
    als = create("als", factors=4, iterations=2).fit(log)
    with pytest.raises(DataError, match=r"^tiny: .*without genres"):
        LongTermWorld.from_dataset(log, als, n_items=20, n_creators=3)
    with pytest.raises(DataError, match=r"without ratings"):
        LongTermWorld.from_dataset(dataclasses.replace(with_genres(log), ratings=None), als, n_items=20, n_creators=3)

    class ScoresOnly:  # a recommender without item vectors
        def score(self, users):
            return als.score(users)

    with pytest.raises(DataError, match=r"without item vectors \(the model ScoresOnly has none\)"):
        LongTermWorld.from_dataset(with_genres(log), ScoresOnly(), n_items=20, n_creators=3)
    world, items = LongTermWorld.from_dataset(with_genres(log), als, n_items=20, n_creators=3)
    assert world.catalogue.genres.shape == (20, 4) and len(items) == 20
