"""Every kind of broken input raises a DataError naming file, line and column."""

from __future__ import annotations

import polars as pl
import pytest

from penchant.data import load
from penchant.data.readers import read_atomic, read_log
from penchant.errors import ConfigError, DataError
from tests.conftest import write


def err(fn, *a, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*a, **kw)
    return info.value


def test_good_csv_with_aliases(tmp_path):
    p = write(tmp_path / "log.csv", "userId,movieId,rating,timestamp\n1,10,4.5,100\n2,10,3,200\n1,11,5,150\n")
    log = read_log(p)
    assert list(log.user) == ["1", "2", "1"] and list(log.item) == ["10", "10", "11"]
    assert log.rating.tolist() == [4.5, 3.0, 5.0] and log.timestamp.tolist() == [100, 200, 150]


def test_missing_column(tmp_path):
    p = write(tmp_path / "log.csv", "user,product\n1,2\n")
    e = err(read_log, p)
    assert e.file.endswith("log.csv") and e.line == 1 and "item" in str(e)


def test_explicit_missing_column(tmp_path):
    p = write(tmp_path / "log.csv", "user,item\n1,2\n")
    e = err(read_log, p, rating_col="stars")
    assert e.column == "stars" and e.line == 1


def test_unparsable_number_names_line_and_column(tmp_path):
    p = write(tmp_path / "log.csv", "user,item,rating\n1,2,4\n1,3,5\n2,3,four\n")
    e = err(read_log, p)
    assert (e.line, e.column) == (4, "rating") and "'four'" in str(e) and "expected a number" in str(e)


def test_wrong_delimiter(tmp_path):
    p = write(tmp_path / "log.tsv", "user,item,rating\n1,2,4\n")
    e = err(read_log, p)
    assert e.line == 1 and "delimiter" in str(e)


def test_empty_file(tmp_path):
    e = err(read_log, write(tmp_path / "log.csv", ""))
    assert "empty" in str(e) and e.line == 1


def test_header_only(tmp_path):
    e = err(read_log, write(tmp_path / "log.csv", "user,item\n"))
    assert "no rows" in str(e) and e.line == 2


def test_bad_encoding_names_line(tmp_path):
    e = err(read_log, write(tmp_path / "log.csv", b"user,item\n1,2\n3,caf\xe9\n"))
    assert e.line == 3 and "utf-8" in str(e).lower()


def test_latin1_when_asked(tmp_path):
    p = write(tmp_path / "log.csv", b"user,item\n1,2\n3,caf\xe9\n")
    assert read_log(p, encoding="latin-1").item[1] == "café"


def test_too_many_fields(tmp_path):
    e = err(read_log, write(tmp_path / "log.tsv", "user\titem\n1\t2\n3\t4\t5\n"))
    assert e.line == 3 and "3 fields" in str(e)


def test_too_few_fields(tmp_path):
    e = err(read_log, write(tmp_path / "log.tsv", "user\titem\trating\n1\t2\t3\n3\t4\n"))
    assert e.line == 3 and "2 fields" in str(e)


def test_empty_id(tmp_path):
    e = err(read_log, write(tmp_path / "log.csv", "user,item\n1,2\n,4\n"))
    assert (e.line, e.column) == (3, "user") and "empty" in str(e)


def test_bad_timestamp(tmp_path):
    e = err(read_log, write(tmp_path / "log.csv", "user,item,timestamp\n1,2,2024-01-01\n1,3,yesterday\n"))
    assert (e.line, e.column) == (3, "timestamp")


def test_iso_timestamps(tmp_path):
    log = read_log(write(tmp_path / "log.csv", "user,item,timestamp\n1,2,1970-01-02T00:00:00\n"))
    assert log.timestamp.tolist() == [86400.0]


def test_parquet(tmp_path):
    p = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "rating": [1.0, 2.0]}).write_parquet(p)
    log = read_log(p)
    assert list(log.user) == ["1", "2"] and log.rating.tolist() == [1.0, 2.0]
    q = tmp_path / "bad.parquet"
    pl.DataFrame({"user_id": [1], "thing": [2]}).write_parquet(q)
    assert "item" in str(err(read_log, q))
    r = write(tmp_path / "junk.parquet", b"not parquet at all")
    assert "Parquet" in str(err(read_log, r))


def test_atomic_header_must_be_typed(tmp_path):
    e = err(read_atomic, write(tmp_path / "x.inter", "user_id\titem_id:token\n1\t2\n"))
    assert e.line == 1 and e.column == "user_id" and "name:type" in str(e)
    e = err(read_atomic, write(tmp_path / "y.inter", "user_id:token\titem_id:blob\n1\t2\n"))
    assert e.column == "item_id:blob"


def test_atomic_float_column_checked(tmp_path):
    e = err(read_atomic, write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\tx\n"))
    assert (e.line, e.column) == (3, "rating")


def test_unknown_item_in_side_file(tmp_path):
    write(tmp_path / "d" / "d.inter", "user_id:token\titem_id:token\n1\t10\n1\t11\n2\t12\n")
    write(tmp_path / "d" / "d.item", "item_id:token\tclass:token_seq\n10\tA B\n11\tB\n")
    e = err(load, tmp_path / "d")
    assert e.file.endswith("d.inter") and e.line == 4 and "'12'" in str(e)


def test_unknown_item_in_link_file(tmp_path):
    write(tmp_path / "d" / "d.inter", "user_id:token\titem_id:token\n1\t10\n")
    write(tmp_path / "d" / "d.item", "item_id:token\tclass:token_seq\n10\tA\n")
    write(tmp_path / "d" / "d.link", "item_id:token\tentity_id:token\n10\tm.1\n99\tm.2\n")
    write(tmp_path / "d" / "d.kg", "head_id:token\trelation_id:token\ttail_id:token\nm.1\tdirected_by\tm.9\n")
    e = err(load, tmp_path / "d")
    assert e.file.endswith("d.link") and e.line == 3 and e.column == "item_id"


def test_duplicate_id_in_side_file(tmp_path):
    write(tmp_path / "d" / "d.inter", "user_id:token\titem_id:token\n1\t10\n")
    write(tmp_path / "d" / "d.item", "item_id:token\tclass:token_seq\n10\tA\n10\tB\n")
    e = err(load, tmp_path / "d")
    assert e.file.endswith("d.item") and e.line == 3


def test_duplicates_are_counted_not_silently_dropped(tmp_path):
    p = write(tmp_path / "log.csv", "user,item,rating,timestamp\n1,2,1,10\n1,2,5,20\n1,3,4,5\n2,2,3,1\n")
    ds = load(p)
    assert ds.n_interactions == 3
    step = [s for s in ds.steps if s.name == "repeated pairs"]
    assert step and step[0].count == 1
    assert ds.matrix("rating")[ds.user_index("1")[0], ds.item_index("2")[0]] == 5  # the latest kept
    assert load(p, dedupe="none").n_interactions == 4


def test_min_rating_counts_what_it_filters(tmp_path):
    ds = load(write(tmp_path / "log.csv", "user,item,rating\n1,2,1\n1,3,4\n2,2,5\n"), min_rating=4)
    assert ds.n_interactions == 2 and ds.ratings is None
    assert [(s.name, s.count) for s in ds.steps][-1] == ("below min rating", 1)


def test_no_such_file(tmp_path):
    assert "no such file" in str(err(load, tmp_path / "nope.csv"))


def test_from_frame_polars_and_errors():
    from penchant.data import from_frame

    ds = from_frame(pl.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"], "rating": [5, 2, 4]}), min_rating=4)
    assert ds.n_interactions == 2 and list(ds.user_ids) == ["1", "2"]
    e = err(from_frame, pl.DataFrame({"user_id": [1], "item_id": ["a"], "rating": ["bad"]}))
    assert (e.line, e.column, e.line_kind) == (1, "rating", "row") and "row 1" in str(e)
    assert "DataFrame" in str(err(from_frame, [1, 2, 3]))


def test_ids_with_surrounding_whitespace_are_stripped_and_counted(tmp_path):
    """The rule: surrounding whitespace is not part of an id; it is stripped, and the ids that had it and
    the users/items it merged are counted in ``steps`` (read typed from CSV and as strings from JSON lines)."""
    import json

    rows = [("1", "10"), (" 1", "11"), ("1 ", "12"), ("2", " 13"), ("3", "14")]
    csv_log = write(tmp_path / "log.csv", "user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    jsonl_log = write(tmp_path / "log.jsonl", "".join(json.dumps({"user": u, "item": i}) + "\n" for u, i in rows))
    for path in (csv_log, jsonl_log):
        ds = load(path)
        assert list(ds.user_ids) == ["1", "2", "3"] and list(ds.item_ids) == ["10", "11", "12", "13", "14"]
        steps = [(s.name, s.count, s.detail) for s in ds.steps if "whitespace" in s.name]
        assert steps == [("ids with surrounding whitespace", 3, "stripped, merging 2 users")], path
    clean = load(write(tmp_path / "clean.csv", "user,item\n1,10\n2,11\n"))
    assert not [s for s in clean.steps if "whitespace" in s.name]


def test_blank_ratings_are_refused_unless_told_what_they_mean(tmp_path):
    p = write(tmp_path / "mixed.csv", "user,item,rating\n1,10,4\n1,11,\n2,12,5\n2,13,\n")
    e = err(load, p)
    assert (e.line, e.column) == (3, "rating") and "empty value" in e.message
    assert "blank_rating='skip'" in str(e) and "--blank-rating skip" in str(e)
    skipped = load(p, blank_rating="skip")
    assert skipped.n_interactions == 2 and skipped.ratings.tolist() == [4.0, 5.0]
    assert [(s.name, s.count) for s in skipped.steps if s.name == "blank ratings"] == [("blank ratings", 2)]
    unary = load(p, blank_rating="implicit")
    assert unary.n_interactions == 4 and unary.ratings is None
    assert [(s.name, s.count) for s in unary.steps if s.name == "blank ratings"] == [("blank ratings", 2)]
    as_strings = write(tmp_path / "mixed.jsonl", '{"user": 1, "item": 10, "rating": 4}\n{"user": 1, "item": 11, "rating": null}\n'
                                                  '{"user": 2, "item": 12, "rating": ""}\n')
    assert (err(load, as_strings).line, load(as_strings, blank_rating="skip").n_interactions) == (2, 1)
    e = err(load, write(tmp_path / "nan.csv", "user,item,rating\n1,10,4\n1,11,nan\n"))
    assert (e.line, e.column) == (3, "rating") and "finite" in e.message
    with pytest.raises(ConfigError, match="blank_rating must be one of error, skip, implicit"):
        load(p, blank_rating="maybe")


@pytest.mark.parametrize("value", ["1e300", "-1e300", "inf", "nan", "1700000000000"])
def test_out_of_range_timestamps_name_line_column_and_range(tmp_path, value):
    for name, text in (("log.csv", f"user,item,timestamp\n1,10,100\n1,11,{value}\n2,10,5\n"),
                       ("log.jsonl", f'{{"user": 1, "item": 10, "timestamp": 100}}\n{{"user": 1, "item": 11, "timestamp": "{value}"}}\n')):
        e = err(load, write(tmp_path / name, text))
        assert (e.line, e.column) == (3 if name == "log.csv" else 2, "timestamp"), (name, str(e))
        assert "253402300799" in str(e) and "years 1 to 9999" in str(e)
    if value == "1700000000000":
        assert "milliseconds" in str(e)


def test_mixed_iso_timestamps_are_read_and_only_a_bad_one_is_named(tmp_path):
    """Date-times with and without a UTC offset, dates alone and unix seconds in one column: each read as
    what it says (no offset: UTC); a value that is none of them is named on its own line."""
    body = ("user,item,timestamp\n1,2,2020-01-01T00:00:00\n1,3,2020-01-02T00:00:00+02:00\n2,3,2020-01-03\n"
            "2,4,2020-01-03 10:00:00Z\n3,4,1577836800\n")
    log = read_log(write(tmp_path / "log.csv", body))
    assert log.timestamp.tolist() == [1577836800.0, 1577916000.0, 1578009600.0, 1578045600.0, 1577836800.0]
    e = err(read_log, write(tmp_path / "bad.csv", body + "3,5,yesterday\n"))
    assert (e.line, e.column) == (7, "timestamp") and "'yesterday'" in e.message


@pytest.mark.parametrize("body, line, column", [
    # header on 1; the first record holds a newline (lines 2-3); 'x' is on line 4
    ('user,item,rating,title\n1,2,3,"a\nb"\n2,3,x,"c"\n', 4, "rating"),
    # records on lines 2-4 and 5; the bad timestamp starts line 6 (its own field spans 6-7)
    ('user,item,timestamp,note\n1,2,5,"x\ny\nz"\n1,3,6,"ok"\n2,3,1e300,"p\nq"\n', 6, "timestamp"),
    # a doubled quote inside a quoted field does not close it: lines 2-3, then the bad rating on 4
    ('user,item,rating,note\n1,2,3,"say ""hi""\nthere"\n1,3,bad,""\n', 4, "rating"),
    # an empty id after a quoted newline (CRLF line ends): lines 2-3, then line 4
    ('user,item,rating,note\r\n1,2,3,"a\r\nb"\r\n,3,4,c\r\n', 4, "user"),
])
def test_quoted_newlines_do_not_shift_the_line_named(tmp_path, body, line, column):
    e = err(load, write(tmp_path / "log.csv", body))
    assert (e.line, e.column, e.line_kind) == (line, column, "line"), str(e)


def test_blank_lines_in_json_lines_do_not_shift_the_line_named(tmp_path):
    p = write(tmp_path / "log.jsonl", '{"user": "a", "item": "b", "rating": 1}\n\n\n{"user": "a", "item": "c", "rating": "x"}\n')
    e = err(load, p)
    assert (e.line, e.column, e.line_kind) == (4, "rating", "line"), str(e)
