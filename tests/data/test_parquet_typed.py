"""Parquet logs are read in their own types (ids Categorical, numbers Float64) and give the same
Dataset as reading every column as a string; a column whose stored type does not fit takes the
string path, whose errors name the row and column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from penchant.data import load
from penchant.data.build import build_datasets
from penchant.data.readers import log_from_table, read_log
from penchant.data.tables import read_parquet
from penchant.errors import DataError
from tests.data.test_atomic_fast import assert_same


def as_strings(path, **kw):
    """The string path: every column cast to text, then parsed column by column."""
    log = log_from_table(read_parquet(path), **kw)
    assert set(log.table.frame.schema.values()) == {pl.String}
    return build_datasets([log], names=[path.stem])[0]


def test_typed_parquet_gives_the_string_paths_dataset(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame({  # integer users, string items, float32 ratings, integer times, a repeated pair (u 7, "b")
        "user_id": pl.Series([7, 10, 7, 2, 7], dtype=pl.Int64),
        "item_id": ["b", "a", "c", "b", "b"],
        "rating": pl.Series([4.5, 3.0, 0.1, 5.0, 2.0], dtype=pl.Float32),
        "timestamp": [100, 101, 102, 99, 103],
        "note": ["x", "y", "z", "w", "v"],
    }).write_parquet(path)
    schema = read_log(path).table.frame.schema
    assert (schema["user_id"], schema["item_id"], schema["rating"], schema["timestamp"], schema["note"]) == (
        pl.Categorical(), pl.Categorical(), pl.Float64, pl.Float64, pl.String)  # the typed path ran
    fast = load(path)
    assert_same(fast, as_strings(path))
    assert list(fast.user_ids) == ["2", "7", "10"] and list(fast.item_ids) == ["a", "b", "c"]  # numeric order
    kept = {(fast.user_ids[u], fast.item_ids[i]): (r, t) for u, i, r, t in zip(fast.users, fast.items, fast.ratings, fast.timestamps)}
    assert kept == {("7", "b"): (2.0, 103.0), ("10", "a"): (3.0, 101.0), ("7", "c"): (np.float32(0.1), 102.0),
                    ("2", "b"): (5.0, 99.0)}
    assert [(s.name, s.count) for s in fast.steps][-1] == ("repeated pairs", 1)


def test_stored_types_that_do_not_fit_take_the_string_path(tmp_path):
    path = tmp_path / "odd.parquet"
    pl.DataFrame({"user": [1.0, 2.5], "item": ["a", " a"], "rating": ["4", "5"],
                  "time": ["2020-01-01T00:00:00", "2020-01-02T00:00:00"]}).write_parquet(path)
    ds = load(path)
    assert_same(ds, as_strings(path))
    assert list(ds.user_ids) == ["1.0", "2.5"] and list(ds.item_ids) == ["a"]  # float ids as text; " a" stripped
    assert ds.ratings.tolist() == [4.0, 5.0] and ds.timestamps.tolist() == [1577836800.0, 1577923200.0]


@pytest.mark.parametrize("frame, row, column, message", [
    ({"user": ["a", "b", "c"], "item": ["x", "y", "z"], "rating": ["4", "5", "lots"]}, 3, "rating", "cannot parse 'lots'"),
    ({"user": ["a", None, "c"], "item": ["x", "y", "z"], "rating": [4.0, 5.0, 3.0]}, 2, "user", "empty value"),
    ({"user": [1, 2, 3], "item": [4, 5, 6], "rating": [4.0, None, 3.0]}, 2, "rating", "empty value"),
    ({"user": [1, 2], "item": ["x", "y"], "rating": [4.0, float("nan")]}, 2, "rating", "rating nan is not a finite"),
    ({"user": [1, 2], "item": ["x", "y"], "timestamp": [1, 1_700_000_000_000]}, 2, "timestamp", "timestamp 1.7e+12"),
])
def test_errors_of_typed_parquet_name_row_and_column(tmp_path, frame, row, column, message):
    path = tmp_path / "bad.parquet"
    pl.DataFrame(frame).write_parquet(path)
    for read in (load, as_strings):
        with pytest.raises(DataError) as info:
            read(path)
        e = info.value
        assert (e.line, e.column) == (row, column) and e.message.startswith(message), e
        assert f"row {row}" in str(e)
