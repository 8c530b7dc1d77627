"""Full-ranking evaluation: masking, who is left out and why, chunking, the sampled option."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.errors import ConfigError, DataError
from penchant.eval import build_target, evaluate
from penchant.models.base import Recommender

evaluate_module = importlib.import_module("penchant.eval.evaluate")


class FixedScores(Recommender):
    """Scores given up front: evaluation is then tested on its own."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        self.table = np.asarray(scores, dtype=np.float32)

    def params(self):
        return {}

    def _fit(self, train, valid):
        pass

    def _score(self, users):
        return self.table[users].copy()


def ds(pairs, n_users=4, n_items=5) -> Dataset:
    u = np.array([p[0] for p in pairs], np.int32)
    i = np.array([p[1] for p in pairs], np.int32)
    return Dataset(user_ids=np.array([f"u{k}" for k in range(n_users)], dtype=object),
                   item_ids=np.array([f"i{k}" for k in range(n_items)], dtype=object), users=u, items=i)


TRAIN = ds([(0, 0), (1, 1), (1, 2), (2, 0), (0, 4), (1, 4), (2, 4), (2, 3)])
VALID = ds([(0, 1)])
TEST = ds([(0, 2), (0, 3), (1, 0), (3, 1)])  # user 3 has no training history
SCORES = np.array([
    [9, 8, 7, 6, 5],   # user 0: items 0 (train) and 1 (valid) masked -> list 2, 3, 4
    [1, 9, 8, 2, 3],   # user 1: 1, 2 and 4 masked -> list 3, 0
    [5, 4, 3, 2, 1],
    [1, 1, 1, 1, 1],
], dtype=np.float32)


def test_hand_computed_full_ranking():
    model = FixedScores(SCORES).fit(TRAIN)
    r = evaluate(model, TRAIN, TEST, ks=[2], also_exclude=(VALID,), beyond_accuracy=False)
    assert r.users.tolist() == [0, 1]
    assert r.left_out["test_users_not_in_train"] == 1
    # user 0: list [2, 3], relevant {2, 3}: NDCG 1; user 1: list [3, 0], relevant {0}: DCG 1/log2(3)
    assert r.per_user["ndcg@2"].tolist() == pytest.approx([1.0, 1 / math.log2(3)])
    assert r.per_user["recall@2"].tolist() == pytest.approx([1.0, 1.0])
    assert r.per_user["precision@2"].tolist() == pytest.approx([1.0, 0.5])
    assert r.per_user["mrr@2"].tolist() == pytest.approx([1.0, 0.5])
    assert r.metrics()["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert r.protocol == "full ranking"


def test_a_users_mistake_in_evaluation_is_a_penchant_error():
    """A cut-off, option or name out of range is a ConfigError; results that cannot be compared
    or summarised are a DataError (both name what is wrong)."""
    from penchant.eval.cold import cold_item_ndcg
    from penchant.eval.conversation import conversation_metrics
    from penchant.eval.prefs import evaluate_pairs
    from penchant.eval.report import leaderboard
    from penchant.eval.reward_models import CellMeans

    model = FixedScores(SCORES).fit(TRAIN)
    with pytest.raises(ConfigError, match="cut-offs"):
        evaluate(model, TRAIN, TEST, ks=[0])
    with pytest.raises(ConfigError, match="no results to rank"):
        leaderboard([])
    full = evaluate(model, TRAIN, TEST, ks=[2], beyond_accuracy=False)
    other = evaluate(model, TRAIN, TEST, ks=[2], beyond_accuracy=False, sampled=2)
    with pytest.raises(DataError, match="same users with the same protocol"):
        leaderboard([full, other], "ndcg@2")
    with pytest.raises(ConfigError, match="resample must be"):
        evaluate_pairs(None, None, resample="options")
    with pytest.raises(ConfigError, match="candidates must be"):
        cold_item_ndcg(None, None, candidates="warm")
    with pytest.raises(DataError, match="no episodes"):
        conversation_metrics([])
    none = np.zeros(0, np.int64)
    with pytest.raises(ConfigError, match="unknown reward model 'everything'"):
        CellMeans(none, none, none, np.zeros(0), none, none, none, name="everything")


def test_cold_items_are_counted_and_not_relevant():
    train = ds([(0, 0), (1, 1), (1, 2), (2, 0), (0, 4), (1, 4), (2, 4)])  # nobody has item 3
    model = FixedScores(SCORES).fit(train)
    r = evaluate(model, train, TEST, ks=[2], also_exclude=(VALID,), beyond_accuracy=False)
    assert r.left_out["test_interactions_on_items_not_in_train"] == 1
    # user 0 keeps only item 2 as relevant; the list is [2, 3]
    assert r.per_user["precision@2"][0] == pytest.approx(0.5) and r.per_user["recall@2"][0] == 1.0


def test_without_valid_mask_the_valid_item_competes():
    model = FixedScores(SCORES).fit(TRAIN)
    r = evaluate(model, TRAIN, TEST, ks=[2], beyond_accuracy=False)
    # user 0's list is now [1, 2]: one hit at rank 2 of 2 relevant
    assert r.per_user["ndcg@2"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_seen_items_are_never_recommended(ml100k_split):
    from penchant.models import create

    sp = ml100k_split
    model = create("pop").fit(sp.train)
    users = np.arange(sp.train.n_users)
    items, _ = model.recommend(users, k=50)
    seen = sp.train.csr
    assert all(seen[u, items[u]].nnz == 0 for u in range(0, len(users), 37))
    r = evaluate(model, sp.train, sp.test, ks=[10], also_exclude=(sp.valid,))
    assert r.left_out["test_interactions_on_items_not_in_train"] == 17


def test_chunking_gives_identical_results(ml100k_split, monkeypatch):
    from penchant.models import create

    sp = ml100k_split
    model = create("itemknn").fit(sp.train)
    whole = evaluate(model, sp.train, sp.test, ks=[5, 10], also_exclude=(sp.valid,))
    monkeypatch.setattr(evaluate_module, "chunk_size", lambda n_items, **kw: 7)
    pieces = evaluate(model, sp.train, sp.test, ks=[5, 10], also_exclude=(sp.valid,))
    for key, values in whole.per_user.items():
        assert np.array_equal(values, pieces.per_user[key]), key
    assert whole.aggregate == pieces.aggregate


def test_sampled_ranking_is_labelled_and_easier():
    rng = np.random.default_rng(1)
    n_users, n_items = 30, 200
    train = ds([(u, i) for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)], n_users, n_items)
    seen = train.csr.toarray() > 0
    test_pairs = []
    for u in range(n_users):
        free = np.flatnonzero(~seen[u])
        test_pairs += [(u, int(i)) for i in rng.choice(free, 2, replace=False)]
    test = ds(test_pairs, n_users, n_items)
    model = FixedScores(rng.random((n_users, n_items))).fit(train)
    full = evaluate(model, train, test, ks=[10], beyond_accuracy=False)
    sampled = evaluate(model, train, test, ks=[10], sampled=20, seed=3, beyond_accuracy=False)
    assert "sampled: 20 negatives" in sampled.protocol and "not full ranking" in sampled.protocol
    assert sampled.to_json()["protocol"] == sampled.protocol
    assert sampled.metrics()["recall@10"] > full.metrics()["recall@10"]
    again = evaluate(model, train, test, ks=[10], sampled=20, seed=3, beyond_accuracy=False)
    assert np.array_equal(again.per_user["ndcg@10"], sampled.per_user["ndcg@10"])


def test_sampled_candidates_exclude_seen_and_count_exactly():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    rel = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32))
    ex = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=np.float32))
    cand = evaluate_module._sampled_candidates(2, 6, rel, ex, 3, rng)
    assert cand.sum(axis=1).tolist() == [4, 4]
    assert not cand[0, 1] and not cand[1, 0] and not cand[1, 1] and cand[0, 0] and cand[1, 5]


def test_targets_are_shared_so_models_see_the_same_users():
    t = build_target(TRAIN, TEST, (VALID,))
    assert t.users.tolist() == [0, 1] and t.left_out["test_users_not_in_train"] == 1


def test_top_k_breaks_ties_by_item_index_even_at_the_cut():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from penchant.models.ranking import top_k

    @settings(max_examples=200, deadline=None)
    @given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(2, 40)), elements=st.sampled_from([0.0, 1.0, 2.0, -np.inf])),
           st.integers(1, 40), st.booleans())
    def check(scores, k, by_torch):
        k = min(k, scores.shape[1])
        with pytest.MonkeyPatch.context() as mp:  # large matrices are cut by torch.topk: the same lists
            mp.setattr("penchant.models.ranking.TORCH_CELLS", 1 if by_torch else 1 << 60)
            items, values = top_k(scores.copy(), k)
        for row, got, got_values in zip(scores, items, values):
            expected = np.lexsort((np.arange(len(row)), -row))[:k]
            assert got.tolist() == expected.tolist()
            assert got_values.tolist() == row[expected].tolist()

    check()
