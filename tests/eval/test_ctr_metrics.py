"""CTR metrics by hand (AUC, log loss, group AUC, NDCG of re-ranked lists) and `penchant evaluate
--task ctr` on a small log with feature files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from penchant.eval.ctr import auc, ctr_metrics, gauc, log_loss, ndcg_lists
from tests.conftest import cli, write


def test_auc_by_hand_with_ties():
    # positives 0.9 and 0.3 against negatives 0.8 and 0.1: 3 of the 4 pairs ordered right
    assert auc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == 0.75
    assert auc([1, 0], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert auc([1, 0, 0], [0.5, 0.5, 0.2]) == 0.75
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def _pair_count_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))


def test_auc_against_a_pair_count_and_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(2, size=400)
    s = np.round(rng.random(400) + 0.3 * y, 1)  # many ties
    assert auc(y, s) == pytest.approx(_pair_count_auc(y, s), abs=1e-12)
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        return
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_log_loss_by_hand():
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))  # clipped, not infinite


def test_gauc_weights_groups_by_impressions_and_skips_one_class_groups():
    y = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    s = np.array([0.9, 0.1, 0.5, 0.2, 0.4, 0.6, 0.3, 0.2])
    g = np.array([0, 0, 1, 1, 1, 1, 2, 2])
    # group 0: AUC 1 (2 rows); group 1: positives 0.2, 0.4 against 0.5, 0.6: 0 (4 rows); group 2: one class
    result = gauc(y, s, g)
    assert result.value == pytest.approx((1 * 2 + 0 * 4) / 6) and result.groups == 2 and result.skipped == 1
    rng = np.random.default_rng(1)
    y, s, g = rng.integers(2, size=300), rng.random(300), rng.integers(12, size=300)
    groups = [k for k in range(12) if 0 < y[g == k].sum() < (g == k).sum()]
    want = sum(_pair_count_auc(y[g == k], s[g == k]) * (g == k).sum() for k in groups) / sum((g == k).sum() for k in groups)
    assert gauc(y, s, g).value == pytest.approx(want)


def test_ndcg_of_re_ranked_lists_by_hand():
    y = np.array([0, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.1, 0.5, 0.4, 0.3])
    g = np.array([0, 0, 0, 1, 1, 1])  # group 1 has no positive: left out
    # group 0 ranked: 0.9 (0), 0.8 (1), 0.1 (1): DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    value, lists = ndcg_lists(y, s, g, k=10)
    assert lists == 1 and value == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_lists(y, s, g, k=1)[0] == 0.0
    figures = ctr_metrics(y, s, g, ks=(1, 10))
    assert figures["ndcg@10"] == pytest.approx(value) and figures["gauc_skipped"] == 1


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """A RecBole folder: 40 users rate 15 of 30 films each; comedies are mostly rated 4-5, the
    rest mostly 1-3, so the genre field carries the signal."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("ctr") / "tiny"
    genres = ["Drama", "Comedy", "Action"]
    films = [(i, genres[i % 3], 1950 + 2 * i) for i in range(30)]
    users = [(u, 15 + u, "MF"[u % 2], genres[u % 3]) for u in range(40)]
    rows = []
    for u in range(40):
        for i in rng.choice(30, 15, replace=False):
            liked = (films[i][1] == "Comedy") == (rng.random() < 0.85)
            rating = 4 + rng.integers(0, 2) if liked else 1 + rng.integers(0, 3)
            rows.append(f"{u}\t{i}\t{rating}\t{880000000 + 3600 * len(rows)}")
    write(folder / "tiny.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(rows) + "\n")
    write(folder / "tiny.user", "user_id:token\tage:token\tgender:token\toccupation:token\n" +
          "".join(f"{u}\t{a}\t{g}\tjob{u % 4}\n" for u, a, g, _ in users))
    write(folder / "tiny.item", "item_id:token\trelease_year:token\tclass:token_seq\n" +
          "".join(f"{i}\t{y}\t{g}\n" for i, g, y in films))
    return folder


def test_evaluate_task_ctr_reports_auc_log_loss_gauc(small_folder, tmp_path):
    r = cli("evaluate", "--task", "ctr", "--train", small_folder, "--model", "lr", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "AUC" in r.stdout and "log loss" in r.stdout and "GAUC" in r.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["parts"] == {"train": 480, "valid": 60, "test": 60}
    assert result["metrics"]["auc"] > 0.75  # the genre is in the features


def test_evaluate_task_ctr_bad_feature_file_is_one_line(small_folder, tmp_path):
    bad = write(tmp_path / "users.csv", "user_id,age\n0,31\n1,thirty\n")
    r = cli("evaluate", "--task", "ctr", "--train", small_folder, "--model", "lr", "--user-features", bad)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr
    assert "users.csv" in lines[0] and "line 3" in lines[0] and "column 'age'" in lines[0]
