"""CTR data: ML-100K made a CTR task the RecBole way, histories, feature files and their errors,
and the vocabulary at serving time."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.ctr import (
    CTRData,
    ctr_from_log,
    ctr_parts,
    feature_files,
    random_rows,
    read_features,
    synthetic_ctr,
    user_history,
)
from penchant.data.dataset import Dataset
from penchant.errors import DataError
from tests.conftest import write


@pytest.fixture(scope="module")
def ml_ctr(ml100k, ml100k_dir) -> CTRData:
    return ctr_from_log(ml100k, *feature_files(ml100k_dir))


def test_ml100k_ctr_counts(ml_ctr, ml100k):
    d = ml_ctr
    assert d.n == 100_000 and d.n_users == 943 and d.n_items == 1682
    assert d.label.mean() == pytest.approx(float((ml100k.ratings >= 4).mean())) == pytest.approx(0.55375)
    assert d.fields == ("user", "item", "age_band", "gender", "occupation", "zip_prefix", "year_band", "genres",
                        "hour", "weekday")
    sizes = dict(zip(d.fields, (len(v) for v in d.vocabulary.values)))
    assert sizes["user"] == 943 and sizes["item"] == 1682 and sizes["gender"] == 2 and sizes["occupation"] == 21
    assert sizes["age_band"] == 7 and sizes["genres"] == 19 and sizes["hour"] == 24 and sizes["weekday"] == 7
    assert d.vocabulary.slots[d.fields.index("genres")] == 6  # the most genres of one film
    assert d.codes.shape == (100_000, 15) and d.dense.shape == (100_000, 0)
    assert d.n_features == sum(len(v) + 1 for v in d.vocabulary.values)  # every field has its OOV id
    assert (d.codes <= d.n_features).all()
    # row 0 is user 196's rating of film 242: its fields say so
    v = d.vocabulary
    assert v.values[0][d.codes[0, 0]] == "196" and v.values[1][d.codes[0, 1] - v.offsets[1]] == "242"
    assert d.history.shape == (100_000, 50) and (d.group == d.user).all()


def test_log_side_information_gives_the_same_rows(ml_ctr, ml100k):
    again = ctr_from_log(ml100k)  # the attributes load() read from the same .user/.item files
    assert again.fields == ml_ctr.fields and np.array_equal(again.codes, ml_ctr.codes)


def test_history_holds_strictly_earlier_positives_in_time_order():
    user = np.array([0, 0, 0, 0, 1, 0, 1])
    item = np.array([5, 6, 7, 8, 5, 9, 6])
    label = np.array([1, 1, 0, 1, 1, 1, 1], dtype=np.float32)
    time = np.array([10, 20, 30, 30, 5, 40, 6], dtype=np.float64)
    h = user_history(user, item, label, time, 10, 3)
    assert h.tolist() == [[10, 10, 10], [10, 10, 5], [10, 5, 6], [10, 5, 6],  # 7 and 8 share a second: neither sees the other
                          [10, 10, 10], [5, 6, 8], [10, 10, 5]]


def test_history_matches_a_brute_force_on_ml100k_rows(ml_ctr):
    rng = np.random.default_rng(0)
    d = ml_ctr
    for r in rng.choice(d.n, 20, replace=False):
        mine = (d.user == d.user[r]) & (d.timestamps < d.timestamps[r]) & (d.label > 0)
        rows = np.flatnonzero(mine)
        rows = rows[np.lexsort((rows, d.timestamps[rows]))][-50:]
        expected = np.full(50, d.n_items)
        expected[50 - len(rows):] = d.item[rows]
        assert d.history[r].tolist() == expected.tolist()


def test_parts_share_one_vocabulary_and_history(ml_ctr, ml100k):
    from dataclasses import replace

    first = replace(ml100k, users=ml100k.users[:60_000], items=ml100k.items[:60_000],
                    ratings=ml100k.ratings[:60_000], timestamps=ml100k.timestamps[:60_000])
    rest = replace(ml100k, users=ml100k.users[60_000:], items=ml100k.items[60_000:],
                   ratings=ml100k.ratings[60_000:], timestamps=ml100k.timestamps[60_000:], name="test")
    tr, te = ctr_parts([first, rest])
    assert (tr.n, te.n) == (60_000, 40_000) and tr.vocabulary is te.vocabulary
    assert np.array_equal(te.history, ml_ctr.history[60_000:])  # test rows see their users' training positives


def test_random_rows_partition():
    d, _ = synthetic_ctr(n_users=50, n_items=20, rows_per_user=10)
    tr, va, te = random_rows(d, seed=3)
    assert (tr.n, va.n, te.n) == (400, 50, 50)
    assert tr.vocabulary is d.vocabulary


def _tiny_log() -> Dataset:
    return Dataset(np.array(["u1", "u2", "u3"]), np.array(["a", "b"]), np.array([0, 1, 2, 0], dtype=np.int32),
                   np.array([0, 1, 1, 1], dtype=np.int32), np.array([5, 3, 4, 1], dtype=np.float32),
                   np.array([1e9, 1e9 + 3600, 1e9 + 7200, 1e9 + 9000]))


def test_csv_feature_files_numeric_multi_and_missing_users(tmp_path):
    users = write(tmp_path / "users.csv", "user_id,age,income,city\nu1,31,50,Paris\nu2,17,,Lyon\n")
    items = write(tmp_path / "items.csv", "item_id,tags\na,x y\nb,y\n")
    d = ctr_from_log(_tiny_log(), read_features(users, "user_id", numeric=["income"]),
                     read_features(items, "item_id", multi=["tags"]))
    assert d.fields == ("user", "item", "age_band", "city", "tags", "hour", "weekday")
    assert d.dense_names == ("income",) and d.dense[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0]  # one known value: std 1, mean itself
    v = d.vocabulary
    assert d.codes[2, v.slot_start["city"]] == v.oov("city")  # u3 is not in the file: OOV, counted as a step
    assert any("users without features" in s.name and s.count == 1 for s in d.steps)
    assert v.values[v.index("age_band")].tolist() == ["25-34", "<18"]
    assert d.label.tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize(("name", "content", "kwargs", "where"), [
    ("users.csv", "user_id,age\nu1,31\nu2,old\n", {}, ("users.csv", "line 3", "column 'age'", "'old'")),
    ("users.csv", "user_id,income\nu1,3\nu2,lots\n", {"numeric": ["income"]}, ("users.csv", "line 3", "column 'income'")),
    ("users.csv", "user_id,age\nu1,31\n", {"numeric": ["income"]}, ("users.csv", "line 1", "column 'income'", "no column")),
    ("users.csv", "user_id,age\nu1,31\nu1,32\n", {}, ("users.csv", "line 3", "column 'user_id'", "more than once")),
    ("x.user", "user_id:token\tscore:float\nu1\t0.5\nu2\thigh\n", {}, ("x.user", "line 3", "column 'score'", "'high'")),
    ("y.user", "uid:token\tage:token\nu1\t3\n", {}, ("y.user", "line 1", "column 'user_id'")),
])
def test_bad_feature_files_name_file_line_and_column(tmp_path, name, content, kwargs, where):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        ctr_from_log(_tiny_log(), path if not kwargs else read_features(path, "user_id", **kwargs))
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in where), text


def test_serving_encode_counts_unseen_and_names_a_missing_field(ml_ctr):
    v = ml_ctr.vocabulary
    v.unseen.clear()
    row = {"user": ["1", "99999"], "item": ["1", "1"], "age_band": ["25-34", "25-34"], "gender": ["M", "X"],
           "occupation": ["writer", "writer"], "zip_prefix": ["85", "85"], "year_band": ["1990s", "1990s"],
           "genres": [["Comedy", "Drama"], "Action"], "hour": ["3", "3"], "weekday": ["Mon", "Mon"]}
    codes, dense = v.encode(row)
    assert codes.shape == (2, 15) and dense.shape == (2, 0)
    assert codes[1, 0] == v.oov("user") and codes[1, v.slot_start["gender"]] == v.oov("gender")
    assert v.unseen == {"user": 1, "gender": 1}
    genres = codes[0, v.slot_start["genres"]:v.slot_start["genres"] + 6]
    assert sorted(v.values[7][genres[:2] - v.offsets[7]]) == ["Comedy", "Drama"] and (genres[2:] == v.n_features).all()
    del row["gender"]
    with pytest.raises(DataError, match="request, column 'gender': missing feature 'gender'"):
        v.encode(row)


def test_synthetic_world_returns_its_click_probabilities():
    d, p = synthetic_ctr(n_users=200, n_items=50, rows_per_user=20, seed=1)
    assert d.n == len(p) == 4000 and ((p > 0) & (p < 1)).all()
    assert abs(d.label.mean() - p.mean()) < 0.03  # labels drawn from p
    assert d.fields == ("user", "item", "segment", "category", "tags", "position", "device")
    assert d.dense_names == ("activity", "price") and d.history.shape == (4000, 20)
