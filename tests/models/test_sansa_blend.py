"""SANSA's factorisation, approximate inverse and its equality with EASE at full density; the blend's
per-user standardisation, its weight search on a planted objective, and a planted best member."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.eval import validator
from penchant.models import create
from penchant.models.blend import coordinate_search, standardised
from penchant.models.sansa import ldl_factor, residual, sparsify, umr_inverse
from tests.conftest import tiny_log


@pytest.fixture(scope="module")
def gram() -> sp.csc_matrix:
    x = sp.csr_matrix((np.random.default_rng(1).random((120, 30)) < 0.2).astype(float))
    return (x.T @ x + 5.0 * sp.identity(30)).tocsc()


def test_ldl_factor_reproduces_the_permuted_gram(gram):
    lower, d, perm = ldl_factor(gram)
    dense = lower.toarray()
    assert np.allclose(np.diag(dense), 1) and np.allclose(np.triu(dense, 1), 0) and (d > 0).all()
    np.testing.assert_allclose(dense @ np.diag(d) @ dense.T, gram.toarray()[np.ix_(perm, perm)], atol=1e-9)
    assert sorted(perm) == list(range(30))


def test_umr_inverse_is_exact_at_full_density_and_improves_within_a_budget(gram):
    lower = ldl_factor(gram)[0]
    exact = umr_inverse(lower, 1.0, scans=1, finetune_steps=30)
    np.testing.assert_allclose(exact.toarray(), np.linalg.inv(lower.toarray()), atol=1e-8)
    budget = 0.3
    start = sparsify((2 * sp.identity(30) - lower).tocsc(), budget)  # the Schultz start, cut to the budget
    approx = umr_inverse(lower, budget, scans=1, finetune_steps=10)
    assert approx.nnz <= budget * 30 * 30
    assert sp.linalg.norm(residual(lower, approx)) < 0.5 * sp.linalg.norm(residual(lower, start))


def test_sansa_at_full_density_is_ease():
    ds = tiny_log()
    users = np.arange(ds.n_users)
    x = ds.csr.toarray()
    p = np.linalg.inv(x.T @ x + 50.0 * np.eye(ds.n_items))
    ease = x @ (np.eye(ds.n_items) - p / np.diag(p)[None, :])  # EASE's closed form, zero diagonal
    sansa = create("sansa", lam=50.0, density=1.0).fit(ds)
    np.testing.assert_allclose(sansa.score(users), ease, atol=1e-4)
    assert sansa.residual_ < 1e-12
    # within a budget: sparse factors whose lists stay closer to EASE's than popularity's are (0.33 here)
    top_ease = np.argsort(-np.where(x > 0, -np.inf, ease), axis=1, kind="stable")[:, :5]
    overlaps = []
    for density in (0.1, 0.3):
        sparse = create("sansa", lam=50.0, density=density).fit(ds)
        assert max(sparse.first_.nnz, sparse.second_.nnz) <= density * ds.n_items ** 2
        top = sparse.recommend(users, k=5)[0]
        overlaps.append(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top, top_ease, strict=True)]))
    assert 0.5 < overlaps[0] < overlaps[1]  # more budget, closer to EASE (0.58 and 0.84 here)


def test_standardised_uses_the_unseen_items_only():
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, -np.inf]])
    seen = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0]]))
    z = standardised(scores, seen)
    np.testing.assert_allclose(z[0], [-np.sqrt(1.5), 0, np.sqrt(1.5), 0], atol=1e-6)  # mean 2, std √(2/3)
    np.testing.assert_allclose(z[1], 0)  # no spread: all zero; the seen and the -inf item are 0 too


def test_coordinate_search_finds_a_planted_optimum():
    target = np.array([1.0, 0.5, 0.0, 2.0])
    best, value, tried = coordinate_search(lambda w: -float(np.sum((w - target) ** 2)), np.eye(4)[0],
                                           (0.0, 0.5, 1.0, 2.0), rounds=2)
    np.testing.assert_array_equal(best, target)
    assert value == 0.0 and all(w.any() for w, _ in tried)


def test_blend_recovers_a_planted_best_member():
    """Validation items are each user's most popular unseen items: popularity is perfect there, so
    the blend keeps it alone (another member can only tie, never improve strictly)."""
    rng = np.random.default_rng(0)
    n_users, n_items = 80, 30
    seen = rng.random((n_users, n_items)) < np.linspace(0.6, 0.05, n_items)[None, :]
    users, items = np.nonzero(seen)
    train = Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                    np.array([f"i{i}" for i in range(n_items)], dtype=object), users.astype(np.int32), items.astype(np.int32))
    pop = np.asarray(train.csr.sum(axis=0)).ravel()
    unseen_by_pop = np.argsort(-np.where(seen, -1, pop), axis=1, kind="stable")[:, :2]
    valid = Dataset(train.user_ids, train.item_ids, np.repeat(np.arange(n_users), 2).astype(np.int32),
                    unseen_by_pop.ravel().astype(np.int32))
    model = create("blend", members="ease,pop").fit(train, validator(train, valid))
    assert model.member_valid_["pop"] > 0.99 > model.member_valid_["ease"]
    assert model.selected() == {"w_ease": 0.0, "w_pop": 1.0}
    assert max(s["valid"] for s in model.selection_) == model.member_valid_["pop"]
