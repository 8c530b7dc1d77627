"""Public data sets for users with internet: where each is published, its published checksum,
and a downloader that verifies it, shows progress and unpacks it safely into the cache.

``fetch(name)`` looks first in the folder named by ``PENCHANT_DATA``, then in the cache, and only
then downloads; :func:`penchant.data.load` reads every folder it returns (the layout is found from
the files). Checksums are the ones the publishers give beside each archive: GroupLens's
``.zip.md5`` files for MovieLens, Zenodo's record listing for Last.fm.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from penchant.cache import cache_dir
from penchant.errors import DataError

ProgressHook = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Release:
    """One published archive: where it is, how to check it (``md5:…`` or ``sha256:…``), and what it holds."""

    name: str
    url: str
    checksum: str
    about: str


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_ZENODO_LASTFM = "https://zenodo.org/records/6090214/files"
RELEASES = {r.name: r for r in (
    Release("ml-100k", f"{_GROUPLENS}/ml-100k.zip", "md5:0e33842e24a9c977be4e0107933c0723",
            "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies, with genres and demographics"),
    Release("ml-1m", f"{_GROUPLENS}/ml-1m.zip", "md5:c4d9eecfca2ab87c1945afe126590906",
            "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies"),
    Release("ml-10m", f"{_GROUPLENS}/ml-10m.zip", "md5:ce571fd55effeba0271552578f2648bd",
            "MovieLens 10M: 10,000,054 ratings, 69,878 users, 10,677 movies"),
    Release("ml-20m", f"{_GROUPLENS}/ml-20m.zip", "md5:cd245b17a1ae2cc31bb14903e1204af3",
            "MovieLens 20M: 20,000,263 ratings, 138,493 users, 26,744 movies"),
    Release("ml-25m", f"{_GROUPLENS}/ml-25m.zip", "md5:6b51fb2759a8657d3bfcbfc42b592ada",
            "MovieLens 25M: 25,000,095 ratings, 162,541 users, 59,047 movies"),
    # ml-latest-small is re-issued from time to time: its sum is the one of the issue current when written
    Release("ml-latest-small", f"{_GROUPLENS}/ml-latest-small.zip",
            "sha256:696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            "MovieLens latest (small): about 100,000 ratings, 610 users, 9,700 movies"),
    Release("lastfm-1k", f"{_ZENODO_LASTFM}/lastfm-dataset-1K.tar.gz?download=1", "md5:a79a6808f54f73354789a9fb02cb1e41",
            "Last.fm 1K (Celma 2010): 19 million timestamped plays of 992 users; items are artists"),
    Release("lastfm-360k", f"{_ZENODO_LASTFM}/lastfm-dataset-360K.tar.gz?download=1", "md5:635e6ed3fc873aa4ba33aba0ebce02b1",
            "Last.fm 360K (Celma 2010): play counts of 359,347 users for their top artists"),
)}


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


def _members_inside(archive: Path, target: Path, names: list[str]) -> None:
    root = target.resolve()
    for name in names:
        out = (target / name).resolve()
        if root not in out.parents and out != root:
            raise DataError(f"archive member {name!r} would unpack outside the cache", file=archive)


def unpack(archive: Path, target: Path) -> None:
    """Unpack a zip or (gzipped) tar archive into ``target``, refusing members that would land outside it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            _members_inside(archive, target, z.namelist())
            z.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            _members_inside(archive, target, [m.name for m in members])
            bad = [m.name for m in members if not (m.isfile() or m.isdir())]
            if bad:
                raise DataError(f"archive member {bad[0]!r} is a link or device", file=archive, expected="plain files")
            t.extractall(target, filter="data")
    else:
        raise DataError("not a zip or tar archive", file=archive)


def fetch(name: str, *, url: str | None = None, checksum: str | None = None, progress: ProgressHook | None = None) -> Path:
    """The folder holding public data set ``name``, downloading and unpacking it if needed.

    Looks in ``$PENCHANT_DATA/<name>`` first, then in the cache; otherwise downloads the
    published archive (``url`` and ``checksum`` override the built-in release, for mirrors) and
    verifies its checksum before unpacking.
    """
    if os.environ.get("PENCHANT_DATA"):
        local = Path(os.environ["PENCHANT_DATA"]) / name
        if local.is_dir():
            return local
    release = RELEASES.get(name)
    if release is None and url is None:
        raise DataError(f"unknown data set {name!r}", expected=f"one of {', '.join(RELEASES)} (or give its url)")
    url = url or release.url  # type: ignore[union-attr]
    checksum = checksum if checksum is not None else (release.checksum if release else None)
    target = cache_dir() / "public"
    folder = target / name
    if (folder / ".complete").exists():
        return folder
    archive = download(url, target / f"{name}.archive", checksum, progress)
    staging = Path(tempfile.mkdtemp(dir=target))
    try:
        unpack(archive, staging)
        entries = list(staging.iterdir())
        inner = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging  # one top folder, any name
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(inner), folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()
    (folder / ".complete").write_text(url + "\n")
    return folder
