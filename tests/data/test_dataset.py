"""The Dataset: matrices, sequences, filtering, k-core, summary, save/load."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset, load
from tests.conftest import write


def small(tmp_path) -> Dataset:
    return load(write(tmp_path / "log.csv",
                      "user,item,rating,timestamp\nb,x,5,30\na,y,3,20\na,x,4,10\nb,z,1,5\nc,x,2,1\n"))


def test_ids_and_matrices(tmp_path):
    ds = small(tmp_path)
    assert list(ds.user_ids) == ["a", "b", "c"] and list(ds.item_ids) == ["x", "y", "z"]
    assert ds.csr.toarray().tolist() == [[1, 1, 0], [1, 0, 1], [1, 0, 0]]
    assert ds.matrix("rating").toarray().tolist() == [[4, 3, 0], [5, 0, 1], [2, 0, 0]]
    assert ds.item_counts.tolist() == [3, 1, 1] and ds.user_counts.tolist() == [2, 2, 1]


def test_sequences_are_time_ordered(tmp_path):
    ds = small(tmp_path)
    indptr, items = ds.sequences()
    seqs = [ds.item_ids[items[indptr[u]:indptr[u + 1]]].tolist() for u in range(ds.n_users)]
    assert seqs == [["x", "y"], ["z", "x"], ["x"]]


def test_implicit_threshold_and_summary(tmp_path):
    ds = small(tmp_path).implicit(3)
    assert ds.n_interactions == 3 and ds.ratings is None
    s = ds.summary()
    assert s["interactions"] == 3 and s["steps"][-1] == {"name": "below min rating", "count": 2, "detail": "rating < 3 removed"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 9)), min_size=1, max_size=150), st.integers(1, 4))
def test_kcore_property(pairs, k):
    import polars as pl

    from penchant.data.build import build_datasets
    from penchant.data.readers import Log
    from penchant.data.tables import Table

    u = np.array([str(p[0]) for p in pairs], dtype=object)
    i = np.array([str(p[1]) for p in pairs], dtype=object)
    log = Log(Table(pl.DataFrame({"u": u.astype(str)}), path=__import__("pathlib").Path("mem"), first_line=2), u, i)
    ds = build_datasets([log])[0]
    core = ds.kcore(k, k)
    if core.n_interactions:
        assert core.user_counts.min() >= k and core.item_counts.min() >= k
    # removed + kept accounts for everything
    removed = sum(s.count for s in core.steps if s.name == "k-core")
    assert removed + core.n_interactions == ds.n_interactions


def test_save_and_load_roundtrip(ml100k, tmp_path):
    ml100k.save(tmp_path / "saved")
    back = load(tmp_path / "saved")
    assert np.array_equal(back.users, ml100k.users) and np.array_equal(back.items, ml100k.items)
    assert np.array_equal(back.ratings, ml100k.ratings) and np.array_equal(back.timestamps, ml100k.timestamps)
    assert list(back.user_ids) == list(ml100k.user_ids) and list(back.item_text) == list(ml100k.item_text)
    for key, attr in ml100k.item_attributes.items():
        assert (back.item_attributes[key].matrix != attr.matrix).nnz == 0
        assert list(back.item_attributes[key].values) == list(attr.values)
    assert back.summary() == ml100k.summary()
    # the interactions are mapped, read-only, not read: and everything downstream works on them
    assert isinstance(back.users, np.memmap) and not back.users.flags.writeable
    from penchant.data.split import random_holdout
    from penchant.models import create

    split = random_holdout(back, (0.8, 0.2), seed=3)
    assert split.train.n_interactions + split.test.n_interactions == 100_000
    assert np.array_equal(create("pop").fit(split.train).recommend([0], k=5)[0],
                          create("pop").fit(random_holdout(ml100k, (0.8, 0.2), seed=3).train).recommend([0], k=5)[0])


def test_version_one_saves_still_load(ml100k, tmp_path):
    import json

    folder = ml100k.save(tmp_path / "saved")
    meta = json.loads((folder / "meta.json").read_text())
    np.savez_compressed(folder / "arrays.npz", **{k: np.load(folder / f"{k}.npy") for k in meta.pop("arrays")})
    for f in folder.glob("*.npy"):
        f.unlink()
    (folder / "meta.json").write_text(json.dumps({**meta, "version": 1}))
    back = load(folder)
    assert np.array_equal(back.items, ml100k.items) and back.summary() == ml100k.summary()


def test_repeated_clicks_are_counted_in_inspect_and_its_json(tmp_path):
    """A click log with repeats: `data inspect` says how many rows it read and how many repeats it merged
    (or kept, with --dedupe none), in the table and in the JSON; nothing leaves uncounted."""
    import json

    from tests.conftest import cli

    log = write(tmp_path / "clicks.csv", "user,item\n1,10\n1,10\n1,10\n2,11\n2,12\n")
    code, out, err = cli("data", "inspect", log, "--json", tmp_path / "merged.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "merged.json").read_text())
    assert summary["rows_read"] == 5 and summary["interactions"] == 3
    assert summary["repeated_rows"] == {"merged": 2, "kept": 0}
    assert "5 rows read, 3 interactions: 2 repeated (user, item) rows merged" in out
    assert [s["detail"] for s in summary["steps"] if s["name"] == "repeated pairs"] == [
        "repeated (user, item) rows merged; kept the last of each pair in file order"]  # no time column: not "by time"
    code, out, err = cli("data", "inspect", log, "--dedupe", "none", "--json", tmp_path / "kept.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "kept.json").read_text())
    assert summary["rows_read"] == 5 and summary["interactions"] == 5
    assert summary["repeated_rows"] == {"merged": 0, "kept": 2}
    assert "5 rows read, 5 interactions: 2 repeated (user, item) rows kept" in out
    assert [(s["name"], s["count"]) for s in summary["steps"]] == [("rows read", 5), ("repeated pairs kept", 2)]
    timed = load(write(tmp_path / "timed.csv", "user,item,timestamp\n1,10,5\n1,10,3\n"))
    assert [s.detail for s in timed.steps if s.name == "repeated pairs"] == [
        "repeated (user, item) rows merged; kept the last of each pair by time (file order breaks ties)"]
