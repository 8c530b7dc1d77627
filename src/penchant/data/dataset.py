"""The frozen, indexed snapshot of feedback that every model, split and metric reads.

External ids are strings; a :class:`Dataset` maps them to dense ``int32`` indices once. Two
datasets made by splitting (or read together as a train/valid/test triple) share one vocabulary,
so index ``i`` means the same item in all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from penchant.errors import ConfigError, DataError

FORMAT_VERSION = 2


@dataclass(frozen=True)
class Step:
    """One thing done to the data that changed what is in it, with how many rows it touched."""

    name: str
    count: int
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.count:,} ({self.detail})"


@dataclass(frozen=True)
class Attribute:
    """A multi-valued categorical attribute of items or users.

    Attributes:
        values: the value vocabulary, shape (V,), strings.
        matrix: CSR (n_entities, V) float32 of 0/1; row i lists entity i's values.
    """

    values: np.ndarray
    matrix: sp.csr_matrix

    def of(self, index: int) -> list[str]:
        """The values of one entity."""
        row = self.matrix.indices[self.matrix.indptr[index]:self.matrix.indptr[index + 1]]
        return [str(v) for v in self.values[row]]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Interactions between users and items, with side information, over fixed vocabularies.

    Attributes:
        user_ids, item_ids: external ids, shape (n_users,) and (n_items,), strings; the position
            of an id is its index.
        users, items: int32 indices, shape (n,), one entry per interaction.
        ratings: float32 (n,) explicit values (or weights), or None for unary feedback.
        timestamps: float64 (n,) unix seconds, or None.
        item_attributes, user_attributes: categorical side information by name.
        item_text: (n_items,) strings describing items (titles), or None.
        steps: what was counted, removed or filtered on the way here, in order.
        name: a label for reports.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    item_attributes: dict[str, Attribute] = field(default_factory=dict)
    user_attributes: dict[str, Attribute] = field(default_factory=dict)
    item_text: np.ndarray | None = None
    steps: tuple[Step, ...] = ()
    name: str = "dataset"

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n:
            raise ValueError("users and items must have the same length")
        for label, arr in (("ratings", self.ratings), ("timestamps", self.timestamps)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"{label} must have one entry per interaction")

    # ----- sizes and ids -------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.users)

    def __len__(self) -> int:
        return self.n_interactions

    @cached_property
    def _user_lookup(self) -> dict[str, int]:
        return {str(u): i for i, u in enumerate(self.user_ids)}

    @cached_property
    def _item_lookup(self) -> dict[str, int]:
        return {str(u): i for i, u in enumerate(self.item_ids)}

    def user_index(self, ids: object) -> np.ndarray:
        """Indices (int32) of external user ids; unknown ids raise DataError naming them."""
        return self._lookup(self._user_lookup, ids, "user")

    def item_index(self, ids: object) -> np.ndarray:
        """Indices (int32) of external item ids; unknown ids raise DataError naming them."""
        return self._lookup(self._item_lookup, ids, "item")

    @staticmethod
    def _lookup(table: dict[str, int], ids: object, kind: str) -> np.ndarray:
        keys = [str(i) for i in np.atleast_1d(np.asarray(ids, dtype=object))]
        missing = [k for k in keys if k not in table]
        if missing:
            raise DataError(f"unknown {kind} id {missing[0]!r}" +
                            (f" and {len(missing) - 1} more" if len(missing) > 1 else ""),
                            expected=f"a {kind} id present in the data")
        return np.fromiter((table[k] for k in keys), dtype=np.int32, count=len(keys))

    # ----- views ---------------------------------------------------------------------------
    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Binary user×item matrix, CSR float32 (n_users, n_items), 1 where any interaction."""
        return self.matrix("binary")

    def matrix(self, values: Literal["binary", "rating", "count"] = "binary") -> sp.csr_matrix:
        """User×item CSR float32 (n_users, n_items).

        ``binary`` puts 1 where a user interacted with an item; ``rating`` the rating (the
        latest one when a pair repeats); ``count`` the number of interactions.
        """
        shape = (self.n_users, self.n_items)
        if values == "rating":
            if self.ratings is None:
                raise DataError("this data has no ratings", expected="a rating column")
            order = self.time_order()
            sel = order[_last_occurrence(self.users[order], self.items[order], self.n_items)]
            m = sp.csr_matrix((self.ratings[sel].astype(np.float32), (self.users[sel], self.items[sel])), shape=shape)
            m.sort_indices()
            return m
        data = np.ones(self.n_interactions, dtype=np.float32)
        m = sp.csr_matrix((data, (self.users, self.items)), shape=shape)
        m.sum_duplicates()
        if values == "binary":
            m.data[:] = 1.0
        elif values != "count":
            raise ConfigError(f"values must be binary, rating or count, not {values!r}")
        m.sort_indices()
        return m

    def time_order(self) -> np.ndarray:
        """Permutation (int64, shape (n,)) ordering interactions by user, then time, then row."""
        keys = [np.arange(self.n_interactions)]
        if self.timestamps is not None:
            keys.append(self.timestamps)
        keys.append(self.users)
        return np.lexsort(keys)

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's items in time order, as ``(indptr, items)``.

        ``items[indptr[u]:indptr[u+1]]`` is user ``u``'s history, oldest first (file order
        breaks ties and orders data without timestamps). Shapes (n_users + 1,) int64 and (n,) int32.
        """
        order = self.time_order()
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=self.n_users), out=indptr[1:])
        return indptr, self.items[order]

    @cached_property
    def user_counts(self) -> np.ndarray:
        """Distinct items per user, int64 (n_users,)."""
        return np.diff(self.csr.indptr).astype(np.int64)

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Distinct users per item, int64 (n_items,)."""
        return np.bincount(self.csr.indices, minlength=self.n_items).astype(np.int64)

    def has_repeated_pairs(self) -> bool:
        return self.csr.nnz < self.n_interactions

    # ----- derived datasets ----------------------------------------------------------------
    def subset(self, mask: np.ndarray, step: Step | None = None, name: str | None = None) -> "Dataset":
        """The interactions where ``mask`` (bool (n,) or int indices) holds, same vocabularies."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return replace(
            self,
            users=self.users[idx], items=self.items[idx],
            ratings=None if self.ratings is None else self.ratings[idx],
            timestamps=None if self.timestamps is None else self.timestamps[idx],
            steps=self.steps + ((step,) if step else ()),
            name=name or self.name,
        )

    def implicit(self, min_rating: float | None = None) -> "Dataset":
        """Unary positive feedback: every interaction, or those with rating ≥ ``min_rating``.

        The interactions below the threshold are counted in ``steps``; ratings are dropped.
        """
        if min_rating is None:
            return replace(self, ratings=None)
        if self.ratings is None:
            raise DataError("--min-rating needs ratings, but this data has none", expected="a rating column")
        keep = self.ratings >= min_rating
        out = self.subset(keep, Step("below min rating", int((~keep).sum()), f"rating < {min_rating:g} removed"))
        return replace(out, ratings=None)

    def kcore(self, min_user: int = 5, min_item: int = 5) -> "Dataset":
        """Repeatedly drop users with < ``min_user`` and items with < ``min_item`` distinct partners.

        Returns a compacted dataset (ids that lose all interactions leave the vocabularies).
        """
        keep = np.ones(self.n_interactions, dtype=bool)
        while True:
            m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (self.users[keep], self.items[keep])),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.data[:] = 1
            ucount = np.diff(m.indptr)
            icount = np.bincount(m.indices, minlength=self.n_items)
            ok = keep & (ucount[self.users] >= min_user) & (icount[self.items] >= min_item)
            if ok.sum() == keep.sum():
                break
            keep = ok
        removed = int((~keep).sum())
        out = self.subset(keep, Step("k-core", removed, f"interactions of users with < {min_user} or items with < {min_item} partners removed"))
        return out.compact()

    def compact(self) -> "Dataset":
        """Drop users and items without interactions from the vocabularies (re-indexing)."""
        used_u = np.zeros(self.n_users, bool)
        used_u[self.users] = True
        used_i = np.zeros(self.n_items, bool)
        used_i[self.items] = True
        new_u = np.cumsum(used_u) - 1
        new_i = np.cumsum(used_i) - 1
        steps = self.steps
        dropped_u, dropped_i = int((~used_u).sum()), int((~used_i).sum())
        if dropped_u or dropped_i:
            steps = steps + (Step("unused ids", dropped_u + dropped_i,
                                  f"{dropped_u} users and {dropped_i} items without interactions left the vocabularies"),)
        return replace(
            self,
            user_ids=self.user_ids[used_u], item_ids=self.item_ids[used_i],
            users=new_u[self.users].astype(np.int32), items=new_i[self.items].astype(np.int32),
            item_attributes={k: Attribute(a.values, a.matrix[used_i]) for k, a in self.item_attributes.items()},
            user_attributes={k: Attribute(a.values, a.matrix[used_u]) for k, a in self.user_attributes.items()},
            item_text=None if self.item_text is None else self.item_text[used_i],
            steps=steps,
        )

    # ----- description ---------------------------------------------------------------------
    def summary(self) -> dict[str, object]:
        """Counts and distributions describing the data, JSON-serialisable."""
        n = self.n_interactions
        active_users = int((self.user_counts > 0).sum())
        active_items = int((self.item_counts > 0).sum())
        out: dict[str, object] = {
            "name": self.name,
            "users": self.n_users, "items": self.n_items, "interactions": n,
        }
        read = [s.count for s in self.steps if s.name == "rows read"]
        if read:  # built from a file: the rows it held, and what became of repeated (user, item) rows
            out["rows_read"] = sum(read)
            out["repeated_rows"] = {"merged": sum(s.count for s in self.steps if s.name == "repeated pairs"),
                                    "kept": sum(s.count for s in self.steps if s.name == "repeated pairs kept")}
        out |= {
            "users_with_interactions": active_users, "items_with_interactions": active_items,
            "distinct_pairs": int(self.csr.nnz),
            "density": float(self.csr.nnz / max(1, self.n_users * self.n_items)),
        }
        if n:
            uc = self.user_counts[self.user_counts > 0]
            ic = self.item_counts[self.item_counts > 0]
            out["per_user"] = _describe(uc)
            out["per_item"] = _describe(ic)
        if self.ratings is not None and n:
            values, counts = np.unique(self.ratings, return_counts=True)
            out["ratings"] = {"mean": float(self.ratings.mean()), "min": float(values[0]), "max": float(values[-1]),
                              "distribution": {f"{v:g}": int(c) for v, c in zip(values[:20], counts[:20])}}
        if self.timestamps is not None and n:
            out["time"] = {"first": float(self.timestamps.min()), "last": float(self.timestamps.max())}
        out["item_attributes"] = {k: int(len(a.values)) for k, a in self.item_attributes.items()}
        out["user_attributes"] = {k: int(len(a.values)) for k, a in self.user_attributes.items()}
        out["item_text"] = self.item_text is not None
        out["steps"] = [{"name": s.name, "count": s.count, "detail": s.detail} for s in self.steps]
        return out

    # ----- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write to ``folder`` so a large log is parsed once: one ``.npy`` file per array
        (uncompressed, so :meth:`load` maps them instead of reading them) and ``meta.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "user_ids": self.user_ids.astype(str), "item_ids": self.item_ids.astype(str),
            "users": self.users, "items": self.items,
        }
        if self.ratings is not None:
            arrays["ratings"] = self.ratings
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        if self.item_text is not None:
            arrays["item_text"] = self.item_text.astype(str)
        for prefix, attrs in (("ia", self.item_attributes), ("ua", self.user_attributes)):
            for j, a in enumerate(attrs.values()):
                arrays[f"{prefix}{j}_values"] = a.values.astype(str)
                arrays[f"{prefix}{j}_indptr"] = a.matrix.indptr
                arrays[f"{prefix}{j}_indices"] = a.matrix.indices
        (folder / "arrays.npz").unlink(missing_ok=True)  # an older save's arrays
        for key, value in arrays.items():
            np.save(folder / f"{key}.npy", np.ascontiguousarray(value), allow_pickle=False)
        meta = {"format": "penchant-dataset", "version": FORMAT_VERSION, "name": self.name, "arrays": sorted(arrays),
                "item_attributes": list(self.item_attributes), "user_attributes": list(self.user_attributes),
                "steps": [s.__dict__ for s in self.steps]}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Dataset":
        """Read a dataset written by :meth:`save`. The per-interaction arrays are memory-mapped
        read-only (pages are read as they are used), so a parsed 20M-interaction log reopens in
        well under a second; version-1 saves (one compressed ``arrays.npz``) are read whole."""
        folder = Path(folder)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise DataError("not a saved penchant dataset (no meta.json)", file=folder) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", file=meta_path, line=exc.lineno) from None
        if meta.get("format") != "penchant-dataset" or meta.get("version") not in (1, FORMAT_VERSION):
            raise DataError("not a penchant dataset of a version this penchant reads", file=meta_path,
                            expected=f"format 'penchant-dataset' version 1 or {FORMAT_VERSION}")
        if meta["version"] == 1:
            with np.load(folder / "arrays.npz", allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        else:
            a = {}
            for key in meta["arrays"]:
                path = folder / f"{key}.npy"
                try:
                    a[key] = np.load(path, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise DataError(f"not a readable array ({exc})", file=path,
                                    expected="the .npy file written by Dataset.save") from None
        n_users, n_items = len(a["user_ids"]), len(a["item_ids"])

        def attrs(prefix: str, names: list[str], n: int) -> dict[str, Attribute]:
            out = {}
            for j, key in enumerate(names):
                values, indptr, indices = (np.asarray(a[f"{prefix}{j}_{p}"]) for p in ("values", "indptr", "indices"))
                m = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n, len(values)))
                out[key] = Attribute(values.astype(str), m)
            return out

        return cls(
            user_ids=np.asarray(a["user_ids"]).astype(object), item_ids=np.asarray(a["item_ids"]).astype(object),
            users=a["users"], items=a["items"], ratings=a.get("ratings"), timestamps=a.get("timestamps"),
            item_attributes=attrs("ia", meta["item_attributes"], n_items),
            user_attributes=attrs("ua", meta["user_attributes"], n_users),
            item_text=np.asarray(a["item_text"]).astype(object) if "item_text" in a else None,
            steps=tuple(Step(**s) for s in meta["steps"]), name=meta["name"],
        )


def _describe(counts: np.ndarray) -> dict[str, float]:
    return {"min": int(counts.min()), "median": float(np.median(counts)), "mean": float(counts.mean()),
            "max": int(counts.max())}


def _last_occurrence(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean mask over already time-ordered rows: True at the last row of each (user, item)."""
    key = users.astype(np.int64) * n_items + items
    rev = key[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[len(key) - 1 - first_in_rev] = True
    return keep
