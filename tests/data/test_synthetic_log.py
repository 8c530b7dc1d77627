"""The power-law synthetic log used by the scale benchmark: sizes as asked, each pair once, the
skew it was asked for, and the same file for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data import load
from penchant.data.synthetic import power_law_log
from tests.conftest import cli


def test_power_law_log_has_the_asked_shape_and_skew():
    ds = power_law_log(2000, 500, 40_000, skew=1.0, seed=3)
    assert ds.n_interactions == 40_000 and ds.n_users == 2000 and ds.n_items == 500
    pairs = ds.users.astype(np.int64) * ds.n_items + ds.items
    assert len(np.unique(pairs)) == len(pairs)  # each (user, item) once
    counts = np.sort(np.bincount(ds.items, minlength=ds.n_items))[::-1]
    assert counts[:50].sum() > 0.4 * counts.sum()  # the top 10% of items: ≥ 40% of the log (Zipf s=1: ~ 58%)
    flat = power_law_log(2000, 500, 40_000, skew=0.0, seed=3)
    flat_counts = np.sort(np.bincount(flat.items, minlength=500))[::-1]
    assert flat_counts[:50].sum() < 0.15 * flat_counts.sum()  # uniform: ~10%
    again = power_law_log(2000, 500, 40_000, skew=1.0, seed=3)
    assert np.array_equal(again.users, ds.users) and np.array_equal(again.items, ds.items)
    assert ds.ratings.min() >= 1 and ds.ratings.max() <= 5 and ds.steps[0].count == 40_000
    with pytest.raises(ValueError, match="half of"):
        power_law_log(10, 10, 60)


def test_data_synth_writes_a_log_that_reads_back(tmp_path):
    code, out, err = cli("data", "synth", "--users", "300", "--items", "80", "--interactions", "3000", "--seed", "1",
                         "--out", tmp_path / "log.parquet")
    assert code == 0 and "wrote 3,000 interactions" in out, err
    ds = load(tmp_path / "log.parquet")
    assert ds.n_interactions == 3000 and ds.ratings is not None and ds.timestamps is not None
    code, _, err = cli("data", "synth", "--users", "3", "--items", "3", "--interactions", "8", "--out", tmp_path / "x.csv")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "half of" in err
    code, _, err = cli("data", "synth", "--users", "3", "--items", "3", "--interactions", "2", "--out", tmp_path / "x.xlsx")
    assert code == 2 and "extension" in err


def test_typed_reading_gives_the_same_dataset_as_reading_strings(tmp_path):
    """A log read with typed columns (the fast path) equals the same log read as strings; padded
    ids, ISO times or a bad number take the string path, with its exact errors."""
    import polars as pl

    from penchant.data import from_frame
    from penchant.data.write import write_log
    from penchant.errors import DataError

    path = write_log(power_law_log(300, 120, 4000, seed=5), tmp_path / "log.csv")
    fast = load(path)
    slow = from_frame(pl.read_csv(path, infer_schema=False))
    for field in ("user_ids", "item_ids", "users", "items", "ratings", "timestamps"):
        assert np.array_equal(getattr(fast, field), getattr(slow, field)), field
    odd = tmp_path / "odd.csv"
    odd.write_text("user,item,rating,timestamp\n a ,7,4,2020-01-02T00:00:00\nb,7 ,5,2020-01-03T00:00:00\n")
    ds = load(odd)
    assert list(ds.user_ids) == ["a", "b"] and list(ds.item_ids) == ["7"] and ds.timestamps[1] - ds.timestamps[0] == 86400
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\na,1,4\nb,2,x\n")
    with pytest.raises(DataError, match="line 3, column 'rating': cannot parse 'x'"):
        load(bad)
