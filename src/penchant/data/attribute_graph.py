"""The item–attribute graph a conversational recommender asks about.

Items link to typed attribute values taken from the dataset's item side files and
knowledge-graph relations. Two ways to choose them:

* **Named columns** (``attributes=["brand", "category", "price"]``): each named item column is one
  attribute type, called by the column's name. A categorical or multi-valued column gives one
  value per distinct token; a number column (a ``float`` column of a RecBole ``.item`` file, read
  by :func:`item_numbers`) is cut into at most four bands at its quartiles, rounded to a step that
  suits its range (``price: 40 to under 60``), because a question about one exact price singles out
  an item or two and no shopper answers it.
* **MovieLens levels** (the default), after the field's LastFM / LastFM* settings: ``coarse``
  (genres, decades, countries, languages: a few dozen values) and ``fine`` (adding
  knowledge-graph actors, directors, writers and producers: over a thousand on MovieLens-100K).

Pruning rule: a value held by fewer than ``min_items`` items is dropped (it can single out at most
a handful of items and makes a question nobody can use); what was dropped is counted in ``steps``.

Wording comes from the data: a question names the attribute type (``Do you want brand: Nike?``,
``Which brand do you want? Nike, Adidas``); genre, country and language questions use the
catalogue's noun when it has one (``Do you want a Drama film?``), and the noun is ``film`` only
for MovieLens-like data (knowledge-graph film relations, or a data set named ``ml-…``/``movielens``)
or when the caller names it. Knowledge-graph values are Freebase ids (``m.09c7w0``); the data
carries no names for them, so questions name a handful of well-known countries and languages and
otherwise show the id.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from penchant.data.dataset import Dataset, Step
from penchant.errors import DataError

#: item attribute (as the readers name it) → attribute type, per level (MovieLens)
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

#: questions that read the same whatever the catalogue holds
_QUESTIONS = {"decade": "Something from the {value}?", "actor": "With actor {value}?",
              "director": "Directed by {value}?", "writer": "Written by {value}?", "producer": "Produced by {value}?",
              "category": "Something in the {value} category?"}
#: questions that name what the catalogue holds (used when it has a noun other than "item")
_NOUN_QUESTIONS = {"genre": "Do you want {a_value} {noun}?", "country": "{A_noun} from {value}?",
                   "language": "{A_noun} in {value}?"}
_FREEBASE_ID = re.compile(r"m\.[0-9a-z_]+")
#: the most bands a number column is cut into
NUMBER_BANDS = 4


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


@dataclass(frozen=True)
class AttributeGraph:
    """Items × attribute values.

    Attributes:
        items: CSR bool (n_items, V): item i has value v.
        names: (V,) display names; ``types``: int64 (V,) index into ``type_names``.
        type_names: the attribute types, e.g. ``("genre", "decade", ...)`` or ``("brand", "category")``.
        source: (V,) the dataset attribute and raw value each came from.
        steps: what was pruned.
        noun: what the catalogue holds, singular (``film``, ``product``); ``item`` when unnamed.
    """

    items: sp.csr_matrix
    names: np.ndarray
    types: np.ndarray
    type_names: tuple[str, ...]
    source: np.ndarray
    steps: tuple[Step, ...] = ()
    noun: str = "item"

    @property
    def n_values(self) -> int:
        return self.items.shape[1]

    @property
    def n_items(self) -> int:
        return self.items.shape[0]

    def item_values(self, item: int) -> np.ndarray:
        """The values item ``item`` has, int64."""
        return self.items.indices[self.items.indptr[item]:self.items.indptr[item + 1]].astype(np.int64)

    def type_label(self, kind: int | str) -> str:
        """An attribute type in words (a column's underscores read as spaces)."""
        return (self.type_names[kind] if isinstance(kind, (int, np.integer)) else kind).replace("_", " ")

    def question(self, value: int) -> str:
        """The question that asks about one value, in words."""
        kind, name = self.type_names[self.types[value]], str(self.names[value])
        if kind in _NOUN_QUESTIONS and self.noun != "item":
            return _NOUN_QUESTIONS[kind].format(a_value=_a(name), noun=self.noun, A_noun=_a(self.noun).capitalize(),
                                                value=name)
        if kind in _QUESTIONS:
            return _QUESTIONS[kind].format(value=name)
        return f"Do you want {self.type_label(kind)}: {name}?"

    def choices(self, values: Sequence[int]) -> str:
        """The question that offers several values of one type (the multi-choice variant)."""
        kind = self.type_label(int(self.types[values[0]]))
        verb = "would you like" if self.noun != "item" else "do you want"
        return f"Which {kind} {verb}? " + ", ".join(str(self.names[v]) for v in values)

    def label(self, value: int) -> str:
        return f"{self.type_names[self.types[value]]}: {self.names[value]}"

    def find(self, text: str) -> int | None:
        """The value a person named: ``type: value``, ``type=value`` (the source) or the bare value
        (the first of its name), any case; None when there is none."""
        wanted = text.strip().lower()
        for v in range(self.n_values):
            if wanted in (self.label(v).lower(), str(self.source[v]).lower()):
                return v
        for v in range(self.n_values):
            if str(self.names[v]).lower() == wanted:
                return v
        return None

    def nameable_types(self) -> tuple[str, ...]:
        """The types a person can name a value of (not only raw knowledge-graph ids)."""
        kinds = {int(self.types[v]) for v in range(self.n_values) if not _FREEBASE_ID.fullmatch(str(self.names[v]))}
        return tuple(k for i, k in enumerate(self.type_names) if i in kinds)

    def subset(self, type_names: Sequence[str]) -> AttributeGraph:
        """The graph over the values of ``type_names`` only, in this graph's order."""
        unknown = [t for t in type_names if t not in self.type_names]
        if unknown:
            raise DataError(f"no attribute {', '.join(map(repr, unknown))} to ask about",
                            expected=f"one of {', '.join(self.type_names)}")
        kinds = [self.type_names.index(t) for t in type_names]
        keep = np.flatnonzero(np.isin(self.types, kinds))
        kept_names = tuple(t for t in self.type_names if t in type_names)
        remap = np.array([kept_names.index(t) if t in kept_names else -1 for t in self.type_names], dtype=np.int64)
        return AttributeGraph(self.items[:, keep].tocsr(), self.names[keep], remap[self.types[keep]], kept_names,
                              self.source[keep], self.steps, self.noun)

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


def number_bands(x: np.ndarray, bands: int = NUMBER_BANDS) -> tuple[np.ndarray, np.ndarray]:
    """Cut numbers into at most ``bands`` bands at their quantiles (quartiles for 4), each edge
    rounded to the power of ten at or below range / ``bands`` (10 for prices from 20 to 110), so
    edges read as people say them; edges that round together merge.

    Args:
        x: float (n,), NaN where an item has no value.
    Returns:
        labels: (B,) ``under 40``, ``40 to under 60``, …, ``90 and over`` (a single band reads
        ``20 to 110``); band: int64 (n,) each number's band, −1 for NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    band = np.full(len(x), -1, dtype=np.int64)
    if not ok.any():
        return np.array([], dtype=object), band
    lo, hi = float(x[ok].min()), float(x[ok].max())
    edges = np.zeros(0)
    if hi > lo:
        step = 10.0 ** math.floor(math.log10((hi - lo) / bands))
        cuts = np.quantile(x[ok], np.arange(1, bands) / bands)
        edges = np.unique(np.round(cuts / step) * step)
        edges = edges[(edges > lo) & (edges <= hi)]
    band[ok] = np.searchsorted(edges, x[ok], side="right")

    def fmt(e: float) -> str:
        return f"{float(e):.10g}"

    if not len(edges):
        return np.array([f"{fmt(lo)} to {fmt(hi)}" if hi > lo else fmt(lo)], dtype=object), band
    labels = ([f"under {fmt(edges[0])}"] + [f"{fmt(a)} to under {fmt(b)}" for a, b in itertools.pairwise(edges)]
              + [f"{fmt(edges[-1])} and over"])
    return np.array(labels, dtype=object), band


def item_numbers(path: str | Path, ds: Dataset) -> dict[str, np.ndarray]:
    """The number (``float``) columns of the RecBole ``.item`` file beside ``path`` (a folder or
    ``.inter`` file), float64 (n_items,) each in ``ds``'s item order, NaN where an item has none;
    empty when there is no such file. (The readers keep categorical columns only.)"""
    from penchant.data.load import side_file_paths
    from penchant.data.readers import read_atomic

    found = [p for p in side_file_paths(path) if p.suffix == ".item"]
    if not found:
        return {}
    table, kinds = read_atomic(found[0], required=("item_id",))
    ids = table.strings("item_id").to_numpy().astype(str)
    order = {str(i): k for k, i in enumerate(ds.item_ids)}
    rows = np.array([order.get(i, -1) for i in ids], dtype=np.int64)
    out = {}
    for name, kind in kinds.items():
        if kind == "float" and name != "item_id":
            column = np.full(ds.n_items, np.nan)
            values = table.floats(name, allow_empty=True)
            column[rows[rows >= 0]] = values[rows >= 0]
            out[name] = column
    return out


def usable_columns(ds: Dataset, numbers: Mapping[str, np.ndarray] | None = None) -> str:
    """The item columns a conversation can ask about, in words: ``brand, category, price (number)``."""
    names = [a for a in ds.item_attributes] + [f"{n} (number)" for n in (numbers or {}) if n not in ds.item_attributes]
    return ", ".join(names) if names else "none"


def looks_like_films(ds: Dataset) -> bool:
    """MovieLens-like data: knowledge-graph film relations, or a data set named ``ml-…`` / ``…movielens…``."""
    name = str(ds.name).lower()
    return any(a.startswith("kg:film.") for a in ds.item_attributes) or name.startswith("ml-") or "movielens" in name


def attribute_graph(ds: Dataset, level: str = "coarse", *, min_items: int = 5,
                    types: Mapping[str, str] | None = None, attributes: Sequence[str] | None = None,
                    numbers: Mapping[str, np.ndarray] | None = None, noun: str | None = None) -> AttributeGraph:
    """The attribute graph of ``ds``.

    Args:
        level: ``coarse`` or ``fine`` (MovieLens's attributes; used when neither ``attributes`` nor
            ``types`` is given).
        types: {dataset attribute: type name}, for a mapping of one's own.
        attributes: item column names, each its own type (categorical, multi-valued, or a number
            column of ``numbers``, banded by :func:`number_bands`); a name ``ds`` lacks is a DataError
            listing the columns it has.
        numbers: number columns, float (n_items,) each (see :func:`item_numbers`).
        min_items: values held by fewer items are pruned.
        noun: what the catalogue holds; default ``film`` on film data (:func:`looks_like_films`),
            else ``item``.
    """
    numbers = dict(numbers or {})
    if attributes is not None:
        names = list(dict.fromkeys(a.strip() for a in attributes if a.strip()))
        unknown = [a for a in names if a not in ds.item_attributes and a not in numbers]
        if unknown or not names:
            what = f"has no item column {', '.join(map(repr, unknown))}" if unknown else "was given no item column"
            raise DataError(f"{ds.name} {what} to ask about; its item columns: {usable_columns(ds, numbers)}",
                            expected="--attributes NAME[,NAME...] naming categorical, multi-valued or number columns")
        types = {a: a for a in names}
    elif types is None:
        if level not in LEVELS:
            raise DataError(f"no attribute level {level!r}", expected="coarse or fine")
        types = LEVELS[level]
        if not any(k in ds.item_attributes for k in types):
            raise DataError(f"{ds.name} has none of MovieLens's item attributes ({', '.join(types)}); name the item "
                            f"columns to ask about with --attributes NAME[,NAME...] (its item columns: "
                            f"{usable_columns(ds, numbers)})")
    if noun is None and looks_like_films(ds):
        noun = "film"
    present = {k: v for k, v in types.items() if k in ds.item_attributes or k in numbers}
    if not present:
        raise DataError(f"{ds.name} has none of the item attributes {', '.join(types)}",
                        expected="item side information (e.g. genres) or knowledge-graph relations")
    type_names = tuple(dict.fromkeys(present.values()))
    blocks, names, kinds, sources, steps = [], [], [], [], []
    for attr, kind in present.items():
        if attr in ds.item_attributes:
            a = ds.item_attributes[attr]
            values, matrix = np.asarray(a.values, dtype=object), a.matrix.tocsr()
            if kind == "decade" and attr != "decade":  # years → decades (a column already of decades stays)
                values, matrix = _decades(values, matrix)
        else:
            values, band = number_bands(numbers[attr])
            has = band >= 0
            matrix = sp.csr_matrix((np.ones(int(has.sum())), (np.flatnonzero(has), band[has])),
                                   shape=(ds.n_items, len(values)))
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
    if not names:
        raise DataError(f"{ds.name}: no value of {', '.join(present)} is held by {min_items} or more items, so there "
                        "is nothing to ask about", expected="columns whose values items share")
    items = sp.hstack(blocks).tocsr().astype(bool)
    return AttributeGraph(items, np.array(names, dtype=object), np.array(kinds, dtype=np.int64), type_names,
                          np.array(sources, dtype=object), tuple(steps), noun or "item")
