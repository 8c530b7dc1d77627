"""BPR's compiled CPU epoch (models/bpr_kernel.py): the torch lazy-Adam step's factors, the sampler's
answers, and a fit that learns a planted structure popularity cannot see."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.models import create
from penchant.models.training import NegativeSampler


@pytest.fixture(scope="module")
def triples():
    """A tiny log's triples: 30 users (user 29 in none), 20 items, 8 factors, 7 steps of 64 (the last 16)."""
    rng = np.random.default_rng(0)
    n = 400
    u = rng.integers(0, 29, n)
    i = rng.integers(0, 20, n)
    j = (i + 1 + rng.integers(0, 19, n)) % 20  # never the positive
    return u, i, j


def test_compiled_steps_give_the_torch_steps_factors(triples):
    import torch

    from penchant.models.bpr import LazyAdam
    from penchant.models.bpr_kernel import LazyAdamState

    u, i, j = triples
    batch, lr, reg = 64, 0.05, 0.01
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(30, 8, generator=g) * 0.1
    q0 = torch.cat([torch.randn(20, 8, generator=g) * 0.1, torch.randn(20, 1, generator=g) * 0.1], 1)
    p, q = p0.clone(), q0.clone()
    lazy, model = LazyAdam([p, q], lr=lr), create("bpr", reg=reg)
    for s in range(0, len(u), batch):
        model._bpr_step(lazy, p, q, *(torch.from_numpy(a[s:s + batch]) for a in (u, i, j)))
    state = LazyAdamState(p0.numpy(), q0.numpy(), batch, lr, reg=reg)
    state.epoch(u, i, j)
    vu, vq = state.values()
    assert state.t == lazy.t == 7
    assert np.abs(p.numpy() - p0.numpy()).max() > 0.1  # the steps moved the factors ...
    np.testing.assert_allclose(vu, p.numpy(), atol=1e-5, rtol=0)  # ... alike on both paths
    np.testing.assert_allclose(vq, q.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(state.users[:, 2:], lazy.moments[0].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(state.items[:, 2:], lazy.moments[1].numpy(), atol=1e-5, rtol=0)
    assert np.array_equal(vu[29], p0.numpy()[29]) and not state.users[29, 1:].any()  # untouched: no move, no moments
    assert not state.users[:, 1].any() and not state.items[:, 1].any()  # gradient rows left cleared


def test_large_log_membership_check_answers_and_draws_as_the_dense_bitmap():
    rng = np.random.default_rng(3)
    x = sp.random(200, 300, density=0.05, format="csr", random_state=3, dtype=np.float32)
    x.data[:] = 1
    users, items = rng.integers(0, 200, 5000), rng.integers(0, 300, 5000)
    dense, rows = NegativeSampler(x, None, np.random.default_rng(0)), NegativeSampler(x, None, np.random.default_rng(0))
    rows.dense = None  # the large-log check: binary search in the CSR rows
    truth = x.toarray()[users, items] > 0
    assert truth.sum() > 100
    assert np.array_equal(rows.is_seen(users, items), truth) and np.array_equal(dense.is_seen(users, items), truth)
    drawn = rows.sample(users)
    assert np.array_equal(drawn, dense.sample(users)) and not (x.toarray()[users, drawn] > 0).any()


def test_compiled_fit_learns_what_popularity_cannot():
    """Two planted tastes: users 0-99 take items of block A (0-29), users 100-299 items of block B
    (30-59), so block B is twice as popular. Popularity's top 10 is block B for everyone; BPR must
    find taste A users their held-out block A items (3 a user), which popularity never does."""
    rng = np.random.default_rng(7)
    n_users, per_user, held = 300, 15, 3
    picks = [rng.choice(30, per_user, replace=False) + (30 if u >= 100 else 0) for u in range(n_users)]
    users = np.repeat(np.arange(n_users), per_user - held)
    items = np.concatenate([c[held:] for c in picks])
    train = Dataset(np.array([f"u{u}" for u in range(n_users)]), np.array([f"i{i}" for i in range(60)]),
                    users.astype(np.int32), items.astype(np.int32))
    test = np.stack([c[:held] for c in picks[:100]])  # taste A users' held-out items, (100, 3)

    def recall(model) -> float:
        scores = model.score(np.arange(100))
        scores[train.csr[:100].toarray() > 0] = -np.inf
        top = np.argsort(-scores, 1)[:, :10]
        return float((top[:, :, None] == test[:, None, :]).any(1).mean())

    model = create("bpr", factors=8, epochs=20, lr=0.05, seed=0).fit(train)
    assert model.path_ == "compiled"
    pop = recall(create("pop").fit(train))
    assert pop == 0.0  # block B fills popularity's top 10
    scores = model.score(np.arange(100))
    scores[train.csr[:100].toarray() > 0] = -np.inf
    top = np.argsort(-scores, 1)[:, :10]
    assert (top < 30).mean() > 0.95  # their own block first
    assert recall(model) > 0.4, recall(model)  # 10 of the 18 unseen block A items: 0.56 expected at random within it


def test_threads_split_rows_by_owner_and_give_the_one_thread_factors(triples):
    from penchant.models.bpr_kernel import LazyAdamState

    u, i, j = triples
    rng = np.random.default_rng(2)
    p0, q0 = (rng.standard_normal(s).astype(np.float32) * 0.1 for s in ((30, 8), (20, 9)))
    runs = []
    for threads in (1, 2, 3, 2):
        state = LazyAdamState(p0, q0, 64, 0.05, reg=0.01, threads=threads)
        state.epoch(u, i, j)
        state.epoch(u[::-1], i[::-1], j[::-1])
        runs.append((state.t, state.users.copy(), state.items.copy()))
    assert all(t == 14 for t, _, _ in runs)
    assert np.abs(runs[0][1][:, 0] - p0).max() > 0.1
    for _, users, items in runs[1:]:
        np.testing.assert_allclose(users, runs[0][1], atol=1e-6, rtol=0)
        np.testing.assert_allclose(items, runs[0][2], atol=1e-6, rtol=0)
    assert np.array_equal(runs[1][1], runs[3][1]) and np.array_equal(runs[1][2], runs[3][2])  # one result per thread count
