"""Write a :class:`Dataset`'s interactions back out, with external ids, in any readable format."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from penchant.data.dataset import Dataset

FORMATS = ("tsv", "csv", "parquet", "inter")


def to_frame(ds: Dataset) -> pl.DataFrame:
    """Interactions as a frame with columns user, item[, rating][, timestamp] (external ids)."""
    # ids are gathered by polars from the vocabularies: no Python string per row
    cols: dict[str, object] = {"user": pl.Series(ds.user_ids.astype(str)).gather(ds.users),
                               "item": pl.Series(ds.item_ids.astype(str)).gather(ds.items)}
    if ds.ratings is not None:
        cols["rating"] = ds.ratings
    if ds.timestamps is not None:
        cols["timestamp"] = ds.timestamps
    return pl.DataFrame(cols)


def write_log(ds: Dataset, path: str | Path) -> Path:
    """Write interactions to ``path``; the format follows the extension (.tsv .csv .parquet .inter)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = to_frame(ds)
    if "timestamp" in frame.columns and (frame["timestamp"] % 1 == 0).all():
        frame = frame.with_columns(pl.col("timestamp").cast(pl.Int64))
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.write_parquet(path)
    elif suffix == ".inter":
        types = {"user": "user_id:token", "item": "item_id:token", "rating": "rating:float", "timestamp": "timestamp:float"}
        frame.rename({c: types[c] for c in frame.columns}).write_csv(path, separator="\t", quote_style="never")
    elif suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_csv(path, separator="\t", quote_style="never")
    return path
