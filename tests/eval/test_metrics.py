"""Each metric against values computed by hand, plus invariants checked with hypothesis."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from penchant.eval import metrics as M

# One user, list of 5, relevant at ranks 1, 3 and 4; 4 relevant items in all.
HITS = np.array([[True, False, True, True, False]])
NREL = np.array([4])


def test_precision_recall_hit():
    assert M.precision_at_k(HITS, 5)[0] == pytest.approx(3 / 5)
    assert M.precision_at_k(HITS, 2)[0] == pytest.approx(1 / 2)
    assert M.recall_at_k(HITS, NREL, 5)[0] == pytest.approx(3 / 4)
    assert M.recall_at_k(HITS, NREL, 1)[0] == pytest.approx(1 / 4)
    assert M.hit_at_k(HITS, 1)[0] == 1.0
    assert M.hit_at_k(np.array([[False, False, True]]), 2)[0] == 0.0


def test_ndcg_by_hand():
    dcg = 1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(5)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)  # min(R=4, K=5) = 4 terms
    assert M.ndcg_at_k(HITS, NREL, 5)[0] == pytest.approx(dcg / idcg)
    # K=3: DCG = 1 + 1/2, IDCG over min(4,3) = 3 terms
    assert M.ndcg_at_k(HITS, NREL, 3)[0] == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3) + 0.5))
    # fewer relevant than K: IDCG stops at R
    assert M.ndcg_at_k(np.array([[False, True, False]]), np.array([1]), 3)[0] == pytest.approx(1 / math.log2(3))


def test_mrr_and_map_by_hand():
    assert M.mrr_at_k(HITS, 5)[0] == 1.0
    assert M.mrr_at_k(np.array([[False, False, True]]), 3)[0] == pytest.approx(1 / 3)
    assert M.mrr_at_k(np.array([[False, False, True]]), 2)[0] == 0.0
    # AP@5 = (1/1 + 2/3 + 3/4) / min(4, 5)
    assert M.map_at_k(HITS, NREL, 5)[0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 4)
    # AP@3 = (1 + 2/3) / min(4, 3)
    assert M.map_at_k(HITS, NREL, 3)[0] == pytest.approx((1 + 2 / 3) / 3)


def test_coverage_gini_by_hand():
    lists = np.array([[0, 1], [0, 2]])
    assert M.coverage(lists, 5) == pytest.approx(3 / 5)
    # counts sorted: 0,0,1,1,2 ; G = Σ (2j-n-1) c_j / (n Σc) = ((-4)0+(-2)0+0·1+2·1+4·2)/(5·4)
    assert M.gini(lists, 5) == pytest.approx(10 / 20)
    assert M.gini(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)


def test_novelty_and_arp_by_hand():
    item_users = np.array([8, 4, 0, 1])
    info = M.self_information(item_users, 8)
    assert info.tolist() == pytest.approx([0.0, 1.0, 3.0, 3.0])  # p = 8/8, 4/8, max(1,0)/8, 1/8
    assert M.novelty(np.array([[0, 1]]), info)[0] == pytest.approx(0.5)
    assert M.average_popularity(np.array([[0, 1, 3]]), item_users)[0] == pytest.approx(13 / 3)


def test_ild_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    feats = sp.csr_matrix((rng.random((12, 5)) < 0.4).astype(np.float64))
    lists = np.stack([rng.choice(12, size=4, replace=False) for _ in range(6)])
    got = M.intra_list_diversity(lists, feats)
    dense = feats.toarray()
    for row, value in zip(lists, got):
        dists = []
        for a, b in itertools.permutations(row, 2):
            na, nb = np.linalg.norm(dense[a]), np.linalg.norm(dense[b])
            cos = 0.0 if na == 0 or nb == 0 else dense[a] @ dense[b] / (na * nb)
            dists.append(1 - cos)
        assert value == pytest.approx(np.mean(dists))


hit_rows = arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 12)))


@settings(max_examples=150, deadline=None)
@given(hit_rows, st.data())
def test_invariants(hits, data):
    n, k = hits.shape
    extra = data.draw(arrays(np.int64, n, elements=st.integers(0, 5)))
    n_rel = np.maximum(hits.sum(axis=1) + extra, 1)
    for name, values in M.accuracy_metrics(hits, n_rel, [k]).items():
        assert np.all(values >= -1e-12) and np.all(values <= 1 + 1e-12), name
    # a list with every relevant item on top scores NDCG 1
    perfect = np.zeros_like(hits)
    for r in range(n):
        perfect[r, :min(k, n_rel[r])] = True
    assert np.allclose(M.ndcg_at_k(perfect, n_rel, k), 1.0)
    # metrics grow (or stay) when a miss becomes a hit
    if (~hits).any():
        r, c = np.argwhere(~hits)[0]
        better = hits.copy()
        better[r, c] = True
        n2 = np.maximum(n_rel, better.sum(axis=1))
        assert M.ndcg_at_k(better, n2, k)[r] >= M.ndcg_at_k(hits, n2, k)[r] - 1e-12
        assert M.recall_at_k(better, n2, k)[r] >= M.recall_at_k(hits, n2, k)[r]
