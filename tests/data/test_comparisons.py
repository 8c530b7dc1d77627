"""Pairwise comparison readers: the TRL layout (real HH-RLHF pairs) and id pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from penchant.data import read_id_comparisons, read_text_comparisons
from penchant.data.comparisons import split_shared_prompt
from penchant.errors import DataError
from tests.conftest import write


def test_real_hh_rlhf_pairs_split_into_prompt_and_replies(shared_data):
    pairs = read_text_comparisons(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    read, identical = pairs.steps
    assert read.count == 2312 and len(pairs) == 2312 - identical.count and identical.count < 10
    assert pairs.n_users == 0 and (pairs.user == -1).all()
    assert all(p.rstrip().endswith("Assistant:") for p in pairs.prompt)
    # replies are the last assistant turn only (a few real replies quote "Human:" inline)
    assert sum("\n\nHuman:" in c for c in pairs.chosen_text) == 0
    assert (pairs.chosen_text != pairs.rejected_text).all()
    # one option per distinct (prompt, reply), one group per prompt; scoring keeps every row
    assert pairs.n_options == len({(p, r) for p, r in zip(pairs.option_context, pairs.option_text)})
    assert len(np.unique(pairs.group)) == len(set(pairs.prompt))
    assert len(read_text_comparisons(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", drop_identical=False)) == 2312


def test_split_shared_prompt_cuts_at_the_last_assistant_turn():
    prompt, a, b = split_shared_prompt("\n\nHuman: hi\n\nAssistant: Sure thing", "\n\nHuman: hi\n\nAssistant: Sorry")
    assert prompt == "\n\nHuman: hi\n\nAssistant:" and (a, b) == ("Sure thing", "Sorry")


def test_trl_jsonl_with_users(tmp_path):
    rows = [{"prompt": "p1", "chosen": "a", "rejected": "b", "user": "u1"},
            {"prompt": "p2", "chosen": "c", "rejected": "d", "user": 7}]
    p = write(tmp_path / "c.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    pairs = read_text_comparisons(p)
    assert list(pairs.prompt) == ["p1", "p2"] and list(pairs.user_ids[pairs.user]) == ["u1", "7"]


def test_trl_csv(tmp_path):
    pairs = read_text_comparisons(write(tmp_path / "c.csv", 'prompt,chosen,rejected\n"Hi, you",yes,no\n'))
    assert (pairs.prompt[0], pairs.chosen_text[0], pairs.rejected_text[0]) == ("Hi, you", "yes", "no")


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
    c = read_id_comparisons(write(tmp_path / "p.csv", "user,winner,loser\nu1,a,b\nu2,b,c\nu1,c,a\n"))
    assert len(c) == 3 and list(c.option_ids) == ["a", "b", "c"] and list(c.user_ids) == ["u1", "u2"]
    assert c.winner.tolist() == [0, 1, 2] and c.loser.tolist() == [1, 2, 0] and c.user.tolist() == [0, 1, 0]
    assert c.steps[0].count == 3 and c.option_text is None
    anon = read_id_comparisons(write(tmp_path / "q.csv", "winner,loser\na,b\n"))
    assert anon.user.tolist() == [-1] and anon.n_users == 0


def test_id_pairs_reject_self_comparison(tmp_path):
    with pytest.raises(DataError) as info:
        read_id_comparisons(write(tmp_path / "p.csv", "user,winner,loser\nu1,a,b\nu1,c,c\n"))
    assert (info.value.line, info.value.column) == (3, "loser")


@pytest.mark.parametrize("name, body, line, column", [
    # a missing field on the first record (the layout is told from it): its physical line and the field
    ("a.jsonl", '{"prompt": "p", "chosen": "a"}\n{"prompt": "p", "chosen": "a", "rejected": "b"}\n', 1, "rejected"),
    ("b.jsonl", '\n\n{"winner": "a"}\n', 3, "loser"),
    ("c.csv", "prompt,chosen\np,a\n", 1, "rejected"),
    ("d.csv", "winner,lose\na,b\n", 1, "loser"),
    # empty objects: first (no layout to tell) and later (a field missing on that line)
    ("e.jsonl", '{}\n{"chosen": "a", "rejected": "b"}\n', 1, None),
    ("f.jsonl", '{"chosen": "a", "rejected": "b"}\n\n{}\n', 3, "chosen"),
    ("g.jsonl", '{"winner": "a", "loser": "b"}\n\n{}\n', 3, "winner"),
    # bad UTF-8 on the first line, plain and gzipped
    ("h.jsonl", b'{"chosen": "\xff", "rejected": "b"}\n', 1, None),
    ("i.jsonl.gz", b'\n{"chosen": "\xff", "rejected": "b"}\n', 2, None),
])
def test_comparison_file_errors_name_the_physical_line_and_field(tmp_path, name, body, line, column):
    import gzip

    from penchant.data.pair_files import read_pairs

    if name.endswith(".gz"):
        body = gzip.compress(body)
    with pytest.raises(DataError) as info:
        read_pairs(write(tmp_path / name, body))
    e = info.value
    assert (e.line, e.line_kind) == (line, "line") and (column is None or e.column == column), str(e)
    if b"\xff" in (body if isinstance(body, bytes) else b"") or name.endswith(".gz"):
        assert "byte 0xff" in str(e)


def test_id_pairs_count_the_ids_whose_whitespace_was_stripped(tmp_path):
    c = read_id_comparisons(write(tmp_path / "p.csv", "user,winner,loser\nu1,a,b\nu1 ,b, a\n u2,c,a\n"))
    assert list(c.user_ids) == ["u1", "u2"] and list(c.option_ids) == ["a", "b", "c"]
    assert [(s.name, s.count, s.detail) for s in c.steps[1:]] == [
        ("ids with surrounding whitespace", 3, "stripped, merging 1 user and 1 item")]
