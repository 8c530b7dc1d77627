"""EAR and CPR as the papers build them: the attribute-aware FM by hand (scores, fold-in,
reflection), EAR's state by hand on a small graph, and the trained policies on MovieLens-100K's
cold setting: EAR asks, each is compared with greedy where its claim holds, and a saved policy acts
as the trained one did."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.converse.cpr import ConversationalPathReasoning, count_bits
from penchant.converse.ear import EstimationActionReflection, history_counts, length_one_hot
from penchant.converse.fm import AttributeFM
from penchant.converse.simulator import run_episode
from penchant.converse.state import ConversationState, Scorer
from tests.converse.test_converse import small_graph

pytestmark = pytest.mark.xdist_group("converse-cold")  # shares the trained policies of conftest.py


def tiny_fm() -> AttributeFM:
    """3 items, 2 values, dim 2."""
    V = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    P = np.array([[1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    b = np.array([0.0, 0.5, -0.5], dtype=np.float32)
    W = np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 0.0]], dtype=np.float32)
    return AttributeFM(V, P, b, W)


def test_fm_scores_by_hand():
    """Two users (histories [0] and [1, 2]), three items, two values: u = |H|^(−½) Σ w_j;
    ŷ_i = u·v_i + Σ_accepted v_i·p + b_i; ĝ_a = u·p_a + Σ_accepted p_a·p."""
    fm = tiny_fm()
    ua, ub = fm.user_vector(np.array([0])), fm.user_vector(np.array([1, 2]))
    np.testing.assert_allclose(ua, [1, 1])
    np.testing.assert_allclose(ub, [np.sqrt(2), np.sqrt(2)])
    np.testing.assert_allclose(fm.item_scores(ua, [0]), [2, 1.5, 2.5])  # q = (2, 1)
    np.testing.assert_allclose(fm.value_scores(ua, [0]), [2, -1])
    r2 = np.sqrt(2)
    np.testing.assert_allclose(fm.item_scores(ub, []), [r2, r2 + 0.5, 2 * r2 - 0.5])
    np.testing.assert_allclose(fm.item_scores(ub, [0, 1]), [r2 + 1, r2 - 1 + 0.5, 2 * r2 - 0.5])


def test_fold_in_of_an_empty_history_is_the_prior():
    """A cold user is the zero vector: items rank by Σ_accepted v·p + b alone, values by the accepted ones."""
    fm = tiny_fm()
    u = fm.user_vector(np.zeros(0, dtype=np.int64))
    assert u.shape == (2,) and not u.any()
    np.testing.assert_allclose(fm.item_scores(u, []), fm.b)
    np.testing.assert_allclose(fm.item_scores(u, [0]), [1, 0.5, 0.5])
    np.testing.assert_allclose(fm.value_scores(u, []), [0, 0])


def test_reflection_lowers_the_rejected_items_scores():
    fm = tiny_fm()
    for history in (np.array([0]), np.zeros(0, dtype=np.int64)):
        u = fm.user_vector(history)
        after = fm.reflect(u, [0], [2], history=history, steps=10, lr=0.5)
        before_s, after_s = fm.item_scores(u, [0]), fm.item_scores(after, [0])
        assert after_s[2] < before_s[2] - 0.1, (history, before_s, after_s)
        # the rejected item falls more than the others do on average
        assert after_s[2] - before_s[2] < np.mean(after_s[:2] - before_s[:2]) - 0.1
    np.testing.assert_allclose(fm.reflect(u, [0], [], steps=10), u)


def test_fm_fit_learns_the_training_pairs():
    """Two groups of users on a 6-item graph: after fitting, a user folded in from one item of their
    group ranks the group's other items above the other group's."""
    g = small_graph()
    rows = [u for u in range(40) for _ in range(3)]
    cols = [i for u in range(40) for i in ((0, 1, 2) if u % 2 else (3, 4, 5))]
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, 6))
    fm = AttributeFM.fit(g, train, dim=8, epochs=30, batch=64, lr=0.05, reg=0.0, cold_share=0.0, seed=0)
    s = fm.item_scores(fm.user_vector(np.array([0])), [])
    assert min(s[1], s[2]) > max(s[3:]), s
    s = fm.item_scores(fm.user_vector(np.array([4])), [])
    assert min(s[3], s[5]) > max(s[:3]), s


def test_ear_state_by_hand_on_the_small_graph():
    """Opening "decade X" (items 0, 3): genres A and B split the candidates (entropy 1), decade Y
    holds none (not askable); preference σ(p_a·(u + p_X)) with u = 0 (no history); history counts at
    turn 1; two candidates → the first length bucket. The recommend row pools the askable values."""
    g = small_graph()
    ear = EstimationActionReflection(g)
    P = np.array([[1, 0], [0, 2], [1, 1], [-1, 0]], dtype=np.float32)
    ear.fm = AttributeFM(np.zeros((6, 2), np.float32), P, np.zeros(6, np.float32), np.zeros((6, 2), np.float32))
    state = ConversationState.start(0, 6)
    state.accept(g, 2)
    state.turn = 1
    parts = ear.state_parts(state)
    sig = 1 / (1 + np.exp(-np.array([1.0, 2.0, 0.0, -1.0])))
    np.testing.assert_allclose(parts["entropy"], [1, 1, 0, 0])
    np.testing.assert_allclose(parts["preference"], [sig[0], sig[1], 0, sig[3]])
    assert parts["askable"].tolist() == [True, True, False, False]
    np.testing.assert_allclose(parts["history"], np.array([0, 0, 0, 1]) / 15)
    assert parts["length"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    values, rows = ear.action_rows(parts)
    assert values.tolist() == [0, 1] and rows.shape == (3, ear.n_features)
    shared = [0, 0, 0, 1 / 15, 1, 0, 0, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(rows[0], [1, sig[0], 1, 0, 0] + shared, rtol=1e-6)  # genre A (type genre)
    np.testing.assert_allclose(rows[1], [1, sig[1], 1, 0, 0] + shared, rtol=1e-6)
    np.testing.assert_allclose(rows[2], [1, sig[1], 0, 0, 1] + shared, rtol=1e-6)  # recommend
    # a rejected question and a rejected list count; 60 candidates fall in the 51–100 range
    state.reject(3)
    state.reject_items(np.array([0]))
    np.testing.assert_allclose(history_counts(state, list_size=1), np.array([0, 1, 1, 1]) / 15)
    assert length_one_hot(60).tolist() == [0, 0, 1, 0, 0, 0, 0, 0] and length_one_hot(5000)[-1] == 1
    assert count_bits(5, 4).tolist() == [0, 1, 0, 1]


def test_cpr_asks_the_preference_weighted_entropy_among_adjacent_values():
    """CPR's question: among the values held by some candidates, the entropy of each value's share of
    the candidates weighted by σ(FM score). Opening genre A (items 0–2): decade X holds item 0, Y
    items 1 and 2, so both have H(σ(ŷ_0) / Σ σ(ŷ_i)); genre B holds no candidate (not adjacent)."""
    g = small_graph()
    cpr = ConversationalPathReasoning(g)
    b = np.array([3.0, -1.0, -1.0, 0.0, 0.0, 0.0], np.float32)
    cpr.fm = AttributeFM(np.zeros((6, 2), np.float32), np.zeros((4, 2), np.float32), b, np.zeros((6, 2), np.float32))
    state = ConversationState.start(0, 6)
    state.accept(g, 0)
    ranking = cpr.question_ranking(state)
    w = 1 / (1 + np.exp(-b[:3]))
    px = w[0] / w.sum()
    h = -(px * np.log2(px) + (1 - px) * np.log2(1 - px))
    assert np.isneginf(ranking[[0, 1]]).all()  # asked; held by no candidate
    np.testing.assert_allclose(ranking[[2, 3]], [h, h])
    np.testing.assert_allclose(cpr.features(state)[:4], [0, 0, 0, 0])
    assert cpr.features(state)[4:].tolist() == count_bits(3, cpr.bits).tolist()


def test_multi_choice_and_the_task_scorer_mixed_in():
    """multi_choice offers values of one type (the chosen one first); recommending ranks by the FM,
    and with ``scorer_mix`` the task scorer's standardised scores join the FM's."""
    g = small_graph()
    fm = AttributeFM(np.zeros((6, 2), np.float32), np.zeros((4, 2), np.float32),
                     np.array([0, 1, 2, 3, 4, 5], np.float32), np.zeros((6, 2), np.float32))
    state = ConversationState.start(0, 6)
    state.accept(g, 3)  # decade Y: items 1, 2, 4, 5
    cpr = ConversationalPathReasoning(g, multi_choice=2)
    cpr.fm = fm
    asked = cpr.ask(state, cpr.question_ranking(state))
    assert asked.kind == "ask" and sorted(asked.values) == [0, 1]  # the genres, one type
    base = np.array([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])  # the task scorer prefers low indices
    assert cpr.recommend(state, Scorer(g, base)).items[:2] == (5, 4)  # the FM's order (its biases)
    mixed = ConversationalPathReasoning(g, scorer_mix=10.0)
    mixed.fm = fm
    assert mixed.recommend(state, Scorer(g, base)).items[:2] == (1, 2)
    # EAR's network set to score 10·entropy − 10·[recommend]: it asks, offering the chosen value first
    import torch

    ear = EstimationActionReflection(g, multi_choice=2, hidden=1)
    ear.fm = fm
    with torch.no_grad():
        for p in ear.net.parameters():
            p.zero_()
        ear.net[0].weight[0, 0], ear.net[0].weight[0, 2 + ear.n_types], ear.net[2].weight[0, 0] = 10.0, -10.0, 1.0
    asked = ear.act(state, Scorer(g, base))
    assert asked.kind == "ask" and asked.values == (0, 1)


# ---------------------------------------------------------------- trained, on MovieLens-100K (cold users)
# cold_setup and trained: tests/converse/conftest.py


def test_ear_asks_in_the_cold_setting(trained):
    policies, results = trained
    assert policies["ear"].fm is policies["cpr"].fm  # one FM, fitted once
    assert results["ear"]["questions_per_episode"] >= 1, results["ear"]


def test_learned_policies_against_greedy_and_max_entropy_in_the_cold_setting(trained):
    """Cold users, 300 seeded test episodes: EAR and CPR find more targets within 15 turns than
    recommending at once (greedy), and end sooner with higher hDCG than max-entropy asking, each
    with 95% intervals apart. (Turns and hDCG against greedy need more episodes: the 2,000-episode
    tables in docs/conversation.md.)"""
    _, results = trained
    greedy, maxent = results["greedy"], results["maxent"]
    for name in ("ear", "cpr"):
        r = results[name]
        assert r["sr@15_ci"][0] > greedy["sr@15_ci"][1], (name, r["sr@15_ci"], greedy["sr@15_ci"])
        assert r["avg_turns_ci"][1] < maxent["avg_turns_ci"][0], (name, r["avg_turns_ci"], maxent["avg_turns_ci"])
        assert r["hdcg_ci"][0] > maxent["hdcg_ci"][1], (name, r["hdcg_ci"], maxent["hdcg_ci"])
    # SCPR's claim, fewer turns than EAR, is not reproduced (nor at 2,000 episodes, in any setting):
    # CPR's interval on turns does not lie below EAR's
    assert results["cpr"]["avg_turns_ci"][0] <= results["ear"]["avg_turns_ci"][1], (results["cpr"], results["ear"])


def test_saved_state_acts_as_the_trained_policy(trained, cold_setup):
    """state_arrays → a fresh policy → load_state_arrays: the same actions in every episode."""
    from penchant.converse.policies import create_policy

    policies, _ = trained
    users, targets = cold_setup.test
    for name, policy in policies.items():
        fresh = create_policy(name, cold_setup.graph, **policy.params())
        fresh.load_state_arrays({k: a.copy() for k, a in policy.state_arrays().items()})
        scorer = Scorer(cold_setup.graph, cold_setup.base)
        for u, t in zip(users[:40], targets[:40]):
            ex = cold_setup.test_exclude[u].indices
            a = run_episode(policy, scorer, cold_setup.graph, int(u), int(t), exclude=ex, rng=np.random.default_rng(1))
            b = run_episode(fresh, scorer, cold_setup.graph, int(u), int(t), exclude=ex, rng=np.random.default_rng(1))
            assert (a.actions, a.asked, a.turn, a.rank) == (b.actions, b.asked, b.turn, b.rank), name


def test_untrained_fm_policies_refuse_to_converse():
    from penchant.errors import ConfigError

    g = small_graph()
    state = ConversationState.start(0, 6)
    state.accept(g, 0)
    for cls in (EstimationActionReflection, ConversationalPathReasoning):
        with pytest.raises(ConfigError, match="must be trained"):
            cls(g).act(state, Scorer(g, np.zeros((1, 6))))
