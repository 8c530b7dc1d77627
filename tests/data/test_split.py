"""Splits partition the data, never leak a test pair into train, and keep time order where promised."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset
from penchant.data.split import leave_last_out, random_holdout, time_cutoff, user_holdout
from penchant.errors import DataError


@st.composite
def datasets(draw) -> Dataset:
    n_users = draw(st.integers(1, 15))
    n_items = draw(st.integers(1, 15))
    cells = draw(st.sets(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), min_size=1, max_size=120))
    cells = sorted(cells)
    times = draw(st.lists(st.integers(0, 50), min_size=len(cells), max_size=len(cells)))
    perm = draw(st.permutations(range(len(cells))))
    u = np.array([cells[p][0] for p in perm], dtype=np.int32)
    i = np.array([cells[p][1] for p in perm], dtype=np.int32)
    return Dataset(user_ids=np.array([f"u{k}" for k in range(n_users)], dtype=object),
                   item_ids=np.array([f"i{k}" for k in range(n_items)], dtype=object),
                   users=u, items=i, timestamps=np.array(times, dtype=np.float64))


def pairs(ds: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.users.tolist(), ds.items.tolist()))


def check_partition(ds: Dataset, split) -> None:
    parts = list(split.parts().values())
    assert sum(p.n_interactions for p in parts) == ds.n_interactions
    union = set()
    for p in parts:
        assert not (union & pairs(p)), "a pair is in two parts"
        union |= pairs(p)
        assert np.array_equal(p.user_ids, ds.user_ids) and np.array_equal(p.item_ids, ds.item_ids)
    assert union == pairs(ds)


@settings(max_examples=80, deadline=None)
@given(datasets(), st.integers(0, 2**16), st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.5), (0.6, 0.2, 0.2), (1.0, 0.0, 0.0)]))
def test_random_holdout_partitions_and_is_seeded(ds, seed, ratios):
    split = random_holdout(ds, ratios, seed=seed)
    check_partition(ds, split)
    again = random_holdout(ds, ratios, seed=seed)
    assert pairs(again.test) == pairs(split.test) and pairs(again.train) == pairs(split.train)
    # each user's train share is round(n * r_train)
    n = np.bincount(ds.users, minlength=ds.n_users)
    assert np.array_equal(np.bincount(split.train.users, minlength=ds.n_users), np.round(n * ratios[0]).astype(int))


@settings(max_examples=80, deadline=None)
@given(datasets(), st.integers(1, 2), st.integers(0, 2))
def test_leave_last_out_keeps_time_order(ds, n_test, n_valid):
    split = leave_last_out(ds, n_test=n_test, n_valid=n_valid)
    check_partition(ds, split)
    later = [p for p in (split.valid, split.test) if p is not None]
    for u in range(ds.n_users):
        tr = split.train.timestamps[split.train.users == u]
        te = split.test.timestamps[split.test.users == u]
        count = int((ds.users == u).sum())
        if count <= n_test + n_valid:
            assert len(tr) == count
            continue
        assert len(te) == n_test
        if split.valid is not None:
            va = split.valid.timestamps[split.valid.users == u]
            assert len(va) == n_valid and tr.max(initial=-1) <= va.min() and va.max() <= te.min()
        assert tr.max(initial=-1) <= min(p.timestamps[p.users == u].min() for p in later if (p.users == u).any())


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_time_cutoff_is_global(ds):
    split = time_cutoff(ds, valid=0.2, test=0.2)
    check_partition(ds, split)
    if split.valid.n_interactions:
        assert split.train.timestamps.max(initial=-1) < split.valid.timestamps.min()
    if split.test.n_interactions:
        assert max(split.train.timestamps.max(initial=-1), split.valid.timestamps.max(initial=-1)) < split.test.timestamps.min()


@settings(max_examples=60, deadline=None)
@given(datasets(), st.integers(0, 1000))
def test_user_holdout_separates_users(ds, seed):
    split = user_holdout(ds, valid=0.2, test=0.3, seed=seed)
    check_partition(ds, split)
    tr, va, te = (set(p.users.tolist()) for p in (split.train, split.valid, split.test))
    assert not (tr & te) and not (tr & va) and not (va & te)
    report = split.report()
    assert report["test"]["users_not_in_train"] == len(te)


def test_repeated_pairs_are_refused():
    ds = Dataset(user_ids=np.array(["a"], dtype=object), item_ids=np.array(["x"], dtype=object),
                 users=np.array([0, 0], np.int32), items=np.array([0, 0], np.int32))
    with pytest.raises(DataError, match="repeats"):
        random_holdout(ds)


def test_bad_ratios():
    ds = Dataset(user_ids=np.array(["a"], dtype=object), item_ids=np.array(["x"], dtype=object),
                 users=np.array([0], np.int32), items=np.array([0], np.int32))
    with pytest.raises(DataError, match="summing to 1"):
        random_holdout(ds, (0.8, 0.3))


def test_ml100k_split_report(ml100k_split):
    r = ml100k_split.report()
    assert r["train"]["interactions"] + r["valid"]["interactions"] + r["test"]["interactions"] == 100_000
    assert r["test"]["users_not_in_train"] == 0
    assert r["test"]["interactions_on_items_not_in_train"] == 17  # pinned for seed 2026
