"""The one on-disk form of every fitted model: a self-describing ``.npz`` without pickle.

An artefact holds a JSON header (``__meta__``) and named arrays. The header says what wrote it
(``format``, ``format_version``, ``penchant_version``), which model it is (``family``, ``model``,
``params``) and anything else the family needs to rebuild itself (``extra``: a fitted text pipeline's
settings, the sizes of its vocabularies). The arrays hold the learned state and the id vocabularies
(``vocab_users``, ``vocab_items``, ``vocab_options``: unicode strings, position = index), so a loaded
model answers for external ids without the data it was fitted on.

Zip members carry CRC-32 checksums; a truncated or altered file fails the check and is reported as
an :class:`ArtefactError` naming the file, never as a traceback.

``load(path, mapped=FOLDER)`` memory-maps the large numeric arrays instead of reading them: the
first time, each is written to ``FOLDER/<name>.npy`` uncompressed (checked, then renamed into
place, a ``complete`` marker last); after that they are opened read-only with ``mmap_mode="r"``, so
the processes that load the same model share one copy in the page cache (the service's workers).
Arrays under 1 MiB and the vocabularies are read as usual.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from penchant.errors import DataError

FORMAT = "penchant-model"
#: bumped whenever a reader of this version could not rebuild an artefact written by the next
FORMAT_VERSION = 2
VOCAB_PREFIX = "vocab_"
#: arrays at least this large are memory-mapped by ``load(..., mapped=...)``
MAP_MIN_BYTES = 1 << 20


class ArtefactError(DataError):
    """A model artefact is missing, corrupted, not penchant's, or of another format version."""


@dataclass
class Artefact:
    """A model's header and arrays, as written to or read from disk.

    Attributes:
        family: the registry family (``ranking``, ``rating``, ``sequential``, ``preference``, ...).
        model: the registry name.
        params: the constructor's keyword arguments (JSON values).
        arrays: learned state by name (any numeric or unicode numpy array).
        vocab: id vocabularies by kind (``users``, ``items``, ``options``): str arrays.
        extra: family-specific JSON settings (e.g. the text pipeline's encoder and scaler).
    """

    family: str
    model: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    vocab: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    penchant_version: str = ""

    def write(self, path: str | Path) -> Path:
        """Write to ``path`` (parents created); returns the path."""
        from penchant import __version__

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "penchant_version": __version__,
                "family": self.family, "model": self.model, "params": self.params, "extra": self.extra}
        arrays = {f"{VOCAB_PREFIX}{kind}": np.asarray(ids).astype(str) for kind, ids in self.vocab.items()}
        clash = set(arrays) & set(self.arrays)
        if clash:
            raise ValueError(f"state arrays may not be named {sorted(clash)}")
        arrays.update(self.arrays)
        with open(path, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def read(cls, path: str | Path, *, skip: tuple[str, ...] | list[str] = ()) -> Artefact:
        """Read and check an artefact; every problem is an :class:`ArtefactError` naming ``path``.
        Arrays named in ``skip`` are left unread (the caller has them elsewhere)."""
        path = Path(path)
        if not path.is_file():
            raise ArtefactError("no such model file", file=path, expected="a model written by `penchant fit` or save()")
        if not zipfile.is_zipfile(path):
            raise ArtefactError("not a model artefact (not a zip archive); the file is corrupted or of another kind",
                                file=path, expected="a model written by `penchant fit` or save()")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k not in skip}
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise ArtefactError(f"not a readable model artefact ({_reason(exc)}); the file is corrupted or of another kind",
                                file=path) from None
        if "__meta__" not in arrays:
            raise ArtefactError("not a penchant model artefact (no header)", file=path)
        try:
            meta = json.loads(str(arrays.pop("__meta__")))
        except json.JSONDecodeError:
            raise ArtefactError("the model header is not valid JSON; the file is corrupted", file=path) from None
        if meta.get("format") != FORMAT or "format_version" not in meta:
            raise ArtefactError("written by an older penchant without a versioned header; fit or save the model again",
                                file=path, expected=f"format {FORMAT!r} version {FORMAT_VERSION}")
        if meta["format_version"] != FORMAT_VERSION:
            raise ArtefactError(f"model format version {meta['format_version']} (written by penchant "
                                f"{meta.get('penchant_version', '?')}); this penchant reads version {FORMAT_VERSION}: "
                                "fit the model again with this version", file=path)
        vocab = {k[len(VOCAB_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(VOCAB_PREFIX)}
        return cls(meta["family"], meta["model"], meta["params"], arrays, vocab, meta.get("extra", {}),
                   meta.get("penchant_version", ""))


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load(path: str | Path, *, mapped: str | Path | None = None) -> Any:
    """Any model from its artefact, whatever its family: the registry finds the class that wrote it.
    With ``mapped`` (a folder), its large arrays are memory-mapped from there (see the module's notes)."""
    if mapped is None:
        return build(Artefact.read(path), path)
    folder = Path(mapped)
    done = folder / "complete"
    if not done.exists():  # first load: read everything, write the large arrays out
        art = Artefact.read(path)
        large = [k for k, a in art.arrays.items() if a.dtype.kind in "biuf" and a.nbytes >= MAP_MIN_BYTES]
        folder.mkdir(parents=True, exist_ok=True)
        for k in large:
            tmp = folder / f".{k}.{os.getpid()}.npy"
            np.save(tmp, art.arrays[k])
            os.replace(tmp, folder / f"{k}.npy")
        done.write_text("\n".join(large))
    large = [k for k in done.read_text().split("\n") if k]
    art = Artefact.read(path, skip=large)  # the large arrays are not decompressed again
    for k in large:
        try:
            art.arrays[k] = np.load(folder / f"{k}.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ArtefactError(f"the mapped copy of {k!r} is unreadable ({_reason(exc)}); delete {folder} to "
                                "rebuild it", file=folder / f"{k}.npy") from None
    return build(art, path)


def build(art: Artefact, path: str | Path) -> Any:
    """The model an artefact already read describes (``path`` names it in errors)."""
    from penchant.models.registry import entry

    try:
        klass = entry(art.model).cls
    except Exception:
        raise ArtefactError(f"the model {art.model!r} is not registered in this penchant", file=path) from None
    if not hasattr(klass, "from_artefact"):  # a conversation policy loads over its graph (penchant.converse.artefact)
        raise ArtefactError(f"holds a {art.family} policy ({art.model}), not a model that loads alone", file=path)
    return klass.from_artefact(art)
