"""One entry point for reading feedback from a file or folder, whatever its layout."""

from __future__ import annotations

from pathlib import Path

from penchant.data.build import Dedupe, build_datasets
from penchant.data.dataset import Dataset
from penchant.data.lastfm import lastfm_layout, read_lastfm
from penchant.data.movielens import fetch_movielens, grouplens_layout, read_grouplens
from penchant.data.public import fetch
from penchant.data.readers import (
    KnowledgeGraph,
    Log,
    SideTable,
    is_atomic,
    log_from_frame,
    read_knowledge_graph,
    read_log,
    side_from_atomic,
)
from penchant.errors import DataError


def recbole_side_files(inter: Path) -> tuple[SideTable | None, SideTable | None, KnowledgeGraph | None]:
    """The ``.item``, ``.user`` and ``.kg``/``.link`` files beside a RecBole ``.inter`` file.

    ``ml-100k.train.inter`` finds ``ml-100k.item`` etc. (RecBole's benchmark-file naming).
    """
    base = inter.name.split(".")[0]
    folder = inter.parent
    items = side_from_atomic(folder / f"{base}.item", "item_id") if (folder / f"{base}.item").exists() else None
    users = side_from_atomic(folder / f"{base}.user", "user_id") if (folder / f"{base}.user").exists() else None
    kg = None
    if (folder / f"{base}.kg").exists() and (folder / f"{base}.link").exists():
        kg = read_knowledge_graph(folder / f"{base}.link", folder / f"{base}.kg")
    return items, users, kg


def side_file_paths(path: str | Path) -> list[Path]:
    """The RecBole side files (``.item``, ``.user``, ``.kg``, ``.link``) of a folder or ``.inter`` file."""
    path = Path(path)
    inter = _find_inter(path) if path.is_dir() else path
    if not is_atomic(inter):
        return []
    base = inter.name.split(".")[0]
    return [p for p in (inter.parent / f"{base}{ext}" for ext in (".item", ".user", ".kg", ".link")) if p.exists()]


def _find_inter(folder: Path) -> Path:
    own = folder / f"{folder.name}.inter"
    if own.exists():
        return own
    inters = sorted(p for p in folder.glob("*.inter") if p.name.count(".") == 1)
    if len(inters) != 1:
        raise DataError("cannot tell which .inter file to read" if inters else "no interaction file here", file=folder,
                        expected="a RecBole folder with <name>.inter, a GroupLens MovieLens folder, or a saved dataset")
    return inters[0]


def load(path: str | Path, *, min_rating: float | None = None, dedupe: Dedupe = "last",
         side_info: bool = True, **columns: str | None) -> Dataset:
    """Read feedback from a file or folder into a :class:`Dataset`.

    Accepts: a log file (CSV/TSV/Parquet/``.inter``); a RecBole atomic folder (with ``.item``,
    ``.user``, ``.kg``, ``.link`` beside the ``.inter``); a GroupLens MovieLens folder; a Last.fm
    1K or 360K folder; a dataset saved by :meth:`Dataset.save`. ``columns`` (``user_col``, ``item_col``,
    ``rating_col``, ``time_col``, ``sep``) map a log's columns. With ``min_rating``, only
    interactions rated at least that are kept (counted in ``steps``).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "meta.json").exists():
            ds = Dataset.load(path)
        elif lastfm_layout(path):
            ds = build_datasets([read_lastfm(path)], dedupe=dedupe, names=[path.name])[0]
        elif grouplens_layout(path):
            log, items, users = read_grouplens(path)
            ds = build_datasets([log], items=items if side_info else None, users=users if side_info else None,
                                dedupe=dedupe, names=[path.name])[0]
        else:
            ds = _load_log(_find_inter(path), dedupe, side_info, path.name, {})
    elif path.exists():
        ds = _load_log(path, dedupe, side_info, path.stem, columns)
    else:
        raise DataError("no such file or folder", file=path)
    return ds.implicit(min_rating) if min_rating is not None else ds


def _load_log(path: Path, dedupe: Dedupe, side_info: bool, name: str, columns: dict) -> Dataset:
    log = read_log(path, **columns)
    items, users, kg = recbole_side_files(path) if (side_info and is_atomic(path)) else (None, None, None)
    return build_datasets([log], items=items, users=users, kg=kg, dedupe=dedupe, names=[name])[0]


def load_triple(train: str | Path, valid: str | Path | None, test: str | Path, *, min_rating: float | None = None,
                dedupe: Dedupe = "last", **columns: str | None) -> tuple[Dataset, Dataset | None, Dataset]:
    """Read a given train/valid/test triple of log files over one shared vocabulary.

    RecBole ``.inter`` files pick up the side files beside the train file.
    """
    paths = [Path(p) for p in (train, valid, test) if p is not None]
    logs: list[Log] = [read_log(p, **columns) for p in paths]
    items, users, kg = recbole_side_files(paths[0]) if is_atomic(paths[0]) else (None, None, None)
    names = ["train", "valid", "test"] if valid is not None else ["train", "test"]
    sets = build_datasets(logs, items=items, users=users, kg=kg, dedupe=dedupe, names=names)
    if min_rating is not None:
        sets = [s.implicit(min_rating) for s in sets]
    return (sets[0], sets[1], sets[2]) if valid is not None else (sets[0], None, sets[1])


def from_frame(frame: object, *, name: str = "frame", min_rating: float | None = None, dedupe: Dedupe = "last",
               **columns: str | None) -> Dataset:
    """A :class:`Dataset` from a polars or pandas DataFrame of interactions (columns as in :func:`load`)."""
    ds = build_datasets([log_from_frame(frame, name, **columns)], dedupe=dedupe, names=[name])[0]
    return ds.implicit(min_rating) if min_rating is not None else ds


def load_public(name: str, **kwargs: object) -> Dataset:
    """Public data set ``name`` (see ``penchant.data.public.RELEASES``) from ``$PENCHANT_DATA``, the
    cache, or its publisher (downloaded once, checksum verified)."""
    return load(fetch(name), **kwargs)  # type: ignore[arg-type]


def load_movielens(name: str = "ml-100k", **kwargs: object) -> Dataset:
    """MovieLens ``name`` from ``$PENCHANT_DATA``, the cache, or GroupLens (see :func:`fetch_movielens`)."""
    return load(fetch_movielens(name), **kwargs)  # type: ignore[arg-type]
