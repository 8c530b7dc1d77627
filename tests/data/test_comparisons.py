"""Pairwise comparison readers: the TRL layout (real HH-RLHF pairs) and id pairs."""

from __future__ import annotations

import json

import pytest

from penchant.data import read_id_comparisons, read_text_comparisons
from penchant.data.comparisons import split_shared_prompt
from penchant.errors import DataError
from tests.conftest import write


def test_real_hh_rlhf_pairs_split_into_prompt_and_replies(shared_data):
    pairs = read_text_comparisons(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    assert len(pairs) == 2312 and pairs.user is None
    assert all(p.rstrip().endswith("Assistant:") for p in pairs.prompt)
    # replies are the last assistant turn only (a few real replies quote "Human:" inline)
    assert sum("\n\nHuman:" in c for c in pairs.chosen) == 0
    assert all(c != r for c, r in zip(pairs.chosen[:100], pairs.rejected[:100]))


def test_split_shared_prompt_cuts_at_the_last_assistant_turn():
    prompt, a, b = split_shared_prompt("\n\nHuman: hi\n\nAssistant: Sure thing", "\n\nHuman: hi\n\nAssistant: Sorry")
    assert prompt == "\n\nHuman: hi\n\nAssistant:" and (a, b) == ("Sure thing", "Sorry")


def test_trl_jsonl_with_users(tmp_path):
    rows = [{"prompt": "p1", "chosen": "a", "rejected": "b", "user": "u1"},
            {"prompt": "p2", "chosen": "c", "rejected": "d", "user": 7}]
    p = write(tmp_path / "c.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = read_text_comparisons(p)
    assert list(pairs.prompt) == ["p1", "p2"] and list(pairs.user) == ["u1", "7"]


def test_trl_csv(tmp_path):
    pairs = read_text_comparisons(write(tmp_path / "c.csv", 'prompt,chosen,rejected\n"Hi, you",yes,no\n'))
    assert (pairs.prompt[0], pairs.chosen[0], pairs.rejected[0]) == ("Hi, you", "yes", "no")


def test_trl_errors_name_the_line(tmp_path):
    bad_json = write(tmp_path / "a.jsonl", '{"chosen": "a", "rejected": "b"}\n{"chosen": "a", \n')
    with pytest.raises(DataError) as info:
        read_text_comparisons(bad_json)
    assert info.value.line == 2
    missing = write(tmp_path / "b.jsonl", '{"chosen": "a", "rejected": "b"}\n{"chosen": "a"}\n')
    with pytest.raises(DataError) as info:
        read_text_comparisons(missing)
    assert (info.value.line, info.value.column) == (2, "rejected")
    with pytest.raises(DataError):
        read_text_comparisons(write(tmp_path / "c.jsonl", ""))


def test_id_pairs(tmp_path):
    ds = read_id_comparisons(write(tmp_path / "p.csv", "user,winner,loser\nu1,a,b\nu2,b,c\nu1,c,a\n"))
    c = ds.comparisons
    assert len(c) == 3 and list(ds.item_ids) == ["a", "b", "c"] and list(ds.user_ids) == ["u1", "u2"]
    assert c.winner.tolist() == [0, 1, 2] and c.loser.tolist() == [1, 2, 0] and c.user.tolist() == [0, 1, 0]
    anon = read_id_comparisons(write(tmp_path / "q.csv", "winner,loser\na,b\n"))
    assert anon.comparisons.user.tolist() == [-1]


def test_id_pairs_reject_self_comparison(tmp_path):
    with pytest.raises(DataError) as info:
        read_id_comparisons(write(tmp_path / "p.csv", "user,winner,loser\nu1,a,b\nu1,c,c\n"))
    assert (info.value.line, info.value.column) == (3, "loser")
