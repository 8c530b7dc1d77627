"""SLIST: its transition rows by hand, and the order it learns that a co-occurrence model cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.models.registry import create
from penchant.models.slist import transition_rows


def test_transition_rows_by_hand():
    """History (5, 7, 9): rows for t = 0 and t = 1; inputs decay backwards, targets forwards."""
    s, t, owner = transition_rows(np.array([0, 3]), np.array([5, 7, 9]), 10, decay=2.0, window=2)
    e = math.exp(-0.5)
    assert owner.tolist() == [0, 0]
    assert np.allclose(s.toarray()[0, [5, 7, 9]], [1, 0, 0]) and np.allclose(s.toarray()[1, [5, 7, 9]], [e, 1, 0])
    assert np.allclose(t.toarray()[0, [5, 7, 9]], [0, 1, e]) and np.allclose(t.toarray()[1, [5, 7, 9]], [0, 0, 1])
    # the window cuts what lies further than 2 positions away
    s3, t3, _ = transition_rows(np.array([0, 4]), np.array([1, 2, 3, 4]), 5, decay=2.0, window=2)
    assert s3.toarray()[2, 1] == 0 and t3.toarray()[0, 4] == 0 and t3.toarray()[0, 3] > 0


def _chain_log(n_items: int = 12, n_users: int = 96, length: int = 5) -> Dataset:
    """Every user walks a ring of items forward: i, i+1, …, i+length−1 (mod n_items), in time order;
    as many users start at each item."""
    start = np.arange(n_users) % n_items
    items = (start[:, None] + np.arange(length)) % n_items
    users = np.repeat(np.arange(n_users), length)
    return Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                   np.array([f"i{i}" for i in range(n_items)], dtype=object), users.astype(np.int32),
                   items.ravel().astype(np.int32), timestamps=np.arange(users.size, dtype=np.float64))


@pytest.fixture(scope="module")
def chain() -> Dataset:
    return _chain_log()


def test_slist_learns_the_direction_of_a_walk(chain):
    """A walk i, …, i+4 is followed by i+5 on the ring, never by i−1, though both co-occur with the
    history equally often. With the history read unweighted (δ_pred = 0), SLIST's transition rows
    rank the successor first for every user; SLIS alone (α = 1), like EASE, learns from symmetric
    co-occurrence and scores the two the same."""
    users = np.arange(chain.n_users)
    walk = chain.items.reshape(chain.n_users, -1)
    successor, predecessor = (walk[:, -1] + 1) % 12, (walk[:, 0] - 1) % 12
    slist = create("slist", alpha=0.25, lam=1.0, train_decay=1.0, predict_decay=0.0).fit(chain)
    top, _ = slist.recommend(users, k=1)
    assert (top[:, 0] == successor).all()
    for symmetric in (create("slist", alpha=1.0, lam=1.0, train_decay=1.0, predict_decay=0.0), create("ease", lam=1.0)):
        s = symmetric.fit(chain).score(users)
        assert np.allclose(s[users, successor], s[users, predecessor], atol=1e-5)


def test_slist_chooses_on_validation_and_scores_a_walk_in_as_its_user(chain):
    """The grid runs on validation data; a history given in order scores as the fitted user does."""
    from penchant.eval.evaluate import validator

    train = chain.subset(np.arange(chain.n_interactions) % 5 < 4)
    valid = chain.subset(np.arange(chain.n_interactions) % 5 == 4)
    model = create("slist").fit(train, validator(train, valid))
    assert set(model.selected()) == {"alpha", "lam", "train_decay", "predict_decay"}
    assert len(model.selection_) > 20 and model.selected()["alpha"] < 1  # the walk's order is the signal
    u = 7
    history = train.items[train.users == u]
    assert np.allclose(model.score_history(history), model.score(np.array([u]))[0], atol=1e-5)
