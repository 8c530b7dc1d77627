"""Click-through data for the ranking stage: one row per impression, with its label and features.

A :class:`CTRData` row says whether user ``u`` clicked item ``i`` (``label`` 1) or not (0), with the
row's categorical features as global feature ids (``codes``, one per *slot*), its numeric features
(``dense``), the user's earlier positive items (``history``) and the list it belongs to (``group``,
for group AUC and LambdaRank).

Feature ids: every field ``f`` owns the ids ``offsets[f] .. offsets[f + 1] - 1``: one per known value,
then one out-of-vocabulary id (``oov``) for a value unseen when the vocabulary was built or missing.
``n_features`` (one past the last id) is the padding id of the unused slots of a multi-valued field
(genres): models embed it as a zero vector. The ``user`` and ``item`` fields' values are the
external user and item ids in index order, so item index ``i`` is feature ``offsets[item] + i``
(:meth:`FeatureVocabulary.item_features` maps histories that way).

Builders:

- :func:`ctr_from_log`: a rated log made a CTR task the RecBole way (label = rating >= 4, every rated
  row an impression), with fields from the user and item feature files (or the log's own side
  information) and the time of day and week of each row.
- :func:`ctr_parts`: the same for a train/valid/test triple over one vocabulary (one history).
- :func:`synthetic_ctr`: a world with a known click probability per row, in which a pairwise
  feature interaction and the user's history matter.

Feature files (:func:`read_features`): a RecBole atomic file (``name:type`` header: ``token`` one
value, ``token_seq`` several space-separated values, ``float`` a number) or any table penchant
reads (CSV/TSV/Parquet/JSON lines), whose columns are single categorical values unless named in
``numeric`` or ``multi``. A non-number in a numeric column, a missing column or a repeated id is a
:class:`~penchant.errors.DataError` naming the file, line and column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from penchant.data.dataset import Dataset, Step
from penchant.errors import ConfigError, DataError

#: ML-100K-like columns read as bands or renamed (RecBole's ml-100k names and GroupLens's)
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
DERIVED_NAMES = {"age": "age_band", "zip_code": "zip_prefix", "zip": "zip_prefix",
                 "release_year": "year_band", "year": "year_band", "class": "genres", "genre": "genres"}
#: characters of a zip code kept as its prefix (two: regions of ~10 states; 943 users spread thin otherwise)
ZIP_PREFIX = 2
HOURS = tuple(str(h) for h in range(24))
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SOURCES = ("user", "item", "context")


# ----- the vocabulary ------------------------------------------------------------------------------
@dataclass(eq=False)
class FeatureVocabulary:
    """Raw value -> global feature id, per field; encodes new rows at serving time.

    Attributes:
        fields: field names, index = field id.
        values: per field, its known raw values (str arrays); value ``j`` of field ``f`` is feature
            ``offsets[f] + j``; feature ``offsets[f + 1] - 1`` is the field's OOV id.
        slots: per field, how many slots it fills in a row (1, or the most values a multi-valued
            field had when built; more are cut).
        sources: per field, where its raw value comes from: ``user``, ``item`` or ``context``.
        dense_names: names of the numeric features; dense_mean, dense_std: float64 (D,) their
            standardisation (value - mean) / std; a missing number is 0 after it.
        unseen: per field, how many values :meth:`encode` met that the vocabulary lacks (mapped to OOV).
    """

    fields: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    slots: tuple[int, ...]
    sources: tuple[str, ...]
    dense_names: tuple[str, ...] = ()
    dense_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dense_std: np.ndarray = field(default_factory=lambda: np.ones(0))
    unseen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.fields) == len(self.values) == len(self.slots) == len(self.sources)):
            raise ValueError("fields, values, slots and sources need one entry per field")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f"field names repeat: {self.fields}")
        self.values = tuple(np.asarray(v).astype(str) for v in self.values)

    @cached_property
    def offsets(self) -> np.ndarray:
        """int64 (F + 1,): field f's ids are offsets[f] .. offsets[f + 1] - 1 (the last one its OOV)."""
        return np.concatenate([[0], np.cumsum([len(v) + 1 for v in self.values])]).astype(np.int64)

    @property
    def n_features(self) -> int:
        """Number of feature ids; also the padding id."""
        return int(self.offsets[-1])

    @cached_property
    def slot_field(self) -> np.ndarray:
        """int64 (S,): the field of each slot of a row's ``codes``."""
        return np.repeat(np.arange(len(self.fields)), self.slots).astype(np.int64)

    @cached_property
    def slot_start(self) -> dict[str, int]:
        """The first slot of each field."""
        starts = np.concatenate([[0], np.cumsum(self.slots)])
        return {f: int(starts[k]) for k, f in enumerate(self.fields)}

    def index(self, name: str) -> int:
        if name not in self.fields:
            raise ConfigError(f"no feature field {name!r}; fields: {', '.join(self.fields)}")
        return self.fields.index(name)

    def oov(self, name: str) -> int:
        """The OOV id of field ``name`` (unseen or missing values)."""
        return int(self.offsets[self.index(name) + 1] - 1)

    def item_features(self, items: np.ndarray, n_items: int) -> np.ndarray:
        """Feature ids (int64, same shape) of item indices; ``n_items`` (padding) -> ``n_features``."""
        items = np.asarray(items, dtype=np.int64)
        ids = self.offsets[self.index("item")] + items
        return np.where(items >= n_items, self.n_features, ids)

    @cached_property
    def _sorted(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        out = []
        for v in self.values:
            order = np.argsort(v, kind="stable")
            out.append((v[order], order))
        return tuple(out)

    def lookup(self, name: str, raw: np.ndarray) -> np.ndarray:
        """Feature ids (int64, raw's shape) of raw values of field ``name``; ``""`` (missing) and
        unseen values -> the field's OOV id. Unseen (non-empty) values are counted in ``unseen``."""
        f = self.index(name)
        raw = np.asarray(raw).astype(str)
        known, order = self._sorted[f]
        if len(known) == 0:
            found = np.zeros(raw.shape, dtype=bool)
            pos = np.zeros(raw.shape, dtype=np.int64)
        else:
            where = np.clip(np.searchsorted(known, raw), 0, len(known) - 1)
            found = known[where] == raw
            pos = order[where]
        unseen = int((~found & (raw != "") & (raw != _PAD)).sum())
        if unseen:
            self.unseen[name] = self.unseen.get(name, 0) + unseen
        return np.where(found, self.offsets[f] + pos, self.offsets[f + 1] - 1).astype(np.int64)

    def encode_field(self, name: str, raw: Sequence[Any]) -> np.ndarray:
        """int64 (m, slots of the field): one row per entity or request; ``raw`` holds a value per
        row (str), or for a multi-valued field a list of values or one space-separated string.
        Unused slots get the padding id; values past the field's slots are cut."""
        f = self.index(name)
        width = self.slots[f]
        table = _padded(raw, width)
        codes = self.lookup(name, table)
        return np.where(table == _PAD, self.n_features, codes)

    def encode(self, columns: Mapping[str, Sequence[Any]], *, source: str = "request") -> tuple[np.ndarray, np.ndarray]:
        """Rows of raw features by field name (every field, and every dense name) -> ``codes``
        int64 (m, S) and ``dense`` float32 (m, D). A missing field is a DataError naming it (and
        ``source``, e.g. the request); unseen values map to OOV and are counted in ``unseen``."""
        needed = list(self.fields) + list(self.dense_names)
        for name in needed:
            if name not in columns:
                raise DataError(f"missing feature {name!r} (fields needed: {', '.join(needed)})", file=source,
                                column=name, expected="a value for every feature field")
        lengths = {len(columns[name]) for name in needed}
        if len(lengths) > 1:
            raise DataError(f"feature columns of different lengths {sorted(lengths)}", file=source)
        m = lengths.pop() if lengths else 0
        codes = np.concatenate([self.encode_field(name, columns[name]) for name in self.fields], axis=1) \
            if self.fields else np.zeros((m, 0), dtype=np.int64)
        dense = np.zeros((m, len(self.dense_names)), dtype=np.float32)
        for d, name in enumerate(self.dense_names):
            try:
                x = np.asarray(columns[name], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"feature {name!r} is numeric; got a value that is not a number", file=source,
                                column=name, expected="numbers") from None
            dense[:, d] = self.standardise(x, d)
        return codes, dense

    def standardise(self, x: np.ndarray, d: int) -> np.ndarray:
        """(x - mean) / std of dense feature ``d``; NaN (missing) -> 0."""
        z = (np.asarray(x, dtype=np.float64) - self.dense_mean[d]) / self.dense_std[d]
        return np.nan_to_num(z, nan=0.0)

    # ----- persistence (inside a model's artefact) -----------------------------------------------
    def to_artefact(self) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
        """(vocab, extra, arrays) for :class:`~penchant.models.artefact.Artefact`: the value lists as
        vocabularies ``field:<k>``, the layout as JSON, the dense statistics as arrays."""
        vocab = {f"field:{k}": v for k, v in enumerate(self.values)}
        extra = {"fields": list(self.fields), "slots": list(self.slots), "sources": list(self.sources),
                 "dense_names": list(self.dense_names)}
        arrays = {"dense_mean": np.asarray(self.dense_mean, np.float64), "dense_std": np.asarray(self.dense_std, np.float64)}
        return vocab, {"features": extra}, arrays

    @classmethod
    def from_artefact(cls, vocab: Mapping[str, np.ndarray], extra: Mapping[str, Any],
                      arrays: Mapping[str, np.ndarray]) -> FeatureVocabulary:
        spec = extra["features"]
        return cls(tuple(spec["fields"]), tuple(np.asarray(vocab[f"field:{k}"]) for k in range(len(spec["fields"]))),
                   tuple(int(s) for s in spec["slots"]), tuple(spec["sources"]), tuple(spec["dense_names"]),
                   np.array(arrays["dense_mean"], dtype=np.float64), np.array(arrays["dense_std"], dtype=np.float64))

    def describe(self) -> str:
        """One line: the fields with their sizes (and slots where several)."""
        return ", ".join(f"{f} {len(v):,}" + (f"×{s}" if s > 1 else "")
                         for f, v, s in zip(self.fields, self.values, self.slots)) + \
            (f"; numeric {', '.join(self.dense_names)}" if self.dense_names else "")


_PAD = "\x00pad"


def _padded(raw: Sequence[Any], width: int) -> np.ndarray:
    """(m, width) str array of raw values; lists (or space-separated strings) spread over the
    slots, the rest ``_PAD``. A loop over rows: called on entity tables and requests, not logs."""
    if width == 1:
        flat = [(" ".join(map(str, v)) if isinstance(v, (list, tuple)) and len(v) <= 1 else v) for v in raw]
        flat = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in flat]
        if any(isinstance(v, (list, tuple)) for v in flat):
            raise DataError("a single-valued feature got several values", expected="one value")
        arr = np.asarray([str(v) for v in flat], dtype=object).astype(str).reshape(-1, 1)
        return arr
    out = np.full((len(raw), width), _PAD, dtype=object)
    for r, v in enumerate(raw):
        items = v.split() if isinstance(v, str) else [str(x) for x in (v or ())]
        items = items[:width]
        out[r, :len(items)] = items
    return out.astype(str)


# ----- the data ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CTRData:
    """Impressions with labels and features (see the module for the feature ids).

    Attributes:
        label: float32 (n,) 1 = click (positive), 0 = no click.
        user, item: int64 (n,) indices into ``user_ids`` / ``item_ids``.
        codes: int64 (n, S) global feature ids, one per slot; padding = ``n_features``.
        slot_field: int64 (S,) the field of each slot.
        fields: field names (index = field id).
        n_features: number of feature ids (= the padding id).
        dense: float32 (n, D) standardised numeric features (D may be 0); dense_names: their names.
        history: int64 (n, L) the user's positive items before this row (strictly earlier in time,
            in time order), right-aligned, padded with ``n_items``; None without timestamps.
        group: int64 (n,) the list a row belongs to (the user here), for GAUC and LambdaRank.
        vocabulary: the :class:`FeatureVocabulary` that made ``codes``.
        user_ids, item_ids: external ids (str arrays), position = index.
        timestamps: float64 (n,) unix seconds, or None.
        name: a label for reports; steps: what building counted (missing side information).
    """

    label: np.ndarray
    user: np.ndarray
    item: np.ndarray
    codes: np.ndarray
    slot_field: np.ndarray
    fields: tuple[str, ...]
    n_features: int
    dense: np.ndarray
    dense_names: tuple[str, ...]
    history: np.ndarray | None
    group: np.ndarray
    vocabulary: FeatureVocabulary
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    name: str = "ctr"
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.label)
        for what, arr in (("user", self.user), ("item", self.item), ("codes", self.codes), ("dense", self.dense),
                          ("group", self.group), ("history", self.history), ("timestamps", self.timestamps)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{what} has {len(arr)} rows, label {n}")
        if self.codes.shape[1] != len(self.slot_field) or self.dense.shape[1] != len(self.dense_names):
            raise ValueError("codes/dense columns do not match slot_field/dense_names")

    @property
    def n(self) -> int:
        """Number of rows (impressions)."""
        return len(self.label)

    @property
    def n_interactions(self) -> int:
        return self.n

    def __len__(self) -> int:
        return self.n

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_groups(self) -> int:
        return len(np.unique(self.group))

    def history_features(self) -> np.ndarray | None:
        """``history`` as item-field feature ids (int64 (n, L)), padding = ``n_features``."""
        return None if self.history is None else self.vocabulary.item_features(self.history, self.n_items)

    def subset(self, rows: np.ndarray, name: str | None = None) -> CTRData:
        """The rows ``rows`` (indices or a boolean mask), over the same vocabulary."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        take = lambda a: None if a is None else a[rows]
        return replace(self, label=self.label[rows], user=self.user[rows], item=self.item[rows],
                       codes=self.codes[rows], dense=self.dense[rows], history=take(self.history),
                       group=self.group[rows], timestamps=take(self.timestamps), name=name or self.name)

    def summary(self) -> dict[str, Any]:
        return {"rows": self.n, "positive_rate": round(float(self.label.mean()), 5) if self.n else None,
                "users": len(np.unique(self.user)), "items": len(np.unique(self.item)),
                "fields": list(self.fields), "slots": int(self.codes.shape[1]), "features": self.n_features,
                "dense": list(self.dense_names), "history": None if self.history is None else int(self.history.shape[1])}

    def describe(self) -> str:
        return (f"{self.n:,} rows ({self.label.mean():.1%} positive), {len(self.fields)} fields "
                f"({self.codes.shape[1]} slots, {self.n_features:,} feature ids)")


def random_rows(data: CTRData, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = 0) -> list[CTRData]:
    """``data`` split at random by row (every row independently of its user and time, as RecBole's
    ``RS`` split with ``group_by: none``), into parts of the given fractions (summing to 1)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    if (ratios < 0).any() or abs(ratios.sum() - 1) > 1e-6:
        raise ConfigError(f"split fractions must be non-negative and sum to 1, not {list(ratios)}")
    order = np.random.default_rng(seed).permutation(data.n)
    cuts = np.round(np.cumsum(ratios)[:-1] * data.n).astype(int)
    names = ("train", "valid", "test") if len(ratios) == 3 else tuple(f"part{k}" for k in range(len(ratios)))
    return [data.subset(np.sort(rows), names[k]) for k, rows in enumerate(np.split(order, cuts))]


# ----- feature files -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureTable:
    """A feature file read: one row per id.

    Attributes:
        path: the file.
        ids: (m,) external ids (str).
        categorical: column -> per row, its values (one for a single-valued column, [] when blank).
        multi: the names of the multi-valued columns.
        numeric: column -> float64 (m,) (NaN when blank).
    """

    path: Path
    ids: np.ndarray
    categorical: dict[str, list[list[str]]]
    multi: tuple[str, ...]
    numeric: dict[str, np.ndarray]


def read_features(path: str | Path, id_col: str, *, numeric: Sequence[str] = (), multi: Sequence[str] = (),
                  bands: bool = True) -> FeatureTable:
    """A user or item feature file (see the module for the formats). With ``bands``, ML-100K's
    columns become the fields the ranking stage reads: ``age`` -> ``age_band`` (ML-1M's bands; a
    non-number is an error naming line and column), ``zip_code`` -> ``zip_prefix`` (first two
    characters), ``release_year`` -> ``year_band`` (decade; a non-year such as ML-100K's
    ``unkonwn`` is missing, i.e. OOV), ``class`` -> ``genres``."""
    from penchant.data.readers import is_atomic, read_atomic, read_table

    path = Path(path)
    if not path.is_file():
        raise DataError("no such feature file", file=path, expected="a user or item feature file")
    numeric, multi = tuple(numeric), tuple(multi)
    if is_atomic(path):
        table, types = read_atomic(path, required=(id_col,))
        if numeric or multi:
            raise ConfigError(f"{path}: an atomic file's header types its columns; numeric/multi are for other tables")
        numeric = tuple(c for c, t in types.items() if t == "float" and c != id_col)
        multi = tuple(c for c, t in types.items() if t == "token_seq")
        skipped = tuple(c for c, t in types.items() if t == "float_seq" or (t == "token_seq" and _is_text(c)))
    else:
        table = read_table(path, required=(id_col,))
        table.require(*numeric, *multi)
        skipped = ()
    ids = table.ids(id_col)
    dup = ids.is_duplicated()
    if dup.any():
        row = int(dup.arg_true()[1])
        raise table.error(f"id {ids[row]!r} appears more than once", row=row, column=id_col, expected="one row per id")
    categorical: dict[str, list[list[str]]] = {}
    numbers: dict[str, np.ndarray] = {}
    multi_out = []
    for col in table.frame.columns:
        if col == id_col or col in skipped:
            continue
        if col in numeric:
            numbers[col] = table.floats(col, allow_empty=True)
            if not bands or col not in ("age", "release_year", "year"):
                continue
        name = DERIVED_NAMES.get(col, col) if bands else col
        values = table.frame[col].cast(str).fill_null("").str.strip_chars()
        if bands and col == "age":
            ages = table.floats(col, allow_empty=True)
            band = np.searchsorted(np.asarray(AGE_EDGES), ages, side="right")
            categorical[name] = [[AGE_BANDS[b]] if np.isfinite(a) else [] for a, b in zip(ages, band)]
        elif bands and col in ("release_year", "year"):
            years = values.cast(float, strict=False).to_numpy()
            categorical[name] = [[f"{int(y) // 10 * 10}s"] if np.isfinite(y) else [] for y in years]
        elif bands and col in ("zip_code", "zip"):
            categorical[name] = [[v[:ZIP_PREFIX]] if v else [] for v in values.to_list()]
        elif col in multi:
            categorical[name] = [v.split() for v in values.to_list()]
            multi_out.append(name)
        else:
            categorical[name] = [[v] if v else [] for v in values.to_list()]
    return FeatureTable(path, ids.to_numpy().astype(str), categorical, tuple(multi_out), numbers)


def _is_text(column: str) -> bool:
    return "title" in column.lower() or "name" in column.lower()


# ----- builders ------------------------------------------------------------------------------------
def _label(log: Dataset, rule: str) -> np.ndarray:
    """float32 (n,) labels from ``rating>=T`` / ``rating>T``."""
    text = rule.replace(" ", "")
    for op in (">=", ">"):
        if text.startswith("rating" + op):
            try:
                threshold = float(text[len("rating" + op):])
            except ValueError:
                break
            if log.ratings is None:
                raise DataError(f"{log.name} has no ratings to label clicks by ({rule})", expected="a rating column")
            r = log.ratings.astype(np.float64)
            return ((r >= threshold) if op == ">=" else (r > threshold)).astype(np.float32)
    raise ConfigError(f"label rule {rule!r} not understood; write rating>=T or rating>T (e.g. rating>=4)")


def _side_values(ids: np.ndarray, table: FeatureTable | None, attributes: Mapping[str, Any],
                 what: str) -> tuple[dict[str, list[list[str]]], tuple[str, ...], dict[str, np.ndarray], list[Step]]:
    """Per field, each entity's values (aligned with ``ids``), the multi-valued fields, the numeric
    columns (float64 (m,), NaN unknown) and a step counting entities the file does not list."""
    n = len(ids)
    if table is None:  # the log's own categorical side information (knowledge-graph attributes left out)
        cats, multi = {}, []
        for name, attr in attributes.items():
            if name.startswith("kg:"):
                continue
            field_name = DERIVED_NAMES.get(name, name)
            rows = [attr.of(i) for i in range(n)]
            if name == "age":
                ages = np.array([float(r[0]) if r and _number(r[0]) else np.nan for r in rows])
                if any(r and not _number(r[0]) for r in rows):
                    bad = next(r[0] for r in rows if r and not _number(r[0]))
                    raise DataError(f"{what} attribute 'age' has the non-number {bad!r}", column="age", expected="a number")
                band = np.searchsorted(np.asarray(AGE_EDGES), ages, side="right")
                rows = [[AGE_BANDS[b]] if np.isfinite(a) else [] for a, b in zip(ages, band)]
            elif name in ("release_year", "year"):
                rows = [[f"{int(float(r[0])) // 10 * 10}s"] if r and _number(r[0]) else [] for r in rows]
            elif name in ("zip_code", "zip"):
                rows = [[r[0][:ZIP_PREFIX]] if r else [] for r in rows]
            cats[field_name] = rows
            if max((len(r) for r in rows), default=0) > 1:
                multi.append(field_name)
        return cats, tuple(multi), {}, []
    where = {str(v): k for k, v in enumerate(table.ids)}
    pick = np.array([where.get(str(i), -1) for i in ids])
    missing = int((pick < 0).sum())
    cats = {name: [rows[p] if p >= 0 else [] for p in pick] for name, rows in table.categorical.items()}
    nums = {name: np.where(pick >= 0, col[np.maximum(pick, 0)], np.nan) for name, col in table.numeric.items()}
    steps = [Step(f"{what}s without features", missing, f"not in {table.path.name}: their fields are OOV")] if missing else []
    return cats, table.multi, nums, steps


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def ctr_from_log(log: Dataset, user_file: str | Path | FeatureTable | None = None,
                 item_file: str | Path | FeatureTable | None = None, *, label: str = "rating>=4",
                 max_history: int = 50, time_fields: bool = True, user_col: str = "user_id",
                 item_col: str = "item_id", numeric: Sequence[str] = (), multi: Sequence[str] = (),
                 row_dense: Mapping[str, np.ndarray] | None = None, name: str | None = None) -> CTRData:
    """A rated log as a CTR task the RecBole way: every rated row an impression, label by ``label``
    (``rating>=4``), fields ``user``, ``item``, the user file's (ML-100K: ``age_band``, ``gender``,
    ``occupation``, ``zip_prefix``), the item file's (``genres``, multi-valued, ``year_band``) and,
    with timestamps and ``time_fields``, ``hour`` (of day, UTC) and ``weekday``. Without feature
    files, the log's own categorical side information is read (knowledge-graph attributes left
    out). Numeric columns of the files become standardised ``dense`` features. ``history`` holds
    each row's ``max_history`` latest earlier positives of its user (None without timestamps);
    ``group`` is the user. Users or items a file lacks get OOV fields (counted in ``steps``).
    ``row_dense``: numeric features of each row itself (float64 (n,) per name, e.g. a first stage's
    score of the pair), standardised over the rows, after the files' numeric features."""
    y = _label(log, label)
    users_t = _as_table(user_file, user_col, numeric, multi)
    items_t = _as_table(item_file, item_col, numeric, multi)
    ucat, umulti, unum, usteps = _side_values(log.user_ids, users_t, log.user_attributes, "user")
    icat, imulti, inum, isteps = _side_values(log.item_ids, items_t, log.item_attributes, "item")
    clash = (set(ucat) & set(icat)) | ({"user", "item", "hour", "weekday"} & (set(ucat) | set(icat)))
    if clash:
        raise DataError(f"feature field names {sorted(clash)} appear twice (user file, item file, or built-in)")
    context: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    if time_fields and log.timestamps is not None:
        seconds = np.floor(log.timestamps).astype(np.int64)
        context["hour"] = (HOURS, (seconds // 3600) % 24)
        context["weekday"] = (WEEKDAYS, (seconds // 86400 + 3) % 7)  # 1970-01-01 was a Thursday
    return assemble(y, log.users.astype(np.int64), log.items.astype(np.int64), log.user_ids, log.item_ids,
                    user_fields={k: (v, k in umulti) for k, v in ucat.items()},
                    item_fields={k: (v, k in imulti) for k, v in icat.items()},
                    context=context, user_dense=unum, item_dense=inum, row_dense=row_dense, timestamps=log.timestamps,
                    max_history=max_history, name=name or log.name, steps=tuple(log.steps) + tuple(usteps + isteps))


def _as_table(source: str | Path | FeatureTable | None, id_col: str, numeric: Sequence[str],
              multi: Sequence[str]) -> FeatureTable | None:
    if source is None or isinstance(source, FeatureTable):
        return source
    path = Path(source)
    if path.suffix.lower() in (".user", ".item"):
        return read_features(path, id_col)
    return read_features(path, id_col, numeric=[c for c in numeric if c in _header(path)],
                         multi=[c for c in multi if c in _header(path)])


def _header(path: Path) -> list[str]:
    from penchant.data.readers import read_table

    return list(read_table(path).frame.columns)


def ctr_parts(logs: Sequence[Dataset], user_file: str | Path | FeatureTable | None = None,
              item_file: str | Path | FeatureTable | None = None, **options: Any) -> list[CTRData]:
    """Logs over one vocabulary (a train/valid/test triple) as CTR parts over one feature
    vocabulary: built as one log, so that a row's history holds its user's earlier positives
    from every part, then cut back into the parts. ``options`` as :func:`ctr_from_log`."""
    first = logs[0]
    for other in logs[1:]:
        if len(other.user_ids) != len(first.user_ids) or len(other.item_ids) != len(first.item_ids) or \
                (other.user_ids != first.user_ids).any() or (other.item_ids != first.item_ids).any():
            raise DataError(f"{other.name} is not over {first.name}'s vocabulary; read the files together")
    rated = [lg.ratings is not None for lg in logs]
    if not all(rated):
        raise DataError(f"{logs[rated.index(False)].name} has no ratings to label clicks by", expected="a rating column")
    timed = all(lg.timestamps is not None for lg in logs)
    joined = replace(first, users=np.concatenate([lg.users for lg in logs]), items=np.concatenate([lg.items for lg in logs]),
                     ratings=np.concatenate([lg.ratings for lg in logs]),
                     timestamps=np.concatenate([lg.timestamps for lg in logs]) if timed else None)
    whole = ctr_from_log(joined, user_file, item_file, **options)
    cuts = np.cumsum([len(lg) for lg in logs])[:-1]
    return [whole.subset(rows, lg.name) for rows, lg in zip(np.split(np.arange(whole.n), cuts), logs)]


def assemble(label: np.ndarray, user: np.ndarray, item: np.ndarray, user_ids: np.ndarray, item_ids: np.ndarray, *,
             user_fields: Mapping[str, tuple[list[list[str]], bool]], item_fields: Mapping[str, tuple[list[list[str]], bool]],
             context: Mapping[str, tuple[Sequence[str], np.ndarray]], user_dense: Mapping[str, np.ndarray] | None = None,
             item_dense: Mapping[str, np.ndarray] | None = None, row_dense: Mapping[str, np.ndarray] | None = None,
             timestamps: np.ndarray | None = None, max_history: int = 50, name: str = "ctr",
             steps: tuple[Step, ...] = ()) -> CTRData:
    """Rows from per-entity features: ``user_fields[f] = (values per user, multi-valued?)`` (aligned
    with ``user_ids``), likewise for items; ``context[f] = (known values, int (n,) value index per
    row)``; numeric features per entity (float64, NaN unknown), standardised over the entities
    that have them; ``row_dense[f]``: float64 (n,) a numeric feature of each row, standardised over
    the rows. Field order: user, item, user fields, item fields, context fields; numeric order:
    user, item, row."""
    user_dense, item_dense, row_dense = dict(user_dense or {}), dict(item_dense or {}), dict(row_dense or {})
    for fname, col in row_dense.items():
        if len(col) != len(label):
            raise ValueError(f"row feature {fname!r} has {len(col)} values for {len(label)} rows")
    names, values, slots, sources, entity_rows = ["user", "item"], [np.asarray(user_ids).astype(str),
                                                                     np.asarray(item_ids).astype(str)], [1, 1], ["user", "item"], []
    for source, table in (("user", user_fields), ("item", item_fields)):
        for fname, (rows, is_multi) in table.items():
            known = sorted({v for r in rows for v in r})
            names.append(fname)
            values.append(np.asarray(known, dtype=str))
            slots.append(max(1, max((len(r) for r in rows), default=1)) if is_multi else 1)
            sources.append(source)
            entity_rows.append(rows)
    for fname, (known, _) in context.items():
        names.append(fname)
        values.append(np.asarray(known, dtype=str))
        slots.append(1)
        sources.append("context")
    dense_names = tuple(user_dense) + tuple(item_dense) + tuple(row_dense)
    stats = [(np.nanmean(c), np.nanstd(c)) if np.isfinite(c).any() else (0.0, 1.0)
             for c in list(user_dense.values()) + list(item_dense.values()) + list(row_dense.values())]
    mean = np.array([s[0] for s in stats], dtype=np.float64)
    std = np.array([s[1] if s[1] > 0 else 1.0 for s in stats], dtype=np.float64)
    vocab = FeatureVocabulary(tuple(names), tuple(values), tuple(slots), tuple(sources), dense_names, mean, std)
    n_users, n_items = len(user_ids), len(item_ids)
    # entity tables: (n_users, S_user) and (n_items, S_item) codes, then gathered per row
    user_table = [np.arange(n_users)[:, None] + vocab.offsets[0]]
    item_table = [np.arange(n_items)[:, None] + vocab.offsets[1]]
    for fname, rows in zip(names[2:], entity_rows):
        encoded = vocab.encode_field(fname, rows)
        (user_table if sources[names.index(fname)] == "user" else item_table).append(encoded)
    # missing side values are blanks, not unseen values: no unseen counted while building
    vocab.unseen.clear()
    parts = [user_table[0][user], item_table[0][item]]
    parts += [t[user] for t in user_table[1:]] + [t[item] for t in item_table[1:]]
    for fname, (_, index) in context.items():
        f = names.index(fname)
        parts.append((vocab.offsets[f] + np.asarray(index, dtype=np.int64))[:, None])
    codes = np.concatenate(parts, axis=1).astype(np.int64)
    dense_cols = [vocab.standardise(c, d)[user] for d, c in enumerate(user_dense.values())]
    dense_cols += [vocab.standardise(c, len(user_dense) + d)[item] for d, c in enumerate(item_dense.values())]
    dense_cols += [vocab.standardise(c, len(user_dense) + len(item_dense) + d) for d, c in enumerate(row_dense.values())]
    dense = (np.stack(dense_cols, axis=1) if dense_cols else np.zeros((len(label), 0))).astype(np.float32)
    history = None if timestamps is None else user_history(user, item, label, timestamps, n_items, max_history)
    return CTRData(np.asarray(label, dtype=np.float32), user, item, codes, vocab.slot_field, vocab.fields,
                   vocab.n_features, dense, dense_names, history, user.astype(np.int64), vocab,
                   np.asarray(user_ids).astype(str), np.asarray(item_ids).astype(str),
                   None if timestamps is None else np.asarray(timestamps, dtype=np.float64), name, steps)


def user_history(user: np.ndarray, item: np.ndarray, label: np.ndarray, timestamps: np.ndarray, n_items: int,
                 length: int) -> np.ndarray:
    """int64 (n, length): for each row, its user's latest ``length`` positive items strictly
    before the row's time (oldest first), right-aligned, padded with ``n_items``. Rows at the same
    second see none of each other (ML-100K logs many ratings per second). Vectorised."""
    n = len(user)
    if n == 0 or length == 0:
        return np.full((n, length), n_items, dtype=np.int64)
    order = np.lexsort((np.arange(n), timestamps, user))
    u, t, it, pos = user[order], np.asarray(timestamps)[order], item[order], label[order] > 0
    pos_items = it[pos]
    before = np.cumsum(pos) - pos  # positives (of anyone, in this order) before each sorted row
    user_start = np.r_[True, u[1:] != u[:-1]]
    run_start = user_start | np.r_[True, t[1:] != t[:-1]]
    strict = np.maximum.accumulate(np.where(run_start, before, 0))  # count at the start of the row's second
    first = np.maximum.accumulate(np.where(user_start, before, 0))  # count at the start of the user's rows
    idx = strict[:, None] - length + np.arange(length)[None, :]
    valid = idx >= first[:, None]
    hist = np.where(valid, pos_items[np.clip(idx, 0, max(len(pos_items) - 1, 0))] if len(pos_items) else n_items, n_items)
    out = np.empty((n, length), dtype=np.int64)
    out[order] = hist
    return out


def synthetic_ctr(n_users: int = 400, n_items: int = 200, rows_per_user: int = 50, *, interaction: float = 1.5,
                  history_weight: float = 1.0, dims: int = 4, seed: int = 0) -> tuple[CTRData, np.ndarray]:
    """A CTR world with a known click probability per row; returns the data and p (float64 (n,)).

    Fields: ``user``, ``item``, ``segment`` (user, 6 values), ``category`` (item, 8), ``tags`` (item,
    1-3 of 12: multi-valued), ``position`` (context, 5) and ``device`` (context, 3); numeric
    ``activity`` (user) and ``price`` (item). The click logit is

        -1 + b_user + b_item + a[segment] + c[category] + Σ t[tags] + q[position] + d[device]
           + 0.3·activity - 0.4·price
           + interaction · <U[segment], V[category]> / √dims       (the planted pairwise term)
           + history_weight · (share of the user's earlier clicks in the item's category - 1/8)

    so a model of one weight per feature (LR) cannot reach it and a pairwise model (FM) can, save
    the history term, which needs the user's sequence. Each user sees ``rows_per_user`` items one at
    a time (one hour apart), clicks drawn from p; ``history`` holds every earlier click (length
    ``rows_per_user``)."""
    rng = np.random.default_rng(seed)
    n_seg, n_cat, n_tag, n_pos, n_dev = 6, 8, 12, 5, 3
    segment = rng.integers(n_seg, size=n_users)
    category = rng.integers(n_cat, size=n_items)
    n_tags = rng.integers(1, 4, size=n_items)
    tags = [sorted(rng.choice(n_tag, size=k, replace=False).tolist()) for k in n_tags]
    tag_matrix = np.zeros((n_items, n_tag))
    for i, ts in enumerate(tags):
        tag_matrix[i, ts] = 1.0
    activity, price = rng.normal(size=n_users), rng.normal(size=n_items)
    b_user, b_item = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    a, c, t = rng.normal(0, 0.5, n_seg), rng.normal(0, 0.5, n_cat), rng.normal(0, 0.3, n_tag)
    q, d = np.linspace(0.6, -0.6, n_pos), rng.normal(0, 0.3, n_dev)
    U, V = rng.normal(size=(n_seg, dims)), rng.normal(size=(n_cat, dims))
    pair = interaction * (U @ V.T) / np.sqrt(dims)  # (n_seg, n_cat)
    static_item = b_item + c[category] + tag_matrix @ t - 0.4 * price
    clicks_in = np.zeros((n_users, n_cat))
    users = np.arange(n_users)
    rows_u, rows_i, rows_pos, rows_dev, rows_p, rows_y = [], [], [], [], [], []
    for step in range(rows_per_user):  # one impression per user per step: the history changes the odds
        it = rng.integers(n_items, size=n_users)
        pos, dev = rng.integers(n_pos, size=n_users), rng.integers(n_dev, size=n_users)
        total = clicks_in.sum(axis=1)
        share = np.where(total > 0, clicks_in[users, category[it]] / np.maximum(total, 1), 1 / n_cat)
        logit = (-1.0 + b_user + a[segment] + 0.3 * activity + static_item[it] + q[pos] + d[dev]
                 + pair[segment, category[it]] + history_weight * (share - 1 / n_cat))
        p = 1 / (1 + np.exp(-logit))
        y = (rng.random(n_users) < p).astype(np.float32)
        np.add.at(clicks_in, (users, category[it]), y)
        rows_u.append(users)
        rows_i.append(it)
        rows_pos.append(pos)
        rows_dev.append(dev)
        rows_p.append(p)
        rows_y.append(y)
    user, item = np.concatenate(rows_u).astype(np.int64), np.concatenate(rows_i).astype(np.int64)
    times = np.repeat(np.arange(rows_per_user, dtype=np.float64) * 3600, n_users)
    data = assemble(np.concatenate(rows_y), user, item, np.array([f"u{k}" for k in range(n_users)]),
                    np.array([f"i{k}" for k in range(n_items)]),
                    user_fields={"segment": ([[f"s{s}"] for s in segment], False)},
                    item_fields={"category": ([[f"c{k}"] for k in category], False),
                                 "tags": ([[f"t{x}" for x in ts] for ts in tags], True)},
                    context={"position": (tuple(str(k) for k in range(n_pos)), np.concatenate(rows_pos)),
                             "device": (tuple(f"d{k}" for k in range(n_dev)), np.concatenate(rows_dev))},
                    user_dense={"activity": activity}, item_dense={"price": price}, timestamps=times,
                    max_history=rows_per_user, name="synthetic-ctr")
    return data, np.concatenate(rows_p).astype(np.float64)


def feature_files(path: str | Path) -> tuple[Path | None, Path | None]:
    """The ``.user`` and ``.item`` files beside a RecBole ``.inter`` file or in its folder."""
    from penchant.data.load import side_file_paths

    found = side_file_paths(path)
    pick = lambda ext: next((p for p in found if p.suffix == ext), None)
    return pick(".user"), pick(".item")

