"""The hierarchical novelty-intent policy (Li et al. 2023) in the long-term world (ML-100K tastes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from penchant.simulate.experiment import run_policies, summary
from penchant.simulate.hierarchical import (
    HierarchicalRerank,
    IntentActor,
    IntentModel,
    _decision_rollout,
    intent_report,
    train_hierarchical,
)
from penchant.simulate.long_term_policies import HistoryGreedy, Oracle


def test_the_high_level_is_rewarded_with_the_clicks_until_its_next_decision():
    class Decided:
        decisions = [(0, np.array([0]), np.ones((1, 9)), np.array([1])),
                     (1, np.array([1]), np.ones((1, 9)), np.array([0])),
                     (2, np.array([0]), np.ones((1, 9)), np.array([0]))]

    clicks = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    got = _decision_rollout(Decided(), clicks)
    assert got.rewards[0, 0] == 2.0   # steps 0 and 1, before the next decision at step 2
    assert got.rewards[2, 0] == 1.0   # steps 2 and 3: 0 + 1
    assert got.rewards[1, 1] == 3.0   # steps 1 to the end
    assert got.acted.sum() == 3 and got.actions[0, 0, 0] == 1.0


def test_intent_inputs_are_standardised_once_with_the_bias_kept_and_the_belief_added_as_is():
    actor = IntentActor(4)
    states = np.c_[np.array([0.7, -2.0]), np.array([[1.0, 10.0], [3.0, 30.0]]), np.ones(2)]   # belief first
    actor.standardise(states)
    actor.standardise(states * 5)   # fixed by the first batch
    assert actor.shift.numpy() == pytest.approx([2.0, 20.0, 0.0])
    assert actor.scale.numpy() == pytest.approx([1.0, 10.0, 1.0])
    logits = actor.logits(torch.from_numpy(states)).detach().numpy()   # no correction learned yet: the belief decides
    assert logits[:, 0] == pytest.approx([0.0, 0.0]) and logits[:, 1] == pytest.approx([0.7, -2.0])


def test_em_finds_planted_session_modes_from_clicks_on_novel_and_familiar_lists():
    """Planted: 40% of 2,000 sessions seek novelty; 10 lists each, of mean novelty x ~ U(0, 0.9);
    P(click) = σ(a_u + (−1 + 3m) x) with a user baseline a_u ~ N(1, 0.5) known through r = σ(a_u).
    EM never sees m, yet recovers its share and slope and tells the sessions apart well above always
    guessing the commoner mode (0.6)."""
    rng = np.random.default_rng(0)
    sessions, lists = 2000, 10
    mode = rng.random(sessions) < 0.4
    a = rng.normal(1.0, 0.5, sessions)
    x = rng.uniform(0.0, 0.9, (sessions, lists))
    clicked = rng.random((sessions, lists)) < 1 / (1 + np.exp(-(a[:, None] + (-1 + 3 * mode[:, None]) * x)))
    r = np.broadcast_to(1 / (1 + np.exp(-a))[:, None], x.shape)
    ids = np.repeat(np.arange(sessions), lists)
    model = IntentModel.fit(ids, x.ravel(), r.ravel(), clicked.ravel())
    assert model.share == pytest.approx(0.4, abs=0.08) and model.coef[3] == pytest.approx(3.0, abs=0.8)
    belief = np.log(model.share / (1 - model.share)) + model.evidence(clicked.ravel(), x.ravel(), r.ravel()).reshape(
        sessions, lists).sum(axis=1)
    assert ((belief > 0) == mode).mean() > 0.7
    # a click on a novel list is evidence for novelty-seeking, a miss on one against it
    ev = model.evidence(np.array([True, False]), np.array([0.8, 0.8]), np.array([0.7, 0.7]))
    assert ev[0] > 0 > ev[1]


@pytest.mark.slow
def test_the_hierarchical_policy_beats_greedy_and_its_intent_follows_the_hidden_mode(worlds):
    """Trained on 100 training users per iteration, selected on 200 validation users, judged on 600
    test users (seed 99). The high level sees only the session's clicks and misses on lists of known
    novelty; its intent must agree with the hidden session mode more often than an intent independent
    of it (chance), and rank for `novel` more in novelty-seeking sessions than in the others: at chance
    agreement (the high level before, 0.25 vs 0.28) this fails. Measured: hierarchical 87.3 clicks
    [85.1, 89.4], retention 0.477 (greedy 68.5, 0.280); agreement 0.505 against chance 0.465 (the
    commoner mode: 0.588); `novel` in 74.8% of novelty-seeking sessions' lists, 66.6% of the others'."""
    # 7 iterations, not the default 30: at 30 the selection on validation users picks iteration 5 and
    # stops 8 later (its patience), so the cap selects the same policy (both levels' weights, the intent
    # model and a test episode identical) with 12 s less CPU (23 → 11 s)
    policy, history = train_hierarchical(worlds, worlds.scores, seed=0, iterations=7)
    assert isinstance(policy, HierarchicalRerank) and sum(r.get("selected", False) for r in history) == 1
    assert next(r["iteration"] for r in history if r.get("selected")) <= 5  # the cap did not cut the selection short
    episodes = run_policies(worlds, {"greedy": HistoryGreedy(worlds.scores), "hierarchical": policy,
                                     "oracle": Oracle(None)}, 200, seed=99)
    report = {name: summary(ep, episodes["oracle"]) for name, ep in episodes.items()}
    assert report["hierarchical"]["return"]["click"]["ci"][0] > report["greedy"]["return"]["click"]["ci"][1]
    assert report["hierarchical"]["retention"]["ci"][0] > report["greedy"]["retention"]["ci"][1]
    intent = intent_report(worlds, policy, 200, seed=99)
    assert intent["lists"] > 10_000
    assert intent["agreement"] >= intent["chance"] + 0.02
    assert intent["novel_share_in_novelty_sessions"] >= intent["novel_share_in_other_sessions"] + 0.04
    assert set(intent["clicks"]) == {"inferred", "always familiar", "always novel"}
