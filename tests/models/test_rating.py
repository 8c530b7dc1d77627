"""Rating prediction: k-fold splits, RMSE/MAE, biased MF on planted data, FM for cold-start users."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset
from penchant.data.split import kfold, user_holdout
from penchant.eval.rating import evaluate_ratings, mae, rating_validator, rmse
from penchant.models import Recommender, create


def test_rmse_mae_by_hand():
    assert rmse(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(np.sqrt((1 + 4) / 2))
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(1.5)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 1000), st.integers(10, 80))
def test_kfold_test_parts_partition(k, seed, n):
    ds = Dataset(user_ids=np.array([f"u{i}" for i in range(n)], dtype=object), item_ids=np.array(["x"], dtype=object),
                 users=np.arange(n, dtype=np.int32), items=np.zeros(n, np.int32), ratings=np.ones(n, np.float32))
    folds = kfold(ds, k, seed)
    tests = np.concatenate([f.test.users for f in folds])
    assert sorted(tests.tolist()) == list(range(n))
    for f in folds:
        assert f.train.n_interactions + f.test.n_interactions == n
        assert not set(f.train.users.tolist()) & set(f.test.users.tolist())


def planted(n_users=300, n_items=200, dim=4, density=0.2, noise=0.3, seed=0) -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.6, (n_users, dim)), rng.normal(0, 0.6, (n_items, dim))
    truth = 3 + rng.normal(0, 0.3, n_users)[:, None] + rng.normal(0, 0.3, n_items)[None, :] + p @ q.T
    u, i = np.nonzero(rng.random((n_users, n_items)) < density)
    r = truth[u, i] + rng.normal(0, noise, len(u))
    split = rng.random(len(u)) < 0.85
    ids = lambda n, s: np.array([f"{s}{k}" for k in range(n)], dtype=object)  # noqa: E731
    make = lambda m: Dataset(ids(n_users, "u"), ids(n_items, "i"), u[m].astype(np.int32), i[m].astype(np.int32),  # noqa: E731
                             ratings=r[m].astype(np.float32))
    return make(split), make(~split)


def test_biasedmf_recovers_planted_ratings():
    train, test = planted()
    inner = np.random.default_rng(1).random(train.n_interactions) < 0.1
    model = create("biasedmf", factors=8, lr=0.01, reg=0.02).fit(train.subset(~inner), rating_validator(train.subset(inner)))
    got = evaluate_ratings(model, test)["rmse"]
    baseline = rmse(np.full(test.n_interactions, train.ratings.mean()), test.ratings)
    assert got < 0.5 < baseline  # noise is 0.3; the global mean misses the planted structure


@pytest.mark.slow
def test_fm_serves_cold_start_users_from_features(ml100k):
    split = user_holdout(ml100k, valid=0.0, test=0.15, seed=4)
    train, test = split.train, split.test
    scale = (1.0, 5.0)
    fm = create("fm", epochs=12).fit(train)
    mf = create("biasedmf", epochs=12).fit(train)
    got_fm, got_mf = evaluate_ratings(fm, test, scale)["rmse"], evaluate_ratings(mf, test, scale)["rmse"]
    # biased MF knows nothing of a new user but the item biases; FM adds their age, gender, occupation
    assert got_fm < got_mf, (got_fm, got_mf)


def test_rating_models_need_ratings(ml100k_split):
    from penchant.errors import DataError

    with pytest.raises(DataError, match="no ratings"):
        create("biasedmf", epochs=1).fit(ml100k_split.train.implicit())


@pytest.mark.parametrize("name", ["biasedmf", "fm"])
def test_save_load_and_rank(name, ml100k_split, tmp_path):
    model = create(name, epochs=2).fit(ml100k_split.train)
    back = Recommender.load(model.save(tmp_path / f"{name}.npz"))
    users = np.arange(0, 943, 41)
    assert np.array_equal(back.score(users), model.score(users))
    u, i = ml100k_split.test.users[:50], ml100k_split.test.items[:50]
    assert np.allclose(back.predict(u, i), model.score(u)[np.arange(50), i], atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12), st.integers(1, 9))
def test_fm_batch_side_equals_the_whole_table_side(seed, n, n_features):
    """FM trains on the batch's rows of the feature matrix only; they must give what the whole-table
    computation gives for those rows (rows repeat within a batch; some rows have no features)."""
    import scipy.sparse as sp
    import torch

    from penchant.models.rating import FM

    rng = np.random.default_rng(seed)
    x = sp.random(n, n_features, density=0.4, format="csr", dtype=np.float32, random_state=seed)
    w, v = torch.randn(n_features, 1, dtype=torch.float32), torch.randn(n_features, 3, dtype=torch.float32)
    rows = rng.integers(0, n, 2 * n)

    def torch_sparse(m):
        c = m.tocoo()
        return torch.sparse_coo_tensor(torch.from_numpy(np.vstack([c.row, c.col]).astype(np.int64)), torch.from_numpy(c.data), c.shape,
                                       check_invariants=True)

    whole = FM._side(torch_sparse(x), torch_sparse(x.multiply(x).tocsr()), w, v)
    batch = FM._batch_side(x, rows, w, v, "cpu")
    for got, want in zip(batch, whole):
        np.testing.assert_allclose(got.numpy(), want.numpy()[rows], rtol=1e-5, atol=1e-5)
