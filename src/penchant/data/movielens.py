"""MovieLens in GroupLens's own layouts (ml-100k; ml-1m and ml-10m; ml-20m, ml-25m and
ml-latest), fetched through :mod:`penchant.data.public`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from penchant.data.public import RELEASES, ProgressHook, fetch
from penchant.data.readers import Log, SideTable
from penchant.data.tables import Table, read_delimited
from penchant.errors import DataError

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")


def fetch_movielens(name: str = "ml-100k", *, url: str | None = None, checksum: str | None = None,
                    progress: ProgressHook | None = None) -> Path:
    """The folder holding MovieLens ``name`` (ml-100k, ml-1m, ml-10m, ml-20m, ml-25m,
    ml-latest-small), from ``$PENCHANT_DATA``, the cache or GroupLens: :func:`penchant.data.public.fetch`."""
    if url is None and not name.startswith("ml-"):
        raise DataError(f"unknown MovieLens release {name!r}",
                        expected=f"one of {', '.join(n for n in RELEASES if n.startswith('ml-'))}")
    return fetch(name, url=url, checksum=checksum, progress=progress)


def grouplens_layout(folder: Path) -> str | None:
    """Which GroupLens layout a folder holds: ``ml-100k``, ``ml-1m``, ``ml-latest`` or None."""
    if (folder / "u.data").exists():
        return "ml-100k"
    if (folder / "ratings.dat").exists():
        return "ml-1m"
    if (folder / "ratings.csv").exists():
        return "ml-latest"
    return None


def _year_from_title(titles: pl.Series) -> list[list[str]]:
    return [[y] if y else [] for y in titles.str.extract(r"\((\d{4})\)\s*$", 1).to_list()]


def _ratings(t: Table, user: str = "user", item: str = "item") -> Log:
    return Log(t, t.ids(user), t.ids(item),
               t.floats("rating"), t.timestamps("timestamp"))


def _users(path: Path, names: list[str], sep: str) -> SideTable:
    ut = read_delimited(path, sep=sep, header=False, names=names, quoting=False)
    return SideTable(ut, ut.ids("user"),
                     {c: [[v] for v in ut.strings(c).to_list()] for c in ("age", "gender", "occupation")})


def read_grouplens(folder: Path) -> tuple[Log, SideTable | None, SideTable | None]:
    """Ratings, movies and users of a GroupLens folder (any of the three layouts)."""
    layout = grouplens_layout(folder)
    if layout == "ml-100k":
        log = _ratings(read_delimited(folder / "u.data", sep="\t", header=False,
                                      names=["user", "item", "rating", "timestamp"]))
        items = users = None
        if (folder / "u.item").exists():
            names = ["item", "title", "release_date", "video_date", "url", *[f"g{i}" for i in range(19)]]
            it = read_delimited(folder / "u.item", sep="|", header=False, names=names, encoding="latin-1", quoting=False)
            flags = np.column_stack([it.strings(f"g{i}").to_numpy() == "1" for i in range(19)])
            genres = [[g for g, on in zip(ML100K_GENRES, row) if on] for row in flags]
            years = it.strings("release_date", allow_empty=True).str.extract(r"(\d{4})$", 1)
            items = SideTable(it, it.ids("item"),
                              {"genre": genres, "release_year": [[y] if y else [] for y in years.to_list()]},
                              it.strings("title").to_numpy().astype(object))
        if (folder / "u.user").exists():
            users = _users(folder / "u.user", ["user", "age", "gender", "occupation", "zip"], "|")
        return log, items, users
    if layout == "ml-1m":
        log = _ratings(read_delimited(folder / "ratings.dat", sep="::", header=False,
                                      names=["user", "item", "rating", "timestamp"]))
        items = users = None
        if (folder / "movies.dat").exists():
            it = read_delimited(folder / "movies.dat", sep="::", header=False, names=["item", "title", "genres"],
                                encoding="latin-1", quoting=False)
            titles = it.strings("title")
            items = SideTable(it, it.ids("item"),
                              {"genre": it.strings("genres").str.split("|").to_list(), "release_year": _year_from_title(titles)},
                              titles.to_numpy().astype(object))
        if (folder / "users.dat").exists():
            users = _users(folder / "users.dat", ["user", "gender", "age", "occupation", "zip"], "::")
        return log, items, users
    if layout == "ml-latest":
        log = _ratings(read_delimited(folder / "ratings.csv", sep=",", required=("userId", "movieId", "rating", "timestamp")),
                       "userId", "movieId")
        items = None
        if (folder / "movies.csv").exists():
            it = read_delimited(folder / "movies.csv", sep=",", required=("movieId", "title", "genres"))
            titles = it.strings("title")
            genres = [[g for g in row if g != "(no genres listed)"] for row in it.strings("genres").str.split("|").to_list()]
            items = SideTable(it, it.ids("movieId"),
                              {"genre": genres, "release_year": _year_from_title(titles)}, titles.to_numpy().astype(object))
        return log, items, None
    raise DataError("no GroupLens MovieLens files here", file=folder,
                    expected="u.data (ml-100k), ratings.dat (ml-1m) or ratings.csv (ml-latest)")
