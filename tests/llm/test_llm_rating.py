"""Rating prediction by the embedded language model: the prompt it is shown, that the history it reads
moves its predictions (a planted lover and hater of the same films), the cross-validation beside
biased MF on the same folds and users, and NDCG over rated items checked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from penchant.data import Dataset
from penchant.eval.rating import ndcg_of_rated
from penchant.llm.rating import LLMRating
from tests.conftest import cli, tiny_log

pytestmark = pytest.mark.xdist_group("llm")

TITLES = ["Star Wars", "Alien", "Aliens", "Terminator", "Predator", "Robocop", "Die Hard", "Top Gun",
          "Titanic", "Heat", "Speed", "Total Recall"]


def lover_and_hater() -> Dataset:
    """Two users who rated the same eight action films, one all 5s, the other all 1s."""
    users = np.repeat([0, 1], 8).astype(np.int32)
    items = np.tile(np.arange(8), 2).astype(np.int32)
    ratings = np.r_[np.full(8, 5.0), np.full(8, 1.0)].astype(np.float32)
    return Dataset(np.array(["lover", "hater"], dtype=object), np.array([f"m{i}" for i in range(12)], dtype=object),
                   users, items, ratings=ratings, timestamps=np.arange(16.0), item_text=np.array(TITLES, dtype=object))


def test_the_prompt_lists_the_history_oldest_first_and_few_shot_answers_the_latest():
    model = LLMRating(shots=2, history=3).fit(lover_and_hater())
    chat = model.messages(0, 9)
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant", "user"]
    listed = chat[1]["content"].split("\n")
    assert listed[1:5] == ["- Terminator: 5", "- Predator: 5", "- Robocop: 5", ""]  # the 3 before the 2 shots
    assert "rate Die Hard?" in chat[1]["content"] and chat[2]["content"] == '{"rating": 5}'
    assert "rate Top Gun?" in chat[3]["content"] and "rate Heat?" in chat[5]["content"]
    assert "rate Heat?" in LLMRating().fit(lover_and_hater()).messages(1, 9)[1]["content"]


@pytest.mark.parametrize(("mode", "shots"), [("answer", 3), ("expected", 3), ("expected", 0)])
def test_the_history_it_reads_moves_its_predictions(llm, mode, shots):
    model = LLMRating(mode=mode, shots=shots).fit(lover_and_hater())
    unseen = np.array([8, 9, 10])
    lover, hater = model.predict(np.zeros(3, int), unseen), model.predict(np.ones(3, int), unseen)
    assert np.all((lover >= 1) & (lover <= 5)) and np.all((hater >= 1) & (hater <= 5))
    assert lover.mean() > hater.mean()
    if mode == "expected":
        assert len(np.unique(np.r_[lover, hater])) > 2  # a continuous rating, not the written integer
    assert model.diagnostics()["bad_answers"] == 0


def test_mechanics_of_ratings_cv_beside_biased_mf_on_the_same_folds_users_and_ratings(llm, tmp_path):
    """Mechanics only: the embedded SmolLM2-135M answers mean little, so the figures are checked for
    shape and bookkeeping, not for quality (the scripted-server tests pin the computation)."""
    ds = tiny_log()
    ds.save(tmp_path / "log")
    args = ["--folds", "2", "--users", "3", "--test-per-user", "2", "--k", "5"]
    code, out, err = cli("ratings", "cv", tmp_path / "log", "--model", "llmrating", *args, "--json", tmp_path / "llm.json")
    assert code == 0, err
    assert "a sample of 3 of 60 users, at most 2 test ratings per user per fold" in out
    code, _, err = cli("ratings", "cv", tmp_path / "log", "--model", "biasedmf", *args, "--json", tmp_path / "mf.json")
    assert code == 0, err
    llm_run, mf_run = json.loads((tmp_path / "llm.json").read_text()), json.loads((tmp_path / "mf.json").read_text())
    assert llm_run["users_sampled"] == mf_run["users_sampled"] == 3
    assert [f["ratings"] for f in llm_run["folds"]] == [f["ratings"] for f in mf_run["folds"]]
    assert 0 < llm_run["ratings_evaluated"] <= 2 * 3 * 2
    for fold in llm_run["folds"]:
        assert fold["users"] <= 3 and fold["bad_answers"] == 0
        assert fold["llm"]["requests"] + fold["llm"]["cached"] == fold["ratings"]
        assert 0 <= fold["rmse"] <= 4 and 0 <= fold["ndcg@5"] <= 1
    code, _, err = cli("ratings", "cv", tmp_path / "log", "--model", "llmrating", *args, "--json", tmp_path / "again.json")
    assert code == 0, err
    rerun = json.loads((tmp_path / "again.json").read_text())
    assert rerun["rmse"] == llm_run["rmse"] and all(f["llm"]["requests"] == 0 for f in rerun["folds"])  # all cached


def test_ndcg_of_rated_by_hand():
    # user 0: truth 5,3,1 predicted in the order 3,5,1 -> DCG = 7 + 31/log2(3) + 1/2, IDCG = 31 + 7/log2(3) + 1/2
    users = np.array([0, 0, 0, 1, 1])
    truth = np.array([5.0, 3.0, 1.0, 4.0, 2.0])
    pred = np.array([2.0, 3.0, 1.0, 4.0, 4.0])  # user 1: a tie, scored at its mean gain
    got, n = ndcg_of_rated(users, truth, pred, k=10)
    u0 = (7 + 31 / math.log2(3) + 1 / 2) / (31 + 7 / math.log2(3) + 1 / 2)
    u1 = ((15 + 3) / 2 * (1 + 1 / math.log2(3))) / (15 + 3 / math.log2(3))
    assert n == 2 and got == pytest.approx((u0 + u1) / 2)
    assert ndcg_of_rated(np.array([0, 1, 1]), np.array([5.0, 4.0, 2.0]), np.array([1.0, 1.0, 2.0]), k=1) == \
        pytest.approx((3 / 15, 1))  # user 0 has one test rating: not ranked; user 1 puts its worse item first


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(1, 5)), min_size=2, max_size=40),
       st.integers(1, 6))
def test_ndcg_of_rated_is_one_for_the_true_order_and_within_zero_one(rows, k):
    users, truth, pred = (np.array(c, np.float64) for c in zip(*rows))
    users = users.astype(int)
    value, n = ndcg_of_rated(users, truth, pred, k)
    if n:
        assert 0 < value <= 1 + 1e-12
        assert ndcg_of_rated(users, truth, truth + 0.0, k)[0] == pytest.approx(1.0) or len(np.unique(truth)) < len(truth)
        assert ndcg_of_rated(users, truth, truth * 10, k)[0] >= value - 1e-12


def test_llm_rating_keeps_the_model_contract(llm, tmp_path):
    from penchant.experiment import recommend_for
    from penchant.models.artefact import load
    from penchant.models.protocols import Persistent, Ranker

    full = lover_and_hater()
    rated = full.items < 4  # two users who rated four of six films: 12 requests score everything
    ds = Dataset(full.user_ids, full.item_ids[:6], full.users[rated], full.items[rated], ratings=full.ratings[rated],
                 timestamps=full.timestamps[rated], item_text=full.item_text[:6])
    model = LLMRating().fit(ds)
    assert isinstance(model, Ranker) and isinstance(model, Persistent)
    scores = model.score(np.arange(2))
    assert scores.shape == (2, 6) and scores.dtype == np.float32 and np.isfinite(scores).all()
    items, _ = model.recommend(np.arange(2), k=2)
    assert items.min() >= 4  # the rated films never come back
    back = load(model.save(tmp_path / "llm.npz"))
    assert back.params() == model.params() and np.array_equal(back.score(np.arange(2)), scores)  # the same prompts
    assert back.messages(0, 5) == model.messages(0, 5)
    assert recommend_for(back, ["lover"], 2).lists == recommend_for(model, ["lover"], 2).lists
