"""Conversation policies on disk: one artefact per trained policy, tied to the graph it learned over.

A policy artefact is a penchant model artefact (:mod:`penchant.models.artefact`: a JSON header and
named arrays in one ``.npz``, CRC-checked, no pickle) of family ``conversation``:

* the header's ``model`` is the policy's registry name and ``params`` its :meth:`Policy.params`
  (the constructor's keyword arguments, so :func:`~penchant.converse.policies.create_policy`
  rebuilds it);
* the arrays are what training learned (:meth:`Policy.state_arrays`), restored by
  :meth:`Policy.load_state_arrays`;
* the vocabulary ``values`` holds the key of each attribute value of the graph, in its order
  (``genre=Drama``, ``category=scifi``: the graph's ``source``), and ``extra["graph"]`` the graph's
  fingerprint: items, values, types and a SHA-256 of which item holds which value;
* ``extra["meta"]`` is the caller's (metrics, the service's model version, when it was trained).

What a policy learns may be tied to its graph (an FM's item and value vectors are rows of it, a
tree's nodes split on value indices), so an artefact loads over the graph it was trained over only:
another graph is a :class:`GraphMismatchError` saying what differs (item count, value count, the
values missing or new, or the same values held by other items). The graph's wording (``noun``) is
not part of it.

The file is written to a temporary name in the target folder, synced to disk and renamed over the
target, so a reader sees the old artefact or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError, DataError

FAMILY = "conversation"
#: what an artefact of this module is, in error messages
EXPECTED = "a conversation policy artefact (penchant converse evaluate --save, or the service's policies/ folder)"
#: how many differing value keys an error names before it counts the rest
_SHOWN = 5


class GraphMismatchError(DataError):
    """A policy artefact was trained over another attribute graph than the one it is loaded over;
    ``differs`` says how, in words."""

    def __init__(self, message: str, *, differs: str, file: str | Path | None = None) -> None:
        self.differs = differs
        super().__init__(message, file=file)


def value_keys(graph: AttributeGraph) -> np.ndarray:
    """str (V,): each value's key, ``attribute=value`` as the data names it (the graph's ``source``)."""
    return np.asarray(graph.source).astype(str)


def graph_fingerprint(graph: AttributeGraph) -> dict[str, Any]:
    """What identifies ``graph`` for a trained policy: ``n_items``, ``n_values``, ``types`` (the
    attribute types in order) and ``hash`` (SHA-256 hex of the value keys, each value's type and the
    items × values incidence, row by row)."""
    items = graph.items.tocsr().astype(bool)
    items.sort_indices()
    h = hashlib.sha256()
    h.update(json.dumps(value_keys(graph).tolist()).encode())
    h.update(json.dumps([graph.type_names[int(t)] for t in graph.types]).encode())
    h.update(np.asarray(items.indptr, dtype=np.int64).tobytes())
    h.update(np.asarray(items.indices, dtype=np.int64).tobytes())
    return {"n_items": int(graph.n_items), "n_values": int(graph.n_values), "types": list(graph.type_names),
            "hash": h.hexdigest()}


def _json(value: dict) -> dict:
    """``value`` as JSON reads it back (numpy numbers and arrays as plain ones); a TypeError for what
    JSON cannot hold."""
    def plain(o):
        if isinstance(o, np.generic | np.ndarray):
            return o.tolist()
        raise TypeError(f"{type(o).__name__} is not JSON")
    return json.loads(json.dumps(value, default=plain))


def save_policy(policy, path: str | Path, *, graph: AttributeGraph, meta: dict) -> None:
    """Write ``policy`` (trained over ``graph``) to ``path`` as one artefact (see the module's notes).

    Args:
        policy: a conversation policy (:class:`~penchant.converse.policies.Policy`).
        path: the ``.npz`` to write (its folder is created); an existing file is replaced whole.
        graph: the attribute graph the policy was built and trained over.
        meta: JSON-ready facts to keep with it (read back by :func:`policy_info`).
    Raises:
        ValueError: the policy was built over a graph of another size, or its state arrays cannot be
            kept (an object array, a reserved name) — a programming error, not a user's.
    """
    from penchant.models.artefact import VOCAB_PREFIX, Artefact

    own = getattr(policy, "graph", None)
    if own is not None and (own.n_items, own.n_values) != (graph.n_items, graph.n_values):
        raise ValueError(f"{policy.name} was built over {own.n_items} items × {own.n_values} values, not the "
                         f"{graph.n_items} × {graph.n_values} graph it is saved with")
    arrays = {str(k): np.asarray(a) for k, a in policy.state_arrays().items()}
    for k, a in arrays.items():
        if a.dtype.kind == "O" or k == "__meta__" or k.startswith(VOCAB_PREFIX):
            raise ValueError(f"{policy.name}: state array {k!r} cannot be kept "
                             f"({'an object array' if a.dtype.kind == 'O' else 'a reserved name'})")
    extra = {"graph": graph_fingerprint(graph), "meta": _json(meta)}
    art = Artefact(FAMILY, policy.name, _json(policy.params()), arrays,
                   {"values": value_keys(graph)}, extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        art.write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path, *, header_only: bool = False):
    """The artefact at ``path`` (arrays unread when ``header_only``), checked to be a conversation
    policy's; every problem a DataError naming the file."""
    from penchant.models.artefact import Artefact, ArtefactError

    if not path.is_file():
        raise DataError("no such policy artefact", file=path, expected=EXPECTED)
    try:
        if header_only:
            with zipfile.ZipFile(path) as z:
                members = [n[:-len(".npy")] for n in z.namelist() if n.endswith(".npy")]
            art = Artefact.read(path, skip=[m for m in members if m != "__meta__"])
        else:
            art = Artefact.read(path)
    except ArtefactError as e:
        raise DataError(f"not a readable policy artefact: {e.message}", file=path, expected=EXPECTED) from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # zipfile's own complaints about a file that is no archive
        raise DataError(f"not a readable policy artefact ({type(e).__name__}: {e})", file=path,
                        expected=EXPECTED) from None
    if art.family != FAMILY:
        raise DataError(f"holds a {art.family} model ({art.model}), not a conversation policy", file=path,
                        expected=EXPECTED)
    if not isinstance(art.extra.get("graph"), dict) or not header_only and "values" not in art.vocab:
        raise DataError("a conversation artefact without its graph's fingerprint; save the policy again", file=path,
                        expected=EXPECTED)
    return art


def policy_info(path: str | Path) -> dict[str, Any]:
    """What an artefact says about itself, without reading its arrays: ``policy`` (registry name),
    ``params``, ``graph`` (its fingerprint), ``meta`` (the caller's) and ``penchant_version``."""
    art = _read(Path(path), header_only=True)
    return {"policy": art.model, "params": art.params, "graph": art.extra["graph"], "meta": art.extra.get("meta", {}),
            "penchant_version": art.penchant_version}


def graph_difference(saved: dict, keys: np.ndarray, graph: AttributeGraph) -> str | None:
    """How ``graph`` differs from the one an artefact was trained over (``saved``: its fingerprint,
    ``keys``: its value keys), in words; None when it is the same graph."""
    now = graph_fingerprint(graph)
    if now["hash"] == saved.get("hash"):
        return None
    parts = []
    if now["n_items"] != saved.get("n_items"):
        parts.append(f"trained over {saved.get('n_items')} items, this graph has {now['n_items']}")
    if list(now["types"]) != list(saved.get("types", [])):
        parts.append(f"trained over the attribute types {', '.join(saved.get('types', [])) or 'none'}, this graph "
                     f"has {', '.join(now['types'])}")
    here, there = value_keys(graph).tolist(), keys.astype(str).tolist()
    here_set, there_set = set(here), set(there)
    missing = [k for k in there if k not in here_set]
    new = [k for k in here if k not in there_set]

    def some(ks: list[str]) -> str:
        return ", ".join(ks[:_SHOWN]) + (f" and {len(ks) - _SHOWN} more" if len(ks) > _SHOWN else "")

    if len(here) != len(there):
        parts.append(f"trained over {len(there)} attribute values, this graph has {len(here)}")
    if missing:
        parts.append(f"values this graph lacks: {some(missing)}")
    if new:
        parts.append(f"values it was not trained over: {some(new)}")
    if not missing and not new and here != there:
        parts.append("the same values in another order")
    if not parts:
        parts.append("the same items and values, but other items hold them (another catalogue, or the items in "
                     "another order)")
    return "; ".join(parts)


def load_policy(path: str | Path, graph: AttributeGraph):
    """The policy saved at ``path``, rebuilt over ``graph`` with what it learned.

    Raises:
        DataError (naming the file): not a conversation policy artefact, a policy this penchant does
            not register, parameters or state it does not accept;
        GraphMismatchError (a DataError): ``graph`` is not the graph it was trained over (what differs).
    """
    from penchant.converse.policies import create_policy, policy_names

    path = Path(path)
    art = _read(path)
    if art.model not in policy_names():
        raise DataError(f"names the policy {art.model!r}, which this penchant does not have; conversation policies: "
                        f"{', '.join(policy_names())}", file=path, expected=EXPECTED)
    differs = graph_difference(art.extra["graph"], art.vocab["values"], graph)
    if differs is not None:
        raise GraphMismatchError(f"{art.model} was trained over another attribute graph ({differs})", differs=differs,
                                 file=path)
    try:
        policy = create_policy(art.model, graph, **art.params)
    except ConfigError as e:
        raise DataError(f"the parameters of {art.model} are not this penchant's: {e}", file=path) from None
    try:
        policy.load_state_arrays(art.arrays)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:  # torch's load_state_dict raises RuntimeError
        raise DataError(f"what {art.model} learned does not load ({type(e).__name__}: {e})", file=path) from None
    return policy
