"""MovieLens in RecBole form (the real shared copy) and in GroupLens's layouts, and the downloader."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from penchant.data import fetch_movielens, load, load_movielens
from penchant.data.public import download
from penchant.errors import DataError


def test_recbole_folder_reads_everything(ml100k):
    ds = ml100k
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100_000)
    assert ds.item_text[ds.item_index("1")[0]] == "Toy Story"
    assert ds.item_attributes["class"].of(int(ds.item_index("1")[0])) == ["Animation", "Children's", "Comedy"]
    assert len(ds.item_attributes["class"].values) == 19
    assert ds.item_attributes["release_year"].of(int(ds.item_index("1")[0])) == ["1995"]
    assert "kg:film.film.directed_by" in ds.item_attributes
    assert set(ds.user_attributes) == {"age", "gender", "occupation", "zip_code"}
    assert ds.ratings.mean() == pytest.approx(3.52986, abs=1e-5)


def _write_grouplens_100k(src, folder: Path) -> None:
    """u.data / u.item / u.user in GroupLens's own ml-100k layout, made from the shared copy."""
    folder.mkdir(parents=True)
    u = src.user_ids[src.users]
    i = src.item_ids[src.items]
    lines = [f"{a}\t{b}\t{int(r)}\t{int(t)}" for a, b, r, t in zip(u, i, src.ratings, src.timestamps)]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    genres = src.item_attributes["class"]
    from penchant.data.movielens import ML100K_GENRES

    rows = []
    for idx, item in enumerate(src.item_ids):
        flags = ["1" if g in genres.of(idx) else "0" for g in ML100K_GENRES]
        year = src.item_attributes["release_year"].of(idx)
        date = f"01-Jan-{year[0]}" if year else ""
        rows.append("|".join([item, f"{src.item_text[idx]} ({year[0] if year else ''})", date, "", "http://x"] + flags))
    (folder / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1", errors="replace"))


def test_grouplens_100k_layout_matches_recbole_copy(ml100k, tmp_path):
    _write_grouplens_100k(ml100k, tmp_path / "ml-100k")
    ds = load(tmp_path / "ml-100k")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100_000)
    assert np.array_equal(ds.csr.toarray(), ml100k.csr.toarray())
    toy = int(ds.item_index("1")[0])
    assert ds.item_attributes["genre"].of(toy) == ["Animation", "Children's", "Comedy"]
    assert ds.item_attributes["release_year"].of(toy) == ["1995"]


def test_grouplens_1m_and_latest_layouts(tmp_path):
    one = tmp_path / "ml-1m"
    one.mkdir()
    (one / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (one / "movies.dat").write_bytes("10::Am\xe9lie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n".encode("latin-1"))
    (one / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load(one)
    assert ds.n_interactions == 3 and ds.item_text[0] == "Amélie (2001)"
    assert ds.item_attributes["genre"].of(0) == ["Comedy", "Romance"]
    assert ds.item_attributes["release_year"].of(1) == ["1995"]
    assert ds.user_attributes["gender"].of(1) == ["M"]
    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    (latest / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n")
    (latest / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                                       '3,"Grumpier Old Men, The (1995)",(no genres listed)\n')
    ds = load(latest)
    assert ds.ratings.tolist() == [4.0, 4.5]
    assert ds.item_text[1] == "Grumpier Old Men, The (1995)" and ds.item_attributes["genre"].of(1) == []


def test_broken_grouplens_file_names_line(tmp_path):
    one = tmp_path / "ml-1m"
    one.mkdir()
    (one / "ratings.dat").write_text("1::10::5::978300760\n1::20::3\n")
    with pytest.raises(DataError) as info:
        load(one)
    assert info.value.line == 2 and info.value.file.endswith("ratings.dat")


@pytest.fixture()
def archive_server(ml100k, tmp_path):
    """A real HTTP server on loopback serving an ml-100k.zip in GroupLens's layout."""
    _write_grouplens_100k(ml100k, tmp_path / "src" / "ml-100k")
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "ml-100k.zip", "w") as z:
        for f in (tmp_path / "src" / "ml-100k").iterdir():
            z.write(f, f"ml-100k/{f.name}")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    digest = hashlib.sha256((served / "ml-100k.zip").read_bytes()).hexdigest()
    yield f"http://127.0.0.1:{server.server_address[1]}/ml-100k.zip", f"sha256:{digest}"
    server.shutdown()


def test_download_verifies_caches_and_reports_progress(archive_server, tmp_path, monkeypatch):
    url, checksum = archive_server
    monkeypatch.delenv("PENCHANT_DATA", raising=False)
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
    seen = []
    folder = fetch_movielens("ml-100k", url=url, checksum=checksum, progress=lambda d, t: seen.append((d, t)))
    assert folder == tmp_path / "cache" / "public" / "ml-100k" and (folder / "u.data").exists()
    assert seen and seen[-1][0] == seen[-1][1]
    ds = load_movielens("ml-100k", )
    assert ds.n_interactions == 100_000
    # a second call uses the cache: a dead URL is never contacted
    assert fetch_movielens("ml-100k", url="http://127.0.0.1:9/none.zip", checksum=checksum) == folder


def test_download_rejects_wrong_checksum(archive_server, tmp_path, monkeypatch):
    url, _ = archive_server
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        download(url, tmp_path / "cache" / "x.zip", "sha256:" + "0" * 64)
    assert "checksum" in str(info.value)
    assert not (tmp_path / "cache" / "x.zip").exists() and not list((tmp_path / "cache").glob("*.part"))


def test_unreachable_or_missing_archive_is_a_clear_error(archive_server, tmp_path):
    url, _ = archive_server
    for bad in (url.replace("ml-100k.zip", "missing.zip"), "http://127.0.0.1:9/none.zip"):
        with pytest.raises(DataError) as info:
            download(bad, tmp_path / "cache" / "x.zip", None)
        assert "could not download" in str(info.value) and "PENCHANT_DATA" in str(info.value)
    assert not list((tmp_path / "cache").glob("*"))


def test_penchant_data_is_looked_in_first(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("PENCHANT_DATA", str(shared_data))
    monkeypatch.setenv("PENCHANT_CACHE", str(tmp_path / "never"))
    assert fetch_movielens("ml-100k") == shared_data / "ml-100k"
    assert not (tmp_path / "never").exists()
