"""The item–attribute graph a conversational recommender asks about.

Items link to typed attribute values (genre, decade, country, language, actor, director, ...)
taken from the dataset's item side files and knowledge-graph relations. Two levels, after the
field's LastFM / LastFM* settings: ``coarse`` (genres, decades, countries, languages: a few dozen
values) and ``fine`` (adding knowledge-graph actors, directors, writers and producers: over a
thousand on MovieLens-100K). Pruning rule: a value held by fewer than ``min_items`` items is
dropped (it can single out at most a handful of films and makes a question nobody can use);
what was dropped is counted in ``steps``.

Knowledge-graph values are Freebase ids (``m.09c7w0``); the data carries no names for them, so
questions name a handful of well-known countries and languages and otherwise show the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from penchant.data.dataset import Dataset, Step
from penchant.errors import DataError

#: item attribute (as the readers name it) → attribute type, per level
COARSE = {"class": "genre", "genre": "genre", "release_year": "decade", "kg:film.film.country": "country",
          "kg:film.film.language": "language"}
FINE = COARSE | {"kg:film.film.actor": "actor", "kg:film.film.directed_by": "director",
                 "kg:film.film.written_by": "writer", "kg:film.film.produced_by": "producer"}
LEVELS = {"coarse": COARSE, "fine": FINE}

#: names of the commonest Freebase ids among MovieLens countries and languages
FREEBASE_NAMES = {"m.09c7w0": "the United States", "m.07ssc": "the United Kingdom", "m.0f8l9c": "France",
                  "m.0345h": "Germany", "m.03_3d": "Japan", "m.03rjj": "Italy", "m.0d060g": "Canada",
                  "m.03h64": "Hong Kong", "m.06mkj": "Spain", "m.0b90_r": "Mexico", "m.0chghy": "Australia",
                  "m.03rk0": "India", "m.0d05w3": "China", "m.0d0vqn": "Sweden", "m.06bnz": "Russia",
                  "m.03rt9": "Ireland", "m.059j2": "the Netherlands", "m.06mzp": "Switzerland",
                  "m.06q1r": "Scotland", "m.082fr": "West Germany", "m.02jx1": "England", "m.0154j": "Belgium",
                  "m.02h40lc": "English", "m.064_8sq": "French", "m.04306rv": "German", "m.06nm1": "Spanish",
                  "m.02bjrlw": "Italian", "m.03_9r": "Japanese"}

_QUESTIONS = {"genre": "Do you want {} film?", "decade": "Something from the {}?",
              "country": "A film from {}?", "language": "A film in {}?", "actor": "With actor {}?",
              "director": "Directed by {}?", "writer": "Written by {}?", "producer": "Produced by {}?",
              "category": "Something in the {} category?"}


@dataclass(frozen=True)
class AttributeGraph:
    """Items × attribute values.

    Attributes:
        items: CSR bool (n_items, V): item i has value v.
        names: (V,) display names; ``types``: int64 (V,) index into ``type_names``.
        type_names: the attribute types, e.g. ``("genre", "decade", ...)``.
        source: (V,) the dataset attribute and raw value each came from.
        steps: what was pruned.
    """

    items: sp.csr_matrix
    names: np.ndarray
    types: np.ndarray
    type_names: tuple[str, ...]
    source: np.ndarray
    steps: tuple[Step, ...] = ()

    @property
    def n_values(self) -> int:
        return self.items.shape[1]

    @property
    def n_items(self) -> int:
        return self.items.shape[0]

    def item_values(self, item: int) -> np.ndarray:
        """The values item ``item`` has, int64."""
        return self.items.indices[self.items.indptr[item]:self.items.indptr[item + 1]].astype(np.int64)

    def question(self, value: int) -> str:
        """The question that asks about one value, in words."""
        kind, name = self.type_names[self.types[value]], str(self.names[value])
        if kind == "genre":
            name = ("an " if name[:1].lower() in "aeiou" else "a ") + name
        return _QUESTIONS.get(kind, "Something with " + kind + " {}?").format(name)

    def label(self, value: int) -> str:
        return f"{self.type_names[self.types[value]]}: {self.names[value]}"

    def dense(self) -> np.ndarray:
        """float32 (n_items, V) 0/1."""
        return self.items.astype(np.float32).toarray()


def _decades(values: np.ndarray, matrix: sp.csr_matrix) -> tuple[np.ndarray, sp.csr_matrix]:
    years = np.array([int(v) if str(v).isdigit() else -1 for v in values])
    ok = years > 0
    decade = np.where(ok, years // 10 * 10, -1)
    labels = np.unique(decade[ok])
    to = sp.csr_matrix((np.ones(ok.sum()), (np.flatnonzero(ok), np.searchsorted(labels, decade[ok]))),
                       shape=(len(values), len(labels)))
    return np.array([f"{d}s" for d in labels], dtype=object), (matrix @ to).tocsr()


def attribute_graph(ds: Dataset, level: str = "coarse", *, min_items: int = 5,
                    types: Mapping[str, str] | None = None) -> AttributeGraph:
    """The attribute graph of ``ds`` at ``level`` (``coarse`` or ``fine``), or over the item
    attributes named in ``types`` ({dataset attribute: type name}); values held by fewer than
    ``min_items`` items are pruned."""
    if types is None:
        if level not in LEVELS:
            raise DataError(f"no attribute level {level!r}", expected="coarse or fine")
        types = LEVELS[level]
    present = {k: v for k, v in types.items() if k in ds.item_attributes}
    if not present:
        raise DataError(f"{ds.name} has none of the item attributes {', '.join(types)}",
                        expected="item side information (e.g. genres) or knowledge-graph relations")
    type_names = tuple(dict.fromkeys(present.values()))
    blocks, names, kinds, sources, steps = [], [], [], [], []
    for attr, kind in present.items():
        a = ds.item_attributes[attr]
        values, matrix = np.asarray(a.values, dtype=object), a.matrix.tocsr()
        if kind == "decade":
            values, matrix = _decades(values, matrix)
        matrix = (matrix > 0).astype(np.float32).tocsr()
        held = np.asarray(matrix.sum(0)).ravel()
        keep = held >= min_items
        steps.append(Step(f"{kind} values pruned", int((~keep).sum()),
                          f"{attr}: held by fewer than {min_items} items; {int(keep.sum())} kept"))
        blocks.append(matrix[:, np.flatnonzero(keep)])
        kept = values[keep]
        names += [FREEBASE_NAMES.get(str(v), str(v)) for v in kept]
        kinds += [type_names.index(kind)] * len(kept)
        sources += [f"{attr}={v}" for v in kept]
    items = sp.hstack(blocks).tocsr().astype(bool)
    return AttributeGraph(items, np.array(names, dtype=object), np.array(kinds, dtype=np.int64), type_names,
                          np.array(sources, dtype=object), tuple(steps))
