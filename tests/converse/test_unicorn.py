"""UNICORN: the graph state's rows of Λ against the whole graph by hand, the reduced action space,
prioritized replay, the saved arrays' round trip, and the claim on MovieLens-100K's cold users."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from penchant.converse.fm import AttributeFM
from penchant.converse.state import ConversationState
from penchant.converse.unicorn import Unicorn
from penchant.converse.unicorn_dqn import PrioritizedReplay, sequence_rows
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import DataError

# eight items over five values: 0 genre A (0-3), 1 genre B (4-7), 2 decade X (0, 1, 4), 3 decade Y (2, 3, 5, 6, 7),
# 4 country C (1, 2, 5)
HAS = {0: [0, 1, 2, 3], 1: [4, 5, 6, 7], 2: [0, 1, 4], 3: [2, 3, 5, 6, 7], 4: [1, 2, 5]}


def small_graph() -> AttributeGraph:
    rows = [i for v in HAS for i in HAS[v]]
    cols = [v for v in HAS for _ in HAS[v]]
    items = sp.csr_matrix((np.ones(len(rows), bool), (rows, cols)), shape=(8, 5))
    return AttributeGraph(items, np.array(["A", "B", "X", "Y", "C"], dtype=object), np.array([0, 0, 1, 1, 2]),
                          ("genre", "decade", "country"), np.array(["g=A", "g=B", "y=X", "y=Y", "c=C"], dtype=object))


def untrained(graph: AttributeGraph, dim: int = 4, **params) -> Unicorn:
    """A policy over a random FM (seeded), networks built but not trained."""
    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    policy = Unicorn(graph, dim=dim, hidden=8, heads=2, **params)
    policy.fm = AttributeFM(f(graph.n_items, dim), f(graph.n_values, dim), f(graph.n_items), f(graph.n_items, dim))
    policy._build()
    return policy


def test_sequence_rows_are_the_normalised_adjacency_of_the_whole_graph():
    """The user and accepted-value rows of Λ = D^-½ A D^-½, built whole by hand for one state
    (user; accepted genre A; candidates 0-3 less rejected item 3; decade Y rejected), equal the rows
    the encoder uses."""
    g = small_graph()
    policy = untrained(g)
    state = ConversationState.start(0, 8, exclude=np.array([6]))
    state.history = np.array([6])
    state.accept(g, 0)
    state.reject(3)
    state.reject_items(np.array([3]))
    snap, _, _ = policy.snapshot(state)
    cand = [0, 1, 2]
    assert snap.items.tolist() == cand
    values = [0, 2, 4]  # held by the candidates, decade Y (rejected) left out
    nodes = ["u"] + [("i", i) for i in cand] + [("v", v) for v in values]
    at = {n: k for k, n in enumerate(nodes)}
    a = np.zeros((len(nodes), len(nodes)))
    for k, i in enumerate(cand):
        a[0, at["i", i]] = a[at["i", i], 0] = snap.weights[k]
        for v in values:
            if i in HAS[v]:
                a[at["i", i], at["v", v]] = a[at["v", v], at["i", i]] = 1.0
    d = a.sum(1)
    lam = a / np.sqrt(np.outer(d, d))
    rows = sequence_rows([snap], g.n_items).rows.to_dense().numpy()
    assert rows.shape == (2, 8)
    np.testing.assert_allclose(rows[0, cand], lam[0, 1:4], rtol=1e-5)
    np.testing.assert_allclose(rows[1, cand], lam[at["v", 0], 1:4], rtol=1e-5)
    assert not rows[:, [3, 4, 5, 6, 7]].any()


def test_action_space_is_preferred_items_and_weighted_entropy_values():
    """K_v = 2 items of largest preference among the candidates; K_p = 2 values of largest
    preference-weighted entropy, never one asked or held by no candidate; with no more candidates
    than a list holds, they are shown by preference."""
    g = small_graph()
    policy = untrained(g, item_actions=2, value_actions=2, list_size=4)
    state = ConversationState.start(0, 8)
    state.accept(g, 0)
    state.reject(4)
    snap, entropy, ranked = policy.snapshot(state)
    cand = np.arange(4)
    s, _ = policy.preference(state, cand)
    w = 1 / (1 + np.exp(-s))
    expect = {v: -(p * np.log2(p) + (1 - p) * np.log2(1 - p)) for v in (2, 3)
              for p in [w[[i for i in HAS[v] if i < 4]].sum() / w.sum()]}
    assert set(np.flatnonzero(entropy)) == {2, 3}  # A accepted (share 1), C rejected, B held by none
    np.testing.assert_allclose([entropy[2], entropy[3]], [expect[2], expect[3]], rtol=1e-6)
    items = snap.actions[snap.actions < 8]
    assert set(items) == set(cand[np.argsort(-s)[:2]])
    assert sorted(snap.actions[snap.actions >= 8] - 8) == [2, 3]
    action = policy.act(state, None)
    assert action.kind == "recommend"  # four candidates ≤ the list size: all of them by preference, no network
    assert action.items == tuple(int(i) for i in cand[np.argsort(-s)]) == tuple(ranked)



def test_multi_choice_offers_the_chosen_value_and_its_type():
    """In the multi-choice variant the value the Q-network chose is offered with the other values of
    its type (here decade Y chosen: both decades); an item chosen shows the item actions by Q."""
    g = small_graph()
    policy = untrained(g, multi_choice=3, list_size=2)
    state = ConversationState.start(0, 8)
    state.accept(g, 0)
    snap, _, _ = policy.snapshot(state)
    chosen = {"value": 8 + 3}
    policy.q_values = lambda s: np.where(s.actions == chosen["value"], 1.0, -np.arange(len(s.actions), dtype=float))
    action = policy.act(state, None)
    assert action.kind == "ask" and action.values == (3, 2), action
    chosen["value"] = -1  # no action matches: the first item action has the largest Q, the items follow in Q order
    action = policy.act(state, None)
    items = snap.actions[snap.actions < 8]
    assert action.kind == "recommend" and action.items == tuple(int(i) for i in items[:2])

def test_prioritized_replay_samples_by_priority_and_weights_back():
    rng = np.random.default_rng(0)
    memory = PrioritizedReplay(4, rng, alpha=1.0, eps=0.0, beta=1.0, beta_step=0.0)
    for k in range(4):
        memory.push(k, 0, 0.0, None)
    memory.update(np.arange(4), np.array([1.0, 1.0, 1.0, 7.0]))
    counts = np.zeros(4)
    for _ in range(500):
        idx, batch, weights = memory.sample(10)
        counts += np.bincount(idx, minlength=4)
        assert [b[0] for b in batch] == idx.tolist()
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.1, 0.1, 0.7], atol=0.02)
    idx, _, weights = memory.sample(10)
    np.testing.assert_allclose(weights, np.where(idx == 3, 1 / 7, 1.0), rtol=1e-6)  # (N·P)^-1 / max


def test_a_new_transition_is_sampled_first():
    memory = PrioritizedReplay(8, np.random.default_rng(0), alpha=1.0, eps=0.0)
    for k in range(3):
        memory.push(k, 0, 0.0, None)
    memory.update(np.arange(3), np.full(3, 0.001))
    memory.push(3, 0, 0.0, None)  # the largest error seen (the initial 0.1) is its priority
    idx, _, _ = memory.sample(8)
    assert (idx == 3).mean() > 0.9


def played(setup, policy, n: int | None = None, seed: int = 0) -> tuple[list, list]:
    """The first ``n`` test episodes of ``setup`` played by ``policy``: (results, actions of every turn)."""
    from penchant.converse.simulator import run_episode
    from penchant.converse.state import Scorer

    actions = []

    class Spy:
        def act(self, state, scorer):
            action = policy.act(state, scorer)
            actions.append(action)
            return action

    rng, ex, scorer = np.random.default_rng(seed), setup.test_exclude, Scorer(setup.graph, setup.base)
    results = [run_episode(Spy(), scorer, setup.graph, int(u), int(t), exclude=ex.indices[ex.indptr[u]:ex.indptr[u + 1]],
                           rng=rng) for u, t in zip(*(a[:n] for a in setup.test))]
    return results, actions


@pytest.fixture(scope="module")
def cold(shared_data):
    """Cold users of MovieLens-100K, coarse attributes, 300 test episodes; UNICORN trained small (FM
    of 16 dimensions, 8 epochs; one pass of the DQN over 100 fitting episodes, batch 16, selected
    once on 100)."""
    from penchant.converse.experiment import prepare
    from penchant.converse.policies import create_policy
    from penchant.data import load

    setup = prepare(load(shared_data / "ml-100k"), "coarse", setting="cold", episodes=300, valid_episodes=200, seed=0)
    policy = create_policy("unicorn", setup.graph, dim=16, hidden=16, fm_epochs=8, epochs=1, selections=1, batch=16)
    policy.fit(setup.trainer())
    return setup, policy, {"unicorn": played(setup, policy), "greedy": played(setup, create_policy("greedy", setup.graph))}


def test_unicorn_asks_and_beats_greedy_for_cold_users(cold):
    """The claim where asking matters: for users the scorer never saw, UNICORN asks (more than one
    question per conversation, and still shows lists) and finds more targets within 15 turns than
    recommending at once (greedy: the EASE scorer's popularity prior), the paired 95% bootstrap
    interval of the difference above 0 on the same 300 episodes (at 2,000 episodes the intervals of
    the two rates are apart: docs/conversation.md). Its hDCG is not claimed: at this size it falls
    below greedy's, at 2,000 episodes and full training the two overlap."""
    _, _, r = cold
    (uni, uni_actions), (greedy, _) = r["unicorn"], r["greedy"]
    asks = sum(a.kind == "ask" for a in uni_actions) / len(uni)
    lists = sum(a.kind == "recommend" for a in uni_actions) / len(uni)
    assert asks > 1 and lists > 0.5, (asks, lists)
    hit_u = np.array([x.turn is not None for x in uni], dtype=float)
    hit_g = np.array([x.turn is not None for x in greedy], dtype=float)
    diff = hit_u - hit_g
    boot = np.random.default_rng(0).choice(diff, (1000, len(diff))).mean(1)
    assert np.percentile(boot, 2.5) > 0, (hit_u.mean(), hit_g.mean(), np.percentile(boot, [2.5, 97.5]))


def test_saved_arrays_give_the_same_conversation(cold):
    """state_arrays → a fresh policy's load_state_arrays: the same parameters and the same actions,
    turn by turn, on 60 test episodes; arrays for another graph are refused."""
    setup, policy, _ = cold
    arrays = policy.state_arrays()
    assert {"fm.V", "fm.P", "fm.b", "fm.W", "encoder.embedding"} <= set(arrays)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    fresh = Unicorn(setup.graph, **policy.params())
    fresh.load_state_arrays(arrays)
    for name, param in policy.encoder.state_dict().items():
        torch.testing.assert_close(fresh.encoder.state_dict()[name], param, rtol=0, atol=0)

    def transcript(p) -> list:
        return played(setup, p, 60, seed=5)[1]

    first = transcript(policy)
    assert any(a.kind == "ask" for a in first) and any(a.kind == "recommend" for a in first)
    assert transcript(fresh) == first
    with pytest.raises(DataError, match="unicorn's arrays are for"):
        Unicorn(small_graph(), dim=16, hidden=16).load_state_arrays(arrays)
