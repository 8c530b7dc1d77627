"""The approximate inner-product index: its scores are the model's, it finds the exact top 10 of
real users, it never shows a banned item, and the service answers through it for large catalogues,
from a model whose arrays it memory-maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penchant.models import create
from penchant.models.ann import ItemIndex, recall_at_k
from penchant.models.protocols import DotProduct
from penchant.models.ranking import top_k
from tests.conftest import cli, write


@pytest.fixture(scope="module")
def als(ml100k):
    return create("als", factors=32, seed=0).fit(ml100k)


@pytest.fixture(scope="module")
def index(als):
    return ItemIndex.build(als.key_vectors())


def test_queries_and_keys_give_the_model_s_scores(als, ml100k):
    assert isinstance(als, DotProduct)
    users = np.arange(0, ml100k.n_users, 37)
    np.testing.assert_allclose(als.query_vectors(users) @ als.key_vectors().T, als.score(users), rtol=1e-4, atol=1e-4)
    biased = create("bpr", factors=8, epochs=2, seed=0).fit(ml100k)  # a model with item biases
    np.testing.assert_allclose(biased.query_vectors(users) @ biased.key_vectors().T, biased.score(users),
                               rtol=1e-4, atol=1e-4)


def test_the_index_finds_the_exact_top_ten_of_real_users(als, index, ml100k, tmp_path):
    users = np.arange(ml100k.n_users)
    exact, exact_scores = top_k(als.score(users), 10)
    found, scores = index.search(als.query_vectors(users), 10)
    assert recall_at_k(found, exact) >= 0.95
    # a found item's score is the model's score of it
    np.testing.assert_allclose(scores, np.take_along_axis(als.score(users), found, axis=1), rtol=1e-4, atol=1e-4)
    again = ItemIndex.load(index.save(tmp_path / "items.usearch"))  # memory-mapped
    assert again.n_items == ml100k.n_items and np.array_equal(again.search(als.query_vectors(users[:50]), 10)[0], found[:50])


def test_recall_at_k_by_hand():
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[3, 9], [7, 8]])) == pytest.approx(0.25)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.integers(0, 942), k=st.integers(1, 20), banned=st.lists(st.integers(0, 1681), max_size=80))
def test_banned_items_are_never_shown(als, index, user, k, banned):
    mask = np.zeros(index.n_items, bool)
    mask[banned] = True
    found = index.top(als.query_vectors(np.array([user]))[0], k, mask)
    assert found is not None  # 80 of 1,682 is under the 5% the index handles itself
    items, scores = found
    assert len(items) == k and not mask[items].any() and len(set(items.tolist())) == k
    assert np.all(np.diff(scores) <= 1e-6)


def test_most_of_the_catalogue_banned_is_left_to_exact_scoring(als, index):
    mask = np.ones(index.n_items, bool)
    mask[:100] = False
    assert index.top(als.query_vectors(np.array([0]))[0], 10, mask) is None
    assert index.handles(10, 410) and not index.handles(10, 411)  # a quarter of 1,682 items


def test_the_service_answers_large_catalogues_through_the_index(als, ml100k, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from penchant.models import artefact
    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings
    from tests.serve.server import ADMIN

    monkeypatch.setattr(artefact, "MAP_MIN_BYTES", 0)  # ML-100K's factors are under the 1 MiB that is mapped
    als.save(tmp_path / "als.npz")
    config = write(tmp_path / "penchant.toml", "[service]\nann_min_items = 1000\n")
    code, _, err = cli("versions", "import", tmp_path / "als.npz", "--data-dir", tmp_path / "data", "--activate",
                       "--config", config)
    assert code == 0, err
    assert next((tmp_path / "data" / "models").glob("v*/items.usearch"), None) is not None  # built at import
    assert next((tmp_path / "data" / "models").glob("v*/arrays/complete"), None) is not None  # arrays written to map
    users = np.arange(0, ml100k.n_users, 19)
    exact, _ = als.recommend(users, k=10)  # seen (training) items left out, as the service does
    with TestClient(create_app(load_settings(tmp_path / "data", config_file=config, env={}), admin_key=ADMIN)) as c:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        got = [c.get(f"/v1/users/{ml100k.user_ids[u]}/recommendations", params={"k": 10}, headers=auth).json()
               for u in users]
        metrics = c.get("/metrics", headers=auth).text
        deployed = c.app.state.service.host.deployed.model
    # the worker's model reads its factors from the memory-mapped copy (shared with other workers)
    assert isinstance(deployed.item_factors_, np.memmap) and isinstance(deployed.user_factors_, np.memmap)
    seen = np.diff(als.train_.indptr)[users]
    through_index = np.array([g["model"] == "als:v1+ann" for g in got])
    # the index answers unless a user's seen items would make it fetch over a quarter of the catalogue
    assert np.array_equal(through_index, 10 + seen <= 0.25 * ml100k.n_items) and through_index.mean() > 0.8
    assert all(g["model"] == "als:v1" for g, ann in zip(got, through_index) if not ann)
    found = np.array([[ml100k.item_index([x["id"]])[0] for x in g["items"]] for g in got])
    assert recall_at_k(found, exact) >= 0.95
    train = als.train_
    for u, row in zip(users, found):
        assert not set(row.tolist()) & set(train.indices[train.indptr[u]:train.indptr[u + 1]].tolist())
    assert f"penchant_ann_approximate_answers {through_index.sum()}" in metrics
    assert f"penchant_ann_exact_answers {(~through_index).sum()}" in metrics
