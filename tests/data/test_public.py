"""The public data sets' downloaders, each against a real HTTP server on loopback that serves an
archive made here in the publisher's layout, and the folders they unpack read by ``load``."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from penchant.data import fetch, load
from penchant.data.public import RELEASES, unpack
from penchant.errors import DataError
from tests.conftest import cli

# (archive member path, text) per release: the publisher's folder names and file layouts, tiny
LAYOUTS = {
    "ml-1m": ("zip", {"ml-1m/ratings.dat": "1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300762\n",
                      "ml-1m/movies.dat": "10::GoldenEye (1995)::Action|Adventure\n20::Heat (1995)::Crime\n"}),
    "ml-10m": ("zip", {"ml-10M100K/ratings.dat": "1::10::5::978300760\n1::20::3.5::978300761\n2::10::4::978300762\n",
                       "ml-10M100K/movies.dat": "10::GoldenEye (1995)::Action|Adventure\n20::Heat (1995)::Crime\n"}),
    "ml-20m": ("zip", {"ml-20m/ratings.csv": "userId,movieId,rating,timestamp\n1,10,5.0,978300760\n1,20,3.5,978300761\n2,10,4.0,978300762\n",
                       "ml-20m/movies.csv": "movieId,title,genres\n10,GoldenEye (1995),Action|Adventure\n20,Heat (1995),Crime\n"}),
    "ml-25m": ("zip", {"ml-25m/ratings.csv": "userId,movieId,rating,timestamp\n1,10,5.0,978300760\n1,20,3.5,978300761\n2,10,4.0,978300762\n",
                       "ml-25m/movies.csv": "movieId,title,genres\n10,GoldenEye (1995),Action|Adventure\n20,Heat (1995),(no genres listed)\n"}),
    "lastfm-1k": ("tar", {"lastfm-dataset-1K/userid-timestamp-artid-artname-traid-traname.tsv":
                          "user_000001\t2009-05-04T23:08:57Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep Dish\t\tFuck Me Im Famous\n"
                          "user_000001\t2009-05-04T13:54:10Z\t\tRyuichi Sakamoto\t\tComposition 0919\n"
                          "user_000002\t2009-05-04T13:52:04Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep Dish\t\tMc2\n"
                          "user_000001\t2009-05-05T10:00:00Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep Dish\t\tAgain\n"}),
    "lastfm-360k": ("tar", {"lastfm-dataset-360K/usersha1-artmbid-artname-plays.tsv":
                            "00000c289a1829a808ac09c00daf10bc3c4e223b\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty blowtorch\t2137\n"
                            "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tdie Ärzte\t1099\n"
                            "00001411dc427966b17297bf4d69e7e193135d89\t3bd73256-3905-4f3a-97e2-8b341527f805\tbetty blowtorch\t12\n"}),
}
# (users, items, interactions) of each served file as load() reads it
EXPECTED = {"ml-1m": (2, 2, 3), "ml-10m": (2, 2, 3), "ml-20m": (2, 2, 3), "ml-25m": (2, 2, 3),
            "lastfm-1k": (2, 2, 3), "lastfm-360k": (2, 2, 3)}


def make_archive(kind: str, members: dict[str, str], path: Path) -> Path:
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            for name, text in members.items():
                z.writestr(name, text)
    else:
        with tarfile.open(path, "w:gz") as t:
            for name, text in members.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def served(tmp_path):
    """A real HTTP server on loopback over a folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_release_names_its_publisher_and_a_published_checksum():
    assert {"ml-1m", "ml-10m", "ml-20m", "ml-25m", "lastfm-1k", "lastfm-360k"} <= set(RELEASES)
    for release in RELEASES.values():
        algo, _, digest = release.checksum.partition(":")
        assert release.url.startswith("https://") and len(digest) == {"md5": 32, "sha256": 64}[algo]
        assert set(digest) <= set("0123456789abcdef")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_download_verifies_unpacks_and_loads_each_layout(name, served, tmp_path, monkeypatch):
    folder, base = served
    kind, members = LAYOUTS[name]
    archive = make_archive(kind, members, folder / f"{name}.{'zip' if kind == 'zip' else 'tar.gz'}")
    checksum = "md5:" + hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.delenv("PENCHANT_DATA", raising=False)
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
    seen: list[tuple[int, int | None]] = []
    got = fetch(name, url=f"{base}/{archive.name}", checksum=checksum, progress=lambda d, t: seen.append((d, t)))
    assert got == tmp_path / "cache" / "public" / name and (got / ".complete").exists()
    assert seen[-1] == (archive.stat().st_size, archive.stat().st_size)
    ds = load(got)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == EXPECTED[name]
    # a second fetch is served from the cache: a dead URL is never contacted
    assert fetch(name, url="http://127.0.0.1:9/none", checksum=checksum) == got


def test_lastfm_items_are_artists_by_id_else_by_name_and_repeat_plays_are_counted(served, tmp_path, monkeypatch):
    folder, base = served
    kind, members = LAYOUTS["lastfm-1k"]
    archive = make_archive(kind, members, folder / "lastfm-1k.tar.gz")
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
    md5 = lambda path: "md5:" + hashlib.md5(path.read_bytes()).hexdigest()  # noqa: E731
    ds = load(fetch("lastfm-1k", url=f"{base}/{archive.name}", checksum=md5(archive)))
    assert sorted(ds.item_ids.astype(str)) == ["f1b1cf71-bd35-4e99-8624-24a6e15f133a", "name:Ryuichi Sakamoto"]
    assert [(step.name, step.count) for step in ds.steps if step.name == "repeated pairs"] == [("repeated pairs", 1)]
    kind, members = LAYOUTS["lastfm-360k"]
    archive = make_archive(kind, members, folder / "lastfm-360k.tar.gz")
    ds = load(fetch("lastfm-360k", url=f"{base}/{archive.name}", checksum=md5(archive)))
    assert sorted(ds.ratings.tolist()) == [12.0, 1099.0, 2137.0]


def test_cli_download_prints_the_folder_and_lists_the_sets(served, tmp_path, monkeypatch):
    folder, base = served
    kind, members = LAYOUTS["ml-20m"]
    archive = make_archive(kind, members, folder / "ml-20m.zip")
    monkeypatch.delenv("PENCHANT_DATA", raising=False)
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
    sha = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    ran = cli("data", "download", "ml-20m", "--url", f"{base}/ml-20m.zip", "--checksum", sha)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == str(tmp_path / "cache" / "public" / "ml-20m")
    listed = cli("data", "download", "--list")
    assert listed.returncode == 0 and "ml-25m" in listed.stdout and "md5:6b51fb2759a8657d3bfcbfc42b592ada" in listed.stdout
    wrong = cli("data", "download", "ml-25m", "--url", f"{base}/ml-20m.zip", "--checksum", "md5:" + "0" * 32)
    assert wrong.returncode != 0 and "does not match the published" in wrong.stderr
    assert not (tmp_path / "cache" / "public" / "ml-25m").exists()


def test_unpack_refuses_members_outside_the_folder(tmp_path):
    evil = make_archive("tar", {"../outside.txt": "x"}, tmp_path / "evil.tar.gz")
    with pytest.raises(DataError, match="would unpack outside"):
        unpack(evil, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()
