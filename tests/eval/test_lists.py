"""Scoring lists made elsewhere gives exactly what scoring the model itself gives."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.errors import DataError
from penchant.eval import build_target, evaluate
from penchant.eval.lists import read_ranked_lists
from penchant.models import create
from tests.conftest import write


def test_lists_of_a_model_score_like_the_model(ml100k_split, tmp_path):
    sp = ml100k_split
    target = build_target(sp.train, sp.test, (sp.valid,))
    model = create("itemknn").fit(sp.train)
    users = target.users
    exclude = target.exclude[users]
    items, _ = model.recommend(users, k=20, exclude=exclude)
    lines = ["user\titem\trank"] + [f"{sp.train.user_ids[u]}\t{sp.train.item_ids[i]}\t{r + 1}"
                                    for u, row in zip(users, items) for r, i in enumerate(row)]
    path = write(tmp_path / "lists.tsv", "\n".join(lines) + "\n")
    lists, dropped = read_ranked_lists(path, sp.train)
    assert dropped == {"rows_with_unknown_user": 0, "rows_with_unknown_item": 0}
    a = evaluate(model, sp.train, sp.test, ks=[10, 20], target=target, beyond_accuracy=False)
    b = evaluate(lists, sp.train, sp.test, ks=[10, 20], target=target, beyond_accuracy=False)
    for key in a.per_user:
        assert np.allclose(a.per_user[key], b.per_user[key]), key


def test_bad_lists(ml100k_split, tmp_path):
    path = write(tmp_path / "l.tsv", "user\titem\trank\n1\t50\t0\n")
    with pytest.raises(DataError, match="rank below 1"):
        read_ranked_lists(path, ml100k_split.train)
    _, dropped = read_ranked_lists(write(tmp_path / "m.tsv", "user\titem\trank\nnobody\t50\t1\n1\tnothing\t1\n"),
                                   ml100k_split.train)
    assert dropped == {"rows_with_unknown_user": 1, "rows_with_unknown_item": 1}
