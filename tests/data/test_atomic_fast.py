"""RecBole atomic files are read typed (token ids as Categorical, float columns as Float64) and give
the same Dataset as reading every column as a string; a value the typed reading cannot take sends the
file down the string path, whose errors name the line and column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from penchant.data import load
from penchant.data.build import _dedupe, build_datasets
from penchant.data.dataset import Dataset
from penchant.data.readers import log_from_table, read_atomic, read_log
from penchant.data.tables import category_codes
from penchant.errors import DataError
from tests.conftest import write

HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float", "genre:token", "score:float",
          "tags:token_seq", "emb:float_seq")
ROWS = [  # ids that look like numbers (leading zeros, "7" beside "007", "1.0"), empty extra fields, a repeated pair
    ("007", "01", "4", "1000", "drama", "0.5", "a b", "0.1 0.2"),
    ("7", "1", "3.5", "1001", "", "", "", ""),
    ("0", "001", "5", "999.5", "comedy", "1e3", "c", "1"),
    ("00", "1.0", "1", "1003", "drama", "-2", "a", ""),
    ("10", "01", "2", "1004", "x", "", "b c", "3 4"),
    ("7", "1", "2.5", "1005", "drama", "7", "", "5"),
    ("007", "1", "4.5", "1002", "", "0", "a", "0"),
]


def atomic(path, rows, header=HEADER):
    return write(path, "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))


def as_strings(path, **kw) -> Dataset:
    """The string path: every column read as text, then parsed column by column."""
    table, _ = read_atomic(path)
    return build_datasets([log_from_table(table, user_col="user_id", item_col="item_id", **kw)], names=[path.stem])[0]


def both_errors(path) -> list[DataError]:
    """The error of the typed path (``load``) and of the string path on one file."""
    errors = []
    for read in (load, as_strings):
        with pytest.raises(DataError) as info:
            read(path)
        errors.append(info.value)
    return errors


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in ("user_ids", "item_ids", "users", "items", "ratings", "timestamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        assert x is None or np.array_equal(x, y), name
    assert (a.steps, a.name) == (b.steps, b.name)


def test_typed_and_string_paths_give_the_same_dataset(tmp_path):
    path = atomic(tmp_path / "log.inter", ROWS)
    fast = load(path)
    schema = read_log(path).table.frame.schema
    assert (schema["user_id"], schema["item_id"], schema["genre"]) == (pl.Categorical(),) * 3  # the typed path ran
    assert (schema["rating"], schema["timestamp"], schema["score"]) == (pl.Float64,) * 3
    assert (schema["tags"], schema["emb"]) == (pl.String, pl.String)
    assert set(read_atomic(path)[0].frame.schema.values()) == {pl.String}
    assert_same(fast, as_strings(path))
    # by hand: integer ids in numeric order, a tie ("007" and "7") in text order; "1.0" makes the items text
    assert list(fast.user_ids) == ["0", "00", "007", "7", "10"]
    assert list(fast.item_ids) == ["001", "01", "1", "1.0"]
    # ("7", "1") twice: the later (t = 1005, rating 2.5) is kept
    assert fast.n_interactions == 6 and [(s.name, s.count) for s in fast.steps][-1] == ("repeated pairs", 1)
    kept = {(fast.user_ids[u], fast.item_ids[i]): (r, t) for u, i, r, t in zip(fast.users, fast.items, fast.ratings, fast.timestamps)}
    assert kept[("7", "1")] == (2.5, 1005.0) and kept[("0", "001")] == (5.0, 999.5) and kept[("007", "1")] == (4.5, 1002.0)


def test_blank_ratings_and_padded_ids_read_alike(tmp_path):
    rows = [(" 7", "1", "4", "10"), ("7", "2", "", "11"), ("8", "2 ", "5", "12"), ("9", "3", "", "13")]
    path = atomic(tmp_path / "blank.inter", rows, HEADER[:4])
    for e in both_errors(path):
        assert (e.line, e.column, e.message) == (3, "rating", "empty value")
    for policy, users, items in (("skip", ["7", "8"], ["1", "2"]), ("implicit", ["7", "8", "9"], ["1", "2", "3"])):
        ds = load(path, blank_rating=policy)
        assert_same(ds, as_strings(path, blank_rating=policy))
        assert list(ds.user_ids) == users and list(ds.item_ids) == items  # a skipped row adds no id
        assert [s.name for s in ds.steps] == ["rows read", "ids with surrounding whitespace", "blank ratings"]
    assert load(path, blank_rating="skip").ratings.tolist() == [4.0, 5.0]


GOOD = "1\t10\t4\t100\n"
BROKEN = {  # the file's lines after the header -> (line, column, start of the message)
    "bad rating": (GOOD + "2\t11\tx\t101\n", 3, "rating", "cannot parse 'x'"),
    "rating not finite": (GOOD + "2\t11\tnan\t101\n", 3, "rating", "rating nan is not a finite number"),
    "date-time in a float column": (GOOD + "2\t11\t4\t2020-01-02T00:00:00\n", 3, "timestamp", "cannot parse"),
    "time in milliseconds": (GOOD + "2\t11\t4\t1700000000000\n", 3, "timestamp", "timestamp 1.7e+12 is outside"),
    "empty user": (GOOD + GOOD + "\t11\t4\t101\n", 4, "user_id", "empty value"),
    "invisible character in an id": (GOOD + "2\t1\u200b1\t4\t101\n", 3, "item_id", "id '1\\u200b1' contains"),
    "too many fields": (GOOD + "2\t11\t4\t101\t9\n", 3, None, "5 fields where the header has 4"),
    "too few fields": (GOOD + "2\t11\t4\n", 3, None, "3 fields where the header has 4"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_errors_on_the_typed_path_name_line_and_column(tmp_path, case):
    body, line, column, message = BROKEN[case]
    path = write(tmp_path / "x.inter", "\t".join(HEADER[:4]) + "\n" + body)
    for e in both_errors(path):
        assert (e.file, e.line, e.column) == (str(path), line, column) and e.message.startswith(message), e
        assert f"line {line}" in str(e)


def test_extra_columns_are_checked_on_the_typed_path(tmp_path):
    good = ROWS[0]
    for column, bad, message in (("score", "abc", "cannot parse 'abc'"), ("emb", "0.1 zz", "cannot parse a number")):
        row = tuple(bad if name.startswith(column + ":") else v for name, v in zip(HEADER, good))
        path = atomic(tmp_path / f"{column}.inter", [good, good, row])
        with pytest.raises(DataError) as info:
            load(path)
        assert (info.value.line, info.value.column) == (4, column) and info.value.message.startswith(message)
    path = write(tmp_path / "header.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataError) as info:
        load(path)
    assert (info.value.line, info.value.column) == (1, "user_id") and "name:type" in info.value.message


def test_category_codes_stand_for_the_ids():
    ids = pl.Series(["b", "a", "b", "c", "a", "b"], dtype=pl.Categorical)
    codes, present, values = category_codes(ids)
    assert len(present) == 3 and sorted(values.to_list()) == ["a", "b", "c"] and list(present) == sorted(present)
    assert values.gather(np.searchsorted(present, codes)).to_list() == ids.cast(pl.String).to_list()


def test_a_triple_of_atomic_files_shares_one_vocabulary_on_both_paths(tmp_path):
    from penchant.data import load_triple

    parts = {"train": ROWS[:4], "valid": ROWS[4:5] + [("11", "9", "3", "1", "", "", "", "")], "test": ROWS[5:]}
    paths = [atomic(tmp_path / f"ml.{name}.inter", rows) for name, rows in parts.items()]
    fast = load_triple(*paths)
    logs = [log_from_table(read_atomic(p)[0], user_col="user_id", item_col="item_id") for p in paths]
    slow = build_datasets(logs, names=["train", "valid", "test"])
    for a, b in zip(fast, slow):
        assert_same(a, b)
    assert list(fast[0].user_ids) == ["0", "00", "007", "7", "10", "11"] and fast[1].item_ids[fast[1].items[-1]] == "9"
    assert fast[2].user_ids[fast[2].users].tolist() == ["7", "007"]  # the test part's users, one vocabulary


def test_repeated_pairs_found_alike_with_either_key_width():
    users, items = np.array([0, 1, 0, 1, 0], np.int32), np.array([3, 3, 3, 2, 3], np.int32)
    ts = np.array([1.0, 2, 3, 4, 0])
    for policy, keep in (("last", [1, 2, 3]), ("first", [1, 3, 4])):
        for n_items in (4, 2**31):  # uint32 keys, then int64 keys (2 users × 2^31 items do not fit 32 bits)
            got, repeats = _dedupe(users, items, ts, policy, n_items)
            assert got.tolist() == keep and repeats == 2
    assert _dedupe(users, items, ts, "none", 4) == (slice(None), 2)


def test_files_the_direct_typed_reading_leaves_to_the_string_path(tmp_path):
    body = "\t".join(HEADER[:4]) + "\n" + GOOD + "2\t11\t5\t101\n"
    plain = load(write(tmp_path / "plain" / "log.inter", body))
    bom = load(write(tmp_path / "bom" / "log.inter", "\ufeff" + body))  # the string path strips the mark
    assert [s.count for s in bom.steps] == [s.count for s in plain.steps] and bom.ratings.tolist() == [4.0, 5.0]
    for name in ("user_ids", "item_ids", "users", "items", "ratings", "timestamps"):
        assert np.array_equal(getattr(bom, name), getattr(plain, name)), name
    bad = write(tmp_path / "bad.inter", (body + "3\t1").encode() + b"\xff2\t4\t102\n")
    for e in both_errors(bad):
        assert e.line == 4 and "utf-8" in e.message, e
