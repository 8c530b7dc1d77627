"""Every broken input gives one line on stderr and exit 2, naming the file, the line (physical lines,
even where a quoted field holds a newline) and what was expected; never a traceback."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from tests.conftest import cli, write


def one_line_error(*args: object) -> str:
    code, _, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("penchant: error: "), (code, err)
    return lines[0]


def test_invalid_utf8_in_jsonl_names_the_line(tmp_path):
    log = write(tmp_path / "log.jsonl", b'{"user": "a", "item": "b"}\n{"user": "\xff", "item": "c"}\n')
    assert "log.jsonl, line 2: byte 0xff" in one_line_error("data", "inspect", log)
    trl = write(tmp_path / "pairs.jsonl", b'{"chosen": "a", "rejected": "b"}\n{"chosen": "\xfe", "rejected": "b"}\n')
    assert "pairs.jsonl, line 2: byte 0xfe" in one_line_error("prefs", "fit", "--train", trl, "--model", "bt",
                                                              "--out", tmp_path / "m.npz")
    dump = write(tmp_path / "dump.jsonl", b'{"kind": "user", "id": "a"}\n{"kind": "user", "id": "\xff"}\n')
    assert "dump.jsonl, line 2: byte 0xff" in one_line_error("store", "restore", "--in", dump, "--data-dir", tmp_path / "d")


def test_deeply_nested_json_is_refused_before_parsing(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    log = write(tmp_path / "log.jsonl", '{"user": "a", "item": "b"}\n{"user": "a", "item": "c", "x": ' + deep + "}\n")
    assert "log.jsonl, line 2: JSON nested 100,001 levels deep" in one_line_error("data", "inspect", log)
    trl = write(tmp_path / "pairs.jsonl", '{"chosen": "a", "rejected": ' + deep + "}\n")
    assert "pairs.jsonl, line 1: JSON nested" in one_line_error("prefs", "fit", "--train", trl, "--model", "bt",
                                                                "--out", tmp_path / "m.npz")


def test_jsonl_logs_are_read_and_nested_fields_named(tmp_path):
    log = write(tmp_path / "log.jsonl", '{"user": "a", "item": "b", "rating": 4}\n{"user": "b", "item": "b", "rating": 2}\n')
    code, out, err = cli("data", "inspect", log)
    assert code == 0, err
    bad = write(tmp_path / "bad.jsonl", '{"user": "a", "item": "b"}\n{"user": "a", "item": ["b"]}\n')
    assert "bad.jsonl, line 2, column 'item': a nested value" in one_line_error("data", "inspect", bad)


def test_parquet_with_a_list_column_names_the_column(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "tags": [["p"], ["q", "r"]]}).write_parquet(path)
    assert "log.parquet, column 'tags': holds List(String) values" in one_line_error("data", "inspect", path)


def test_gz_that_is_not_gzip_names_the_file(tmp_path):
    fake = write(tmp_path / "log.csv.gz", "user,item\na,b\n")
    assert "log.csv.gz: named .gz but not readable as gzip" in one_line_error("data", "inspect", fake)
    real = tmp_path / "real.csv.gz"
    real.write_bytes(gzip.compress(b"user,item\na,b\nc,d\n"))
    code, out, err = cli("data", "inspect", real)
    assert code == 0 and "2" in out, err


@pytest.mark.parametrize("body, line", [
    ('user,item,title\na,b,"two\nlines"\nc,d,"ok"\ne,f,"never closed\n', 5),  # the record starting on line 5
    ('user,item,title\na,b,"two\nlines"\nc,d,"ok",extra\n', 4),  # 4 fields, counted in physical lines
])
def test_quoted_csv_bad_row_names_its_physical_line(tmp_path, body, line):
    path = write(tmp_path / "log.csv", body)
    assert f"log.csv, line {line}:" in one_line_error("data", "inspect", path)


def test_ids_that_differ_by_an_invisible_character_are_rejected(tmp_path):
    path = write(tmp_path / "log.csv", "user,item\na,b\na\x00,c\nd,e\u200b\n")
    message = one_line_error("data", "inspect", path)
    assert "log.csv, line 3, column 'user': id 'a\\x00' contains the invisible character U+0000" in message
    pairs = write(tmp_path / "pairs.csv", "winner,loser\nx,y\nx\u200b,y\n")
    assert "line 3, column 'winner'" in one_line_error("prefs", "fit", "--train", pairs, "--model", "bt",
                                                       "--out", tmp_path / "m.npz")


def test_malformed_admin_key_says_what_a_key_looks_like(tmp_path, monkeypatch):
    monkeypatch.setenv("PENCHANT_ADMIN_KEY", "secret")
    message = one_line_error("serve", "--data-dir", tmp_path / "d")
    assert "PENCHANT_ADMIN_KEY is not a valid key; a key looks like pk_<id>_<secret>" in message


def test_unknown_model_in_prefs_lists_the_preference_models(tmp_path):
    pairs = write(tmp_path / "pairs.csv", "winner,loser\nx,y\n")
    message = one_line_error("prefs", "fit", "--train", pairs, "--model", "nosuch", "--out", tmp_path / "m.npz")
    assert "unknown model 'nosuch'" in message and "pbt" in message and "als" not in message


def test_out_of_range_timestamp_is_one_line_not_a_traceback(tmp_path):
    log = write(tmp_path / "log.csv", "user,item,timestamp\n1,10,100\n1,11,1e300\n")
    message = one_line_error("data", "inspect", log)
    assert "log.csv, line 3, column 'timestamp': timestamp 1e+300 is outside the range penchant reads" in message
    assert "-62135596800 to 253402300799" in message


def test_unknown_feature_pipeline_is_one_line_naming_the_parameter(tmp_path):
    pairs = write(tmp_path / "pairs.jsonl", "".join(
        f'{{"prompt": "p{i % 3}", "chosen": "good {i}", "rejected": "bad {i}"}}\n' for i in range(12)))
    for model in ("bt", "gpm", "pal-latent"):
        message = one_line_error("prefs", "fit", "--train", pairs, "--model", model, "--param", "features=words",
                                 "--out", tmp_path / "m.npz")
        assert "features" in message and "'words'" in message and "id, text, layers, length, bow" in message, message
    ids = write(tmp_path / "ids.csv", "winner,loser\na,b\nb,c\na,c\n")  # text features of pairs without text
    message = one_line_error("prefs", "fit", "--train", ids, "--model", "bt", "--param", "features=text",
                             "--out", tmp_path / "m.npz")
    assert "features=text reads the options' text" in message and "use features=id" in message, message


def test_blank_ratings_name_the_option_and_are_counted_with_it(tmp_path):
    log = write(tmp_path / "mixed.csv", "user,item,rating\n1,10,4\n1,11,\n2,12,5\n")
    message = one_line_error("data", "inspect", log)
    assert "mixed.csv, line 3, column 'rating': empty value" in message and "--blank-rating skip" in message
    code, out, err = cli("data", "inspect", log, "--blank-rating", "skip", "--json", tmp_path / "s.json")
    assert code == 0, err
    assert "blank ratings" in out and "interactions" in out
    import json

    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["interactions"] == 2
    assert [(s["name"], s["count"]) for s in summary["steps"] if s["name"] == "blank ratings"] == [("blank ratings", 1)]
    code, out, err = cli("data", "inspect", log, "--blank-rating", "implicit", "--json", tmp_path / "i.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "i.json").read_text())
    assert summary["interactions"] == 3 and "ratings" not in summary
    code, out, err = cli("data", "inspect", log, "--blank-rating", "maybe")
    assert code == 2 and "maybe" in err


def test_whitespace_around_ids_is_reported_by_inspect(tmp_path):
    log = write(tmp_path / "log.csv", "user,item\n1,10\n 1,11\n1 ,12\n2, 13\n")
    code, out, err = cli("data", "inspect", log, "--json", tmp_path / "s.json")
    assert code == 0, err
    assert "ids with surrounding whitespace" in out and "stripped, merging 2 users" in out
