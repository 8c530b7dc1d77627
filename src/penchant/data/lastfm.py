"""Last.fm listening data (Celma, "Music Recommendation and Discovery", 2010) in its published
layouts: ``lastfm-1k`` (every play of 992 users, timestamped) and ``lastfm-360k`` (play counts of
359,347 users for their top artists). Items are artists: the MusicBrainz id where the file has
one, else the artist's name (``name:<artist>``), so artists without an id are kept, not dropped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from penchant.data.readers import Log
from penchant.data.tables import Table, read_delimited
from penchant.errors import DataError

PLAYS_1K = "userid-timestamp-artid-artname-traid-traname.tsv"
COUNTS_360K = "usersha1-artmbid-artname-plays.tsv"


def lastfm_layout(folder: Path) -> str | None:
    """``lastfm-1k``, ``lastfm-360k`` or None, from the files in ``folder``."""
    if (folder / PLAYS_1K).exists():
        return "lastfm-1k"
    if (folder / COUNTS_360K).exists():
        return "lastfm-360k"
    return None


def _with_artist(t: Table, mbid: str, name: str) -> Table:
    artist = (pl.when(pl.col(mbid).str.strip_chars().fill_null("") != "").then(pl.col(mbid).str.strip_chars())
              .otherwise(pl.lit("name:") + pl.col(name).fill_null("").str.strip_chars()))
    return Table(t.frame.with_columns(artist=artist), t.path, t.first_line, t.line_kind)


def read_lastfm(folder: Path) -> Log:
    """The plays (1K: one row per play, with its time) or play counts (360K: the rating is the count)."""
    layout = lastfm_layout(folder)
    if layout == "lastfm-1k":
        t = read_delimited(folder / PLAYS_1K, sep="\t", header=False, quoting=False,
                           names=["user", "timestamp", "artid", "artname", "traid", "traname"])
        t = _with_artist(t, "artid", "artname")
        return Log(t, t.ids("user"), t.ids("artist"), None, t.timestamps("timestamp"))
    if layout == "lastfm-360k":
        t = read_delimited(folder / COUNTS_360K, sep="\t", header=False, quoting=False,
                           names=["user", "artmbid", "artname", "plays"])
        t = _with_artist(t, "artmbid", "artname")
        return Log(t, t.ids("user"), t.ids("artist"), t.floats("plays"), None)
    raise DataError("no Last.fm files here", file=folder, expected=f"{PLAYS_1K} (lastfm-1k) or {COUNTS_360K} (lastfm-360k)")
