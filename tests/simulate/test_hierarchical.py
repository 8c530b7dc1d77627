"""The hierarchical novelty-intent policy (Li et al. 2023) in the long-term world (ML-100K tastes)."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.simulate.experiment import run_policies, summary
from penchant.simulate.hierarchical import (
    HierarchicalRerank,
    IntentActor,
    _decision_rollout,
    intent_agreement,
    train_hierarchical,
)
from penchant.simulate.long_term_policies import HistoryGreedy, Oracle


def test_the_high_level_is_rewarded_with_the_clicks_until_its_next_decision():
    class Decided:
        decisions = [(0, np.array([0]), np.ones((1, 8)), np.array([1])),
                     (1, np.array([1]), np.ones((1, 8)), np.array([0])),
                     (2, np.array([0]), np.ones((1, 8)), np.array([0]))]

    clicks = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    got = _decision_rollout(Decided(), clicks)
    assert got.rewards[0, 0] == 2.0   # steps 0 and 1, before the next decision at step 2
    assert got.rewards[2, 0] == 1.0   # steps 2 and 3: 0 + 1
    assert got.rewards[1, 1] == 3.0   # steps 1 to the end
    assert got.acted.sum() == 3 and got.actions[0, 0, 0] == 1.0


def test_intent_inputs_are_standardised_once_with_the_bias_kept():
    actor = IntentActor(3)
    states = np.c_[np.array([[1.0, 10.0], [3.0, 30.0]]), np.ones(2)]
    actor.standardise(states)
    actor.standardise(states * 5)   # fixed by the first batch
    assert actor.shift.numpy() == pytest.approx([2.0, 20.0, 0.0])
    assert actor.scale.numpy() == pytest.approx([1.0, 10.0, 1.0])


@pytest.mark.slow
def test_the_hierarchical_policy_beats_greedy_on_held_out_users(worlds):
    """Trained on 100 training users per iteration, selected on 200 validation users, judged on 600
    test users (seed 99). Measured: greedy 68.5 clicks [66.0, 71.0], retention 0.280; hierarchical
    89.8 [87.7, 91.9], 0.455 [0.415, 0.495]. What does not work: the high level does not find the
    hidden session mode: it ranks for `novel` in 25% of the lists of novelty-seeking sessions and 28%
    of the others (docs/loop.md)."""
    policy, history = train_hierarchical(worlds, worlds.scores, seed=0)
    assert isinstance(policy, HierarchicalRerank) and sum(r.get("selected", False) for r in history) == 1
    episodes = run_policies(worlds, {"greedy": HistoryGreedy(worlds.scores), "hierarchical": policy,
                                     "oracle": Oracle(None)}, 200, seed=99)
    report = {name: summary(ep, episodes["oracle"]) for name, ep in episodes.items()}
    assert report["hierarchical"]["return"]["click"]["ci"][0] > report["greedy"]["return"]["click"]["ci"][1]
    assert report["hierarchical"]["retention"]["ci"][0] > report["greedy"]["retention"]["ci"][1]
    agreement = intent_agreement(worlds("test", 99), policy, 200, seed=99)
    assert agreement["lists"] > 10_000
    # The paper's claim that the high level infers the intent is not reproduced here: compared with
    # chance (the same share of `novel` lists whatever the hidden mode), it is within 0.1 of it
    # (measured 0.25 vs 0.28). Pinned so that a change either way is seen, not to bless it.
    gap = agreement["novel_share_in_novelty_sessions"] - agreement["novel_share_in_other_sessions"]
    assert abs(gap) < 0.1, f"the high level's intent now depends on the hidden mode (gap {gap:.3f}): update docs/loop.md"
