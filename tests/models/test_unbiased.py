"""The exposure-biased world and the propensity-weighted learners' objectives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from penchant.data.synthetic import exposure_biased_world
from penchant.errors import DataError
from penchant.eval import build_target, evaluate
from penchant.models import create
from penchant.models.unbiased import item_propensity


def test_world_is_exposed_and_liked_with_a_random_test():
    w = exposure_biased_world(n_users=200, n_items=150, seed=3)
    clicks = w.train.csr.toarray() + w.valid.csr.toarray()
    assert clicks.max() == 1 and not (w.train.csr.multiply(w.valid.csr)).nnz
    # exposure favours some items strongly; clicks follow it
    theta = w.propensity[0]
    assert theta.max() / np.median(theta) > 3
    head = theta >= np.quantile(theta, 0.9)
    assert clicks[:, head].mean() > 3 * clicks[:, ~head].mean()
    # the random-exposure test shows every user the same number of unclicked items
    per_user = np.diff(w.test_candidates.indptr)
    assert np.all(per_user == 20) and not w.test_candidates.multiply(w.train.csr).nnz
    # test labels are the liked ones among them: their rate matches the true relevance there
    shown = w.test_candidates.toarray() > 0
    assert abs(w.test.csr.nnz / shown.sum() - w.relevance[shown].mean()) < 0.05
    again = exposure_biased_world(n_users=200, n_items=150, seed=3)
    assert (again.train.csr != w.train.csr).nnz == 0


def test_candidate_evaluation_ranks_only_the_candidates():
    w = exposure_biased_world(n_users=100, n_items=80, seed=1)
    target = build_target(w.train, w.test, (w.valid,), candidates=w.test_candidates)
    model = create("pop").fit(w.train)
    r = evaluate(model, w.train, w.test, ks=[5], target=target, beyond_accuracy=False)
    assert "given candidates" in r.protocol and "not full ranking" in r.protocol
    # by hand: each user's 20 candidates ordered by training popularity (ties by item index);
    # relevant = liked candidates that some training user has (cold items are left out, as documented)
    counts = w.train.item_counts
    cand = w.test_candidates.toarray() > 0
    liked = (w.test.csr.toarray() > 0) & (counts > 0)[None, :]
    expected = []
    for u in r.users:
        items = np.flatnonzero(cand[u])
        top = items[np.lexsort((items, -counts[items]))][:5]
        dcg = sum(1 / np.log2(k + 2) for k, i in enumerate(top) if liked[u, i])
        idcg = sum(1 / np.log2(k + 2) for k in range(min(5, liked[u, items].sum())))
        expected.append(dcg / idcg)
    assert np.allclose(r.per_user["ndcg@5"], expected)


def test_item_propensity():
    assert item_propensity(np.array([100.0, 25.0, 1.0, 0.0]), power=0.5, clip=0.15).tolist() == pytest.approx(
        [1.0, 0.5, 0.15, 0.15])


def test_relmf_loss_matches_definition():
    model = create("relmf", factors=2)
    model._p = torch.nn.Parameter(torch.tensor([[1.0, 0.0]]))
    model._q = torch.nn.Parameter(torch.tensor([[0.5, 0.0], [-1.0, 2.0]]))
    model._b = torch.nn.Parameter(torch.tensor([0.0, 0.3]))
    theta = torch.tensor([0.5, 1.0])
    clicks = torch.tensor([[1.0, 0.0]])
    got = float(model._loss(torch.tensor([0]), clicks, theta, None).detach())
    p = 1 / (1 + np.exp(-np.array([0.5, -0.7])))
    w = np.array([2.0, 0.0])
    assert got == pytest.approx(float((w * (1 - p) ** 2 + (1 - w) * p ** 2).sum()), rel=1e-5)


def test_ubpr_weights_match_definition():
    model = create("ubpr", factors=1)
    model._p = torch.nn.Parameter(torch.tensor([[1.0]]))
    model._q = torch.nn.Parameter(torch.tensor([[2.0], [0.5], [1.0]]))
    model._b = torch.nn.Parameter(torch.zeros(3))
    theta = torch.tensor([0.5, 0.25, 1.0])
    clicks = torch.tensor([[1.0, 1.0, 0.0]])

    class FixedRng:
        def integers(self, low, high, size):
            return np.array([1, 2])[:size]

    got = float(model._loss(torch.tensor([0]), clicks, theta, FixedRng()).detach())
    # pair (i=0, j=1): weight (1/0.5)(1 − 1/0.25) = −6; pair (i=1, j=2): (1/0.25)(1 − 0) = 4
    logsig = lambda z: -np.log1p(np.exp(-z))  # noqa: E731
    expected = -(-6 * logsig(2.0 - 0.5) + 4 * logsig(0.5 - 1.0))
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["relmf", "ubpr"])
def test_unbiased_learners_fit_and_beat_random(name):
    w = exposure_biased_world(n_users=300, n_items=200, seed=2)
    target = build_target(w.train, w.test, (w.valid,), candidates=w.test_candidates)
    model = create(name, epochs=60).fit(w.train)
    got = evaluate(model, w.train, w.test, ks=[5], target=target, beyond_accuracy=False).metrics()["ndcg@5"]
    # chance: the same candidates in random order
    from penchant.eval import metrics as M

    rng = np.random.default_rng(0)
    cand, liked = w.test_candidates.toarray() > 0, w.test.csr.toarray() > 0
    users = target.users
    chance = []
    for _ in range(20):
        order = np.argsort(rng.random((len(users), 200)) - cand[users] * 10, axis=1)[:, :5]
        hits = np.take_along_axis(liked[users], order, axis=1)
        chance.append(M.ndcg_at_k(hits, liked[users].sum(1), 5).mean())
    assert got > np.mean(chance) + 0.02, (got, np.mean(chance))



def test_ips_dcg_by_hand():
    """A popularity model, five items: DCG_IPS@2 = mean over users of Σ 1[rank ≤ 2] / (θ_i log2(rank + 1))."""
    from penchant.data import Dataset
    from penchant.eval.unbiased import ips_dcg

    users, items = np.array(["a", "b", "c", "d", "e"], dtype=object), np.array([f"i{k}" for k in range(5)], dtype=object)

    def log(pairs):
        u, i = zip(*pairs)
        return Dataset(users, items, np.array(u, np.int32), np.array(i, np.int32))

    # item counts in train: i0 2, i1 1, i2 1, i3 0, i4 3
    train = log([(0, 0), (0, 1), (1, 0), (1, 2), (2, 4), (3, 4), (4, 4)])
    # a's valid clicks: i2 and the cold i3 (left out); b's: i1
    valid = log([(0, 2), (0, 3), (1, 1)])
    model = create("pop").fit(train)
    theta = np.array([1.0, 0.5, 0.25, 1.0, 1.0])
    # a ranks i4, i2, i3 (i0, i1 masked): i2 at rank 2; b ranks i4, i1, i3: i1 at rank 2
    expected = (1 / 0.25 + 1 / 0.5) / np.log2(3) / 2
    assert ips_dcg(model, train, valid, theta, k=2) == pytest.approx(expected)
    assert ips_dcg(model, train, valid, theta, k=1) == 0.0
    with pytest.raises(DataError, match="propensity must be 5 values"):
        ips_dcg(model, train, valid, np.zeros(5), k=2)
