"""Two stages end to end: a retriever's candidates re-ranked by a CTR model, from one artefact,
answered identically by `penchant recommend`, the answer core and the service."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.data.dataset import Attribute
from penchant.data.split import leave_last_out
from penchant.errors import ConfigError, DataError
from penchant.experiment.answers import AnswerCore
from penchant.models.artefact import load
from penchant.models.registry import create
from tests.conftest import cli, tiny_log
from tests.serve.server import ADMIN

TINY_RANKER = "epochs=3;dims=8;hidden=16"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`penchant fit --model rerank` on the tiny log (as a CSV), and `penchant recommend`'s answers."""
    folder = tmp_path_factory.mktemp("two_stage")
    ds = tiny_log()
    rows = [f"{ds.user_ids[u]},{ds.item_ids[i]},{int(r)},{int(t)}\n"
            for u, i, r, t in zip(ds.users, ds.items, ds.ratings, ds.timestamps)]
    (folder / "log.csv").write_text("user,item,rating,timestamp\n" + "".join(rows))
    code, out, err = cli("fit", "--train", folder / "log.csv", "--model", "rerank", "--param", "retriever=ease",
                         "--param", "ranker=deepfm", "--param", f"ranker_params={TINY_RANKER}",
                         "--param", "candidates=15", "--out", folder / "r.npz")
    assert code == 0 and "retriever ease, ranker deepfm" in out, err
    code, _, err = cli("recommend", "--model-path", folder / "r.npz", "--user", "u007", "--user", "u042",
                       "--user", "stranger", "--k", "10", "--json", folder / "recs.json")
    assert code == 0, err
    return folder, json.loads((folder / "recs.json").read_text())


def test_one_artefact_answers_the_cli_the_answer_core_and_the_service_alike(fitted, tmp_path):
    from fastapi.testclient import TestClient

    from penchant.serve.app import create_app
    from penchant.serve.config import load_settings

    folder, recs = fitted
    core = AnswerCore(load(folder / "r.npz")).recommend_for(["u007", "u042", "stranger"], 10)
    assert {u: [(x["item"], pytest.approx(x["score"])) for x in got] for u, got in recs["users"].items()} == core.lists
    assert core.fallback == {"stranger": "popular"}
    code, out, err = cli("versions", "import", folder / "r.npz", "--data-dir", tmp_path / "data", "--activate")
    assert code == 0 and "imported rerank as version 1 (active)" in out, err
    with TestClient(create_app(load_settings(tmp_path / "data", env={}), admin_key=ADMIN)) as c:
        for user in ("u007", "u042"):
            got = c.get(f"/v1/users/{user}/recommendations", params={"k": 10},
                        headers={"Authorization": f"Bearer {ADMIN}"}).json()
            assert [x["id"] for x in got["items"]] == [x["item"] for x in recs["users"][user]]
        # the served-list log (and the dump `penchant ope` reads) names the ranker beside the version
        service = c.app.state.service
        service.host.impressions.flush()
        served = [row for row in service.store.dump() if row["kind"] == "served"]
        identity = load(folder / "r.npz").ranker_identity()
        assert len(served) == 2 and {row["ranker"] for row in served} == {identity}
        assert identity.startswith("deepfm:") and len(identity) == len("deepfm:") + 12
        assert {row["version"] for row in served} == {1}


def test_lists_are_the_retriever_s_candidates_ordered_by_the_ranker(fitted):
    model = load(fitted[0] / "r.npz")
    seen = model.seen_items()
    users = np.arange(model.n_users_)
    items, scores = model.recommend(users, k=20)
    _, cands, real = model.candidate_lists(users)
    for u in (3, 7, 42):
        c = cands[u][real[u]]
        head = items[u][:len(c)]
        assert set(head) == set(c)  # the first stage picks, the second orders
        p = model.ranker_.predict(model.rerank_rows(np.full(len(c), u), c.astype(np.int64)))
        assert np.allclose(scores[u][:len(c)], np.sort(p)[::-1], atol=1e-6)
        assert (scores[u][len(c):] < 0).all() and not seen[u, items[u]].nnz  # the rest after, seen left out
    # the retriever's own order is not the list's: the ranker changed it
    assert any(list(items[u][:real[u].sum()]) != list(cands[u][real[u]]) for u in users)


def test_a_fitted_retriever_is_loaded_not_refitted(tmp_path):
    ds = tiny_log()
    ease = create("ease", lam=50.0).fit(ds)
    path = ease.save(tmp_path / "ease.npz")
    model = create("rerank", retriever=str(path), ranker="lr", ranker_params="max_iter=30", candidates=10).fit(ds)
    assert model.retriever_.params()["lam"] == 50.0
    assert np.array_equal(model.retriever_.score(np.arange(5)), ease.score(np.arange(5)))
    other = Dataset(ds.user_ids, np.array([f"other-{i}" for i in range(ds.n_items)]), ds.users, ds.items, ds.ratings)
    with pytest.raises(DataError, match="fitted on other users or items"):
        create("rerank", retriever=str(path), ranker="lr").fit(other)
    with pytest.raises(ConfigError, match="is a ctr model"):
        create("rerank", retriever="deepfm").fit(ds)
    with pytest.raises(ConfigError, match="is a ranking model"):
        create("rerank", ranker="ease").fit(ds)
    with pytest.raises(ConfigError, match="not key=value"):
        create("rerank", ranker_params="epochs").fit(ds)


def test_a_log_without_ratings_learns_from_the_retriever_s_hard_negatives():
    ds = tiny_log()
    unary = Dataset(ds.user_ids, ds.item_ids, ds.users, ds.items, timestamps=ds.timestamps, name="unary")
    model = create("rerank", ranker="lr", ranker_params="max_iter=30", candidates=10, labels="observed")
    model.train_, model.user_ids_, model.item_ids_ = unary.csr, unary.user_ids, unary.item_ids
    model.retriever_ = create("ease").fit(unary)
    rows = model._rows(unary)
    pos = np.bincount(unary.users, minlength=unary.n_users)
    neg = np.bincount(rows.user[rows.label == 0], minlength=unary.n_users)
    assert (rows.label == 1).sum() == len(unary.users) and np.array_equal(neg, np.minimum(pos, 10))
    assert not unary.csr[rows.user[rows.label == 0], rows.item[rows.label == 0]].any()  # negatives are unseen
    model.fit(unary)
    assert np.isfinite(model.score(np.arange(4))).all()
    rated = create("rerank", ranker="lr", candidates=10, labels="observed")  # the same rows from a rated log
    rated.train_, rated.user_ids_, rated.item_ids_, rated.retriever_ = ds.csr, ds.user_ids, ds.item_ids, model.retriever_
    assert np.array_equal(rated._rows(ds).label, rows.label)
    with pytest.raises(DataError, match="no ratings"):
        create("rerank", ranker="lr", labels="rating").fit(unary)


def test_fold_in_answers_an_unknown_user_through_both_stages(fitted):
    from penchant.models.protocols import FoldIn

    model = load(fitted[0] / "r.npz")
    assert isinstance(model, FoldIn)  # its retriever (EASE) folds in
    history = Dataset(np.array(["walk-in"], dtype=object), np.array(["item-3", "item-5", "item-9"], dtype=object),
                      np.zeros(3, np.int32), np.array([0, 1, 2], np.int32))
    answers = AnswerCore(model).recommend_for(["walk-in"], 10, history)
    assert answers.fallback == {"walk-in": "fold-in"}
    got = [i for i, _ in answers.lists["walk-in"]]
    given = model.item_index(["item-3", "item-5", "item-9"])
    retrieved = model.retriever_.score_history(given)
    retrieved[given] = -np.inf
    candidates = {str(model.item_ids_[i]) for i in np.argsort(-retrieved, kind="stable")[:model.candidates]}
    assert set(got) <= candidates and not {"item-3", "item-5", "item-9"} & set(got)  # the first stage picked
    scores = [v for _, v in answers.lists["walk-in"]]
    assert all(0 <= v <= 1 for v in scores) and scores == sorted(scores, reverse=True)  # the ranker ordered
    assert got != [str(model.item_ids_[i]) for i in np.argsort(-retrieved, kind="stable")[:10]]
    bare = create("rerank", retriever="pop", ranker="lr", ranker_params="max_iter=5", candidates=10).fit(tiny_log())
    assert not isinstance(bare, FoldIn)  # a retriever without fold-in: neither has the two stages


def planted_log(n_users: int = 240, n_items: int = 60, early: int = 12, late: int = 4) -> Dataset:
    """Each user's first ``early`` events follow popularity over all items; their last ``late`` are
    all on the "fresh" shelf (every fourth item), chosen by the same popularity. The item attribute
    ``shelf`` carries what popularity (the retriever) does not know."""
    rng = np.random.default_rng(0)
    weight = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.7
    fresh = np.arange(n_items) % 4 == 0
    users, items = [], []
    for u in range(n_users):  # a few events per user: the loop is over users, not interactions
        first = rng.choice(n_items, size=early, replace=False, p=weight / weight.sum())
        left = fresh.copy()
        left[first] = False
        p = np.where(left, weight, 0.0)
        users += [u] * (early + late)
        items += list(first) + list(rng.choice(n_items, size=late, replace=False, p=p / p.sum()))
    shelf = Attribute(np.array(["fresh", "old"]), sp.csr_matrix((np.ones(n_items, np.float32),
                                                                 np.where(fresh, 0, 1), np.arange(n_items + 1)),
                                                                shape=(n_items, 2)))
    return Dataset(np.array([f"u{u}" for u in range(n_users)], dtype=object),
                   np.array([f"i{i}" for i in range(n_items)], dtype=object), np.array(users, np.int32),
                   np.array(items, np.int32), timestamps=np.tile(np.arange(early + late, dtype=np.float64), n_users),
                   item_attributes={"shelf": shelf}, name="planted")


def test_reranking_beats_its_retriever_where_item_features_know_what_it_does_not():
    split = leave_last_out(planted_log(), n_test=1, n_valid=0)
    train, test = split.train, split.test

    def ndcg(model) -> float:
        users = test.users.astype(np.int64)
        items, _ = model.recommend(users, k=10)
        hit = items == test.items[:, None]
        return float((hit / np.log2(np.arange(2, 12))[None, :]).sum(1).mean())

    pop = create("pop").fit(train)
    model = create("rerank", retriever="pop", ranker="lr", ranker_params="max_iter=50", candidates=40).fit(train)
    rows = model._later_rows(train)  # built as the lists are used: the candidates of a retriever without the last 3
    held = {(u, i) for u, i in zip(train.users, train.items)} - \
        {(u, i) for u, i in zip(leave_last_out(train, n_test=3, n_valid=0).train.users,
                                leave_last_out(train, n_test=3, n_valid=0).train.items)}
    assert {(u, i) for u, i in zip(rows.user[rows.label == 1], rows.item[rows.label == 1])} <= held
    assert rows.dense_names == ("retriever_score", "retriever_rank", "history_length", "item_popularity")
    base, reranked = ndcg(pop), ndcg(model)
    assert reranked >= 1.3 * base, (base, reranked)  # 0.516 against 0.325 when written
    assert model.check_[0] > model.check_[1]  # and on the held-out users' lists at fit, which fit_note reports


def test_list_ndcg_by_hand():
    from types import SimpleNamespace

    from penchant.models.two_stage import _list_ndcg

    rows = SimpleNamespace(user=np.array([0, 0, 0, 1, 1, 2]), label=np.array([0, 1, 0, 1, 0, 0], np.float32))
    # user 0: the positive second of three; user 1: second of two; user 2 has none (left out)
    assert _list_ndcg(rows, np.array([3, 2, 1, 1, 2, 0.0])) == pytest.approx(1 / np.log2(3))
    assert _list_ndcg(rows, np.array([1, 3, 2, 2, 1, 0.0])) == pytest.approx(1.0)
