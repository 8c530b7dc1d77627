"""MovieLens in GroupLens's own layouts (ml-100k, ml-1m, ml-latest-small), and its downloader.

The downloader looks first in the folder named by ``PENCHANT_DATA``, then in the user's cache
folder, and only then downloads from GroupLens, verifying the archive's checksum before
unpacking it into the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from penchant.cache import cache_dir
from penchant.data.readers import Log, SideTable
from penchant.data.tables import Table, read_delimited
from penchant.errors import DataError

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class Release:
    """One MovieLens archive: where it is and how to check it (``md5:…`` or ``sha256:…``)."""

    name: str
    url: str
    checksum: str


# Checksums GroupLens publishes beside each archive (``.zip.md5``); ml-latest-small is
# re-issued from time to time, so its sum is the one of the current issue when this was written.
RELEASES = {
    "ml-100k": Release("ml-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                       "md5:0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": Release("ml-1m", "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                     "md5:c4d9eecfca2ab87c1945afe126590906"),
    "ml-latest-small": Release("ml-latest-small", "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
                               "sha256:696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
}




def verify_checksum(path: Path, checksum: str) -> None:
    """Raise DataError unless the file's digest matches ``algo:hexdigest``."""
    algo, _, expected = checksum.partition(":")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected.lower():
        raise DataError(f"{algo} checksum {h.hexdigest()} does not match the published {expected}",
                        file=path, expected="an unaltered archive (delete it and download again)")


ProgressHook = Callable[[int, int | None], None]


def download(url: str, dest: Path, checksum: str | None, progress: ProgressHook | None = None) -> Path:
    """Download ``url`` to ``dest`` (atomically), verifying ``checksum`` when given.

    ``progress(bytes_done, bytes_total_or_None)`` is called as blocks arrive.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            total_n = int(total) if total else None
            done = 0
            while block := response.read(1 << 16):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total_n)
        if checksum:
            verify_checksum(tmp, checksum)
        tmp.replace(dest)
    except urllib.error.URLError as err:  # HTTPError is a URLError too
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not download {url}: {getattr(err, 'reason', err)}", file=dest,
                        expected="a reachable URL, or PENCHANT_DATA set to a folder that holds the data") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _safe_extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        root = target.resolve()
        for member in z.infolist():
            out = (target / member.filename).resolve()
            if root not in out.parents and out != root:
                raise DataError(f"archive member {member.filename!r} would unpack outside the cache", file=archive)
        z.extractall(target)


def fetch_movielens(name: str = "ml-100k", *, url: str | None = None, checksum: str | None = None,
                    progress: ProgressHook | None = None) -> Path:
    """The folder holding MovieLens ``name``, downloading and unpacking it if needed.

    Looks in ``$PENCHANT_DATA/<name>`` first (either layout: GroupLens's or RecBole's), then in
    the cache; otherwise downloads the GroupLens archive (``url`` and ``checksum`` override the
    built-in release, for mirrors).
    """
    if os.environ.get("PENCHANT_DATA"):
        local = Path(os.environ["PENCHANT_DATA"]) / name
        if local.is_dir():
            return local
    release = RELEASES.get(name)
    if release is None and url is None:
        raise DataError(f"unknown MovieLens release {name!r}", expected=f"one of {', '.join(RELEASES)}")
    url = url or release.url  # type: ignore[union-attr]
    checksum = checksum if checksum is not None else (release.checksum if release else None)
    target = cache_dir() / "movielens"
    folder = target / name
    if (folder / ".complete").exists():
        return folder
    archive = download(url, target / f"{name}.zip", checksum, progress)
    staging = Path(tempfile.mkdtemp(dir=target))
    try:
        _safe_extract(archive, staging)
        inner = staging / name if (staging / name).is_dir() else staging
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(inner), folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (folder / ".complete").write_text(url + "\n")
    return folder


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
