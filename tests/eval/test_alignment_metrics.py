"""Ranking accuracy, Chen et al.'s idealised ranking accuracy, preference shares from a rating log and
the KL from the reference, each against a hand computation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from penchant.data import Dataset, PreferencePairs
from penchant.errors import DataError
from penchant.eval.alignment import (
    idealised_correct,
    idealised_ranking_accuracy,
    kl_from_reference,
    preference_shares,
    ranking_accuracy,
)

N_ITEMS = 4


def table_net(table: np.ndarray):
    """A sequential net whose hidden state is the last item's row: log π(j | s) = log_softmax(e_last · e_j)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

        def items(self):
            return self.table

        def forward(self, seqs, table):
            return table[seqs]

    return Net()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


TABLE = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 0.3], [0.0, 0.0]])  # last row: padding
OTHER = np.array([[0.2, 0.1], [0.9, -0.4], [0.5, 0.5], [0.3, 0.3], [0.0, 0.0]])


def pairs_after(last: list[int], winner: list[int], loser: list[int]) -> PreferencePairs:
    n = len(last)
    history = np.stack([np.full(n, N_ITEMS), np.asarray(last)], axis=1).astype(np.int64)
    return PreferencePairs(np.full(n, -1), np.asarray(winner, np.int64), np.asarray(loser, np.int64), np.arange(n),
                           np.array([], dtype=object), np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object),
                           history=history)


def test_ranking_accuracy_and_kl_by_hand():
    pairs = pairs_after([0, 0, 1, 2], [0, 1, 0, 1], [1, 0, 1, 0])
    model = SimpleNamespace(net_=table_net(TABLE), n_items_=N_ITEMS)
    logits = TABLE[[0, 0, 1, 2]] @ TABLE[:N_ITEMS].T
    # after item 0: scores 1, 0 → (0 ≻ 1) right, (1 ≻ 0) wrong; after 1: (0 ≻ 1) wrong; after 2: 0.5 = 0.5, a tie
    assert logits[3, 0] == logits[3, 1]
    assert ranking_accuracy(model, pairs) == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    p, q = log_softmax(logits), log_softmax(OTHER[[0, 0, 1, 2]] @ OTHER[:N_ITEMS].T)
    expected = float(np.mean((np.exp(p) * (p - q)).sum(1)))
    assert kl_from_reference(model, table_net(OTHER), pairs.history) == pytest.approx(expected, rel=1e-5)
    assert kl_from_reference(model, table_net(TABLE), pairs.history) == pytest.approx(0.0, abs=1e-6)


def test_idealised_correct_by_hand():
    ref_w, ref_l = np.log([0.2, 0.2, 0.2, 0.2, 0.2, 0.3]), np.log([0.5, 0.5, 0.5, 0.5, 0.5, 0.3])
    alpha = np.array([0.8, 0.8, 0.5, 1.0, 0.0, 0.5])
    # π*(w)/π*(l) = 0.4 · 4^(1/β): β = 1 → 1.6 (right), β = 2 → 0.8 (wrong); α = ½ keeps the reference's
    # order (wrong, or a tie); α = 1 always right, α = 0 always wrong
    assert idealised_correct(ref_w, ref_l, alpha, beta=1.0).tolist() == [1, 1, 0, 1, 0, 0.5]
    assert idealised_correct(ref_w, ref_l, alpha, beta=2.0).tolist() == [0, 0, 0, 1, 0, 0.5]


@pytest.mark.parametrize("beta", [0.1, 0.7, 3.0])
def test_idealised_ranking_matches_the_optimum_of_the_kl_regularised_reward(beta):
    """Chen et al.'s Theorem 3.1 from first principles: π* ∝ π_ref · exp(r*/β) over a catalogue, with a
    Bradley–Terry reward r* whose σ(r*(w) − r*(l)) is α, orders every pair as the formula says."""
    rng = np.random.default_rng(0)
    pi_ref = rng.dirichlet(np.ones(6))
    reward = rng.normal(0, 0.3, 6)
    pi_star = pi_ref * np.exp(reward / beta)
    pi_star /= pi_star.sum()
    w, l = np.triu_indices(6, 1)
    alpha = 1 / (1 + np.exp(-(reward[w] - reward[l])))
    assert np.allclose(pi_star[w] / pi_star[l], pi_ref[w] / pi_ref[l] * (alpha / (1 - alpha)) ** (1 / beta))
    got = idealised_correct(np.log(pi_ref[w]), np.log(pi_ref[l]), alpha, beta)
    assert got.tolist() == (pi_star[w] > pi_star[l]).astype(float).tolist()
    assert 0 < got.mean() < 1  # the toy exercises both outcomes


def test_idealised_ranking_accuracy_counts_pairs_without_a_share():
    pairs = pairs_after([0, 0, 1, 2], [0, 1, 0, 3], [1, 0, 1, 0])
    alpha = np.array([0.5, 0.9, np.nan, 0.5])
    got = idealised_ranking_accuracy(table_net(TABLE), pairs, alpha, beta=1.0, n_items=N_ITEMS)
    # after 0, α = ½: the reference ranks 0 over 1 (right); after 0, α = 0.9: log(e⁰/e¹) + log 9 > 0 (right);
    # after 2, α = ½: scores of 3 and 0 are −0.35 and 0.5 (wrong)
    assert (got.accuracy, got.used, got.skipped) == (pytest.approx(2 / 3), 3, 1)
    with pytest.raises(DataError, match="shape"):
        idealised_ranking_accuracy(table_net(TABLE), pairs, alpha[:2], beta=1.0, n_items=N_ITEMS)


def test_preference_shares_from_users_who_rated_both_items():
    # item 0 vs 1: users a (5 > 2), b (4 > 3), c (3 = 3), d (1 < 4); e rated item 0 only
    # item 2 vs 3: nobody rated both
    users = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 0, 1], np.int32)
    items = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 3], np.int32)
    ratings = np.array([5, 2, 4, 3, 3, 3, 1, 4, 5, 4, 4], np.float32)
    log = Dataset(np.array(list("abcde"), dtype=object), np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object),
                  users, items, ratings=ratings, timestamps=np.arange(len(users), dtype=np.float64))
    pairs = pairs_after([0, 0, 0], [0, 1, 2], [1, 0, 3])
    alpha = preference_shares(log, pairs, prior=1.0)
    assert alpha[0] == pytest.approx((2 + 0.5 + 1) / (4 + 2))
    assert alpha[1] == pytest.approx((1 + 0.5 + 1) / (4 + 2))
    assert np.isnan(alpha[2])
    assert preference_shares(log, pairs, prior=0.0)[0] == pytest.approx(2.5 / 4)
