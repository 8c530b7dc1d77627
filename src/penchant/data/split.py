"""Seeded, leak-free ways to divide a :class:`Dataset` into train, validation and test parts.

Every function returns a :class:`Split` whose parts share the input's vocabularies and
partition its interactions exactly. What a part holds that the training part lacks (users or
items never seen in training) is counted by :meth:`Split.report`, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.dataset import Dataset, Step
from penchant.errors import DataError


@dataclass(frozen=True)
class Split:
    """Train, optional validation and test parts of one dataset."""

    train: Dataset
    valid: Dataset | None
    test: Dataset
    protocol: str

    def parts(self) -> dict[str, Dataset]:
        out = {"train": self.train}
        if self.valid is not None:
            out["valid"] = self.valid
        out["test"] = self.test
        return out

    def report(self) -> dict[str, object]:
        """Sizes, and the users and items of valid/test that train lacks."""
        seen_users = self.train.user_counts > 0
        seen_items = self.train.item_counts > 0
        out: dict[str, object] = {"protocol": self.protocol}
        for name, part in self.parts().items():
            entry: dict[str, int] = {"interactions": part.n_interactions,
                                     "users": int((part.user_counts > 0).sum()),
                                     "items": int((part.item_counts > 0).sum())}
            if name != "train":
                users = np.unique(part.users)
                entry["users_not_in_train"] = int((~seen_users[users]).sum())
                entry["interactions_of_users_not_in_train"] = int((~seen_users[part.users]).sum())
                entry["interactions_on_items_not_in_train"] = int((~seen_items[part.items]).sum())
            out[name] = entry
        return out


def _check_pairs(ds: Dataset) -> None:
    if ds.has_repeated_pairs():
        raise DataError(f"{ds.name} repeats (user, item) pairs ({ds.n_interactions - ds.csr.nnz:,} repeats), so one "
                        "pair could land in both train and test", expected="data read with dedupe='last' or 'first'")


def rank_within_user(users: np.ndarray, order: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """For interactions visited in ``order`` (grouped by user): each one's rank and its user's count."""
    counts = np.bincount(users, minlength=n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts[users[order]]
    return rank, counts[users]


def _from_parts(ds: Dataset, part: np.ndarray, protocol: str, has_valid: bool) -> Split:
    """``part`` (n,) holds 0 (train), 1 (valid) or 2 (test) for each interaction."""
    names = ("train", "valid", "test")
    sets = [ds.subset(part == p, Step("split", int((part == p).sum()), f"{names[p]} part of {protocol}"),
                      name=f"{ds.name}/{names[p]}") for p in range(3)]
    return Split(sets[0], sets[1] if has_valid else None, sets[2], protocol)


def random_holdout(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = DEFAULT_SEED) -> Split:
    """Per-user random holdout: each user's interactions are shuffled and cut by ``ratios``.

    ``ratios`` is (train, test) or (train, valid, test), summing to 1. A user with ``n``
    interactions puts ``round(n·r_train)`` in train and ``round(n·(r_train+r_valid))`` in train
    and valid together; the rest go to test.
    """
    _check_pairs(ds)
    r = _ratios(ratios)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(ds.n_interactions), ds.users))
    rank, count = rank_within_user(ds.users, order, ds.n_users)
    cut1 = np.round(count * r[0])
    cut2 = np.round(count * (r[0] + r[1]))
    part = np.where(rank < cut1, 0, np.where(rank < cut2, 1, 2))
    label = "/".join(f"{x:g}" for x in ratios)
    return _from_parts(ds, part, f"random per-user holdout {label}, seed {seed}", len(ratios) == 3)


def leave_last_out(ds: Dataset, n_test: int = 1, n_valid: int = 1) -> Split:
    """Per user, the last ``n_test`` interactions by time are test, the ``n_valid`` before valid.

    Ties in time keep file order. A user with no more than ``n_test + n_valid`` interactions
    stays wholly in train (counted in the train part's steps).
    """
    _check_pairs(ds)
    if ds.timestamps is None:
        raise DataError(f"{ds.name} has no timestamps, so 'last' is undefined", expected="a timestamp column")
    order = ds.time_order()
    rank, count = rank_within_user(ds.users, order, ds.n_users)
    from_end = count - 1 - rank
    short = count <= n_test + n_valid
    part = np.where(short, 0, np.where(from_end < n_test, 2, np.where(from_end < n_test + n_valid, 1, 0)))
    split = _from_parts(ds, part, f"leave last {n_test} out (valid {n_valid}) by time", n_valid > 0)
    n_short = int(np.unique(ds.users[short]).size)
    if n_short:
        train = split.train.subset(np.ones(split.train.n_interactions, bool),
                                   Step("too short to hold out", n_short, f"users with ≤ {n_test + n_valid} interactions kept whole in train"))
        split = Split(train, split.valid, split.test, split.protocol)
    return split


def time_cutoff(ds: Dataset, valid_start: float | None = None, test_start: float | None = None, *,
                valid: float = 0.1, test: float = 0.1) -> Split:
    """Global time split: interactions from ``test_start`` on are test, from ``valid_start`` valid.

    Without explicit cut-offs (unix seconds), they are the time quantiles that leave fractions
    ``valid`` and ``test`` of the interactions after them.
    """
    _check_pairs(ds)
    if ds.timestamps is None:
        raise DataError(f"{ds.name} has no timestamps", expected="a timestamp column")
    ts = ds.timestamps
    test_start = float(np.quantile(ts, 1 - test)) if test_start is None else test_start
    valid_start = float(np.quantile(ts, 1 - test - valid)) if valid_start is None else valid_start
    if valid_start > test_start:
        raise DataError("the validation cut-off is after the test cut-off", expected="valid_start ≤ test_start")
    part = np.where(ts >= test_start, 2, np.where(ts >= valid_start, 1, 0))
    return _from_parts(ds, part, f"global time cut-off (valid from {valid_start:.0f}, test from {test_start:.0f})", True)


def user_holdout(ds: Dataset, valid: float = 0.1, test: float = 0.1, seed: int = DEFAULT_SEED) -> Split:
    """Whole users held out: a fraction ``test`` of users (and ``valid``) keep none in train.

    These are cold-start users; collaborative evaluation counts and leaves them out, while
    side-information and fold-in models can be judged on them.
    """
    _check_pairs(ds)
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(ds.user_counts > 0)
    perm = rng.permutation(active)
    n_test = int(round(len(active) * test))
    n_valid = int(round(len(active) * valid))
    user_part = np.zeros(ds.n_users, dtype=np.int64)
    user_part[perm[:n_test]] = 2
    user_part[perm[n_test:n_test + n_valid]] = 1
    return _from_parts(ds, user_part[ds.users], f"user holdout valid {valid:g} test {test:g}, seed {seed}", valid > 0)


def _ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    r = [float(x) for x in ratios]
    if len(r) not in (2, 3) or any(x < 0 for x in r) or abs(sum(r) - 1) > 1e-6:
        raise DataError(f"ratios {ratios} are not 2 or 3 non-negative fractions summing to 1",
                        expected="e.g. 0.8,0.1,0.1")
    return (r[0], 0.0, r[1]) if len(r) == 2 else (r[0], r[1], r[2])


def kfold(ds: Dataset, k: int = 5, seed: int = DEFAULT_SEED) -> list[Split]:
    """K folds over interactions (globally shuffled, as rating-prediction studies use).

    Fold ``f`` tests on the f-th k-th of the interactions and trains on the rest; the test
    parts of the folds partition the data.
    """
    _check_pairs(ds)
    if k < 2:
        raise DataError(f"k-fold needs k ≥ 2, not {k}", expected="k ≥ 2")
    fold = np.random.default_rng(seed).permutation(ds.n_interactions) % k
    return [_from_parts(ds, np.where(fold == f, 2, 0), f"{k}-fold cross-validation, fold {f + 1}, seed {seed}", False)
            for f in range(k)]
