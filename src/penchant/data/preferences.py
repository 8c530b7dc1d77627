"""Pairwise choices in the one layout every preference model reads: :class:`PreferencePairs`.

An *option* is whatever was chosen between: a catalogue item, or a reply to a prompt. Each pair
says ``user`` preferred option ``winner`` to option ``loser``; ``group`` ties pairs that share a
context (a prompt), so splits can keep a context on one side only. Options may carry text (an
item description, or a reply with its prompt as ``option_context``) for text-feature models.

Read from comparison files (:mod:`penchant.data.comparisons`), drawn from ratings
(:func:`pairs_from_ratings`: within a user, two items with different ratings), split
(:func:`split_pairs`) and exported to the TRL layout (:func:`write_trl`) here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.dataset import Dataset, Step
from penchant.data.pairs import PreferencePairs
from penchant.errors import DataError


def with_item_attributes(pairs: PreferencePairs, ds: Dataset, attribute: str) -> PreferencePairs:
    """``pairs`` over ``ds``'s items with the item attribute ``attribute`` (e.g. MovieLens
    ``class``, the genres) as 0/1 option attribute scores, named by its values."""
    if attribute not in ds.item_attributes:
        raise DataError(f"{ds.name} has no item attribute {attribute!r}",
                        expected=f"one of {', '.join(ds.item_attributes) or 'none'}")
    if pairs.n_options != ds.n_items:
        raise DataError(f"{pairs.name} has {pairs.n_options} options but {ds.name} {ds.n_items} items",
                        expected="pairs drawn over the dataset's items")
    a = ds.item_attributes[attribute]
    return replace(pairs, option_attributes=a.matrix.toarray().astype(np.float32),
                   attribute_names=np.asarray(a.values, dtype=object))


def pairs_from_ratings(ds: Dataset, pairs_per_rating: float = 5.0, seed: int = DEFAULT_SEED,
                       option_text: Sequence[str] | None = None) -> PreferencePairs:
    """Comparisons implied by ratings: within a user, the higher-rated item wins.

    For a user with n ratings, ``round(pairs_per_rating·n)`` pairs of distinct rated items are drawn
    (seeded), or all n(n−1)/2 pairs when that is no more; pairs with equal ratings (ties) and
    repeats of a pair already drawn are dropped and counted in ``steps``. Options are the items.
    """
    if ds.ratings is None:
        raise DataError(f"{ds.name} has no ratings to compare", expected="explicit ratings")
    if pairs_per_rating <= 0:
        raise DataError(f"pairs_per_rating must be positive, not {pairs_per_rating}", expected="> 0")
    rng = np.random.default_rng(seed)
    order = np.argsort(ds.users, kind="stable")
    users, items, ratings = ds.users[order].astype(np.int64), ds.items[order].astype(np.int64), ds.ratings[order]
    counts = np.bincount(users, minlength=ds.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    all_pairs = counts * (counts - 1) // 2
    draws = np.minimum(np.round(pairs_per_rating * counts).astype(np.int64), all_pairs)
    every = (draws == all_pairs) & (all_pairs > 0)  # the cap binds: take every pair of this user
    sampled = np.where(every, 0, draws)
    owner = np.repeat(np.arange(ds.n_users), sampled)
    n_u = counts[owner]
    i = (rng.random(len(owner)) * n_u).astype(np.int64)
    j = (i + 1 + (rng.random(len(owner)) * (n_u - 1)).astype(np.int64)) % n_u  # any position but i
    parts = [(owner, i, j)]
    for n in np.unique(counts[every]):  # few distinct small sizes: enumerate i < j once per size
        who = np.flatnonzero(every & (counts == n))
        ti, tj = np.triu_indices(n, 1)
        parts.append((np.repeat(who, len(ti)), np.tile(ti, len(who)), np.tile(tj, len(who))))
    owner, i, j = (np.concatenate(x) for x in zip(*parts))
    a, b = starts[owner] + i, starts[owner] + j
    ties = ratings[a] == ratings[b]
    a, b, owner = a[~ties], b[~ties], owner[~ties]
    win = np.where(ratings[a] > ratings[b], items[a], items[b])
    lose = np.where(ratings[a] > ratings[b], items[b], items[a])
    key = owner * ds.n_items ** 2 + np.minimum(win, lose) * ds.n_items + np.maximum(win, lose)
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    steps = ds.steps + (Step("rating pairs drawn", int(draws.sum()), f"{pairs_per_rating:g} per rating, seed {seed}"),
                        Step("ties dropped", int(ties.sum()), "both items rated the same"),
                        Step("repeats dropped", int(len(win) - len(first)), "the same two items drawn again"))
    text = None if option_text is None else np.asarray(option_text, dtype=object)
    return PreferencePairs(owner[first], win[first], lose[first], np.arange(len(first), dtype=np.int64), ds.user_ids,
                           ds.item_ids, text if text is not None else ds.item_text, None, steps, f"{ds.name}/rating-pairs")


def write_trl(pairs: PreferencePairs, path: str | Path) -> Path:
    """Write ``{prompt, chosen, rejected, user}`` JSON lines (the TRL layout) for text-bearing pairs."""
    if pairs.option_text is None:
        raise DataError(f"{pairs.name} has no option text to export", expected="pairs from text or with item text")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx = pairs.option_context
    with open(path, "w", encoding="utf-8") as f:
        for u, w, l in zip(pairs.user, pairs.winner, pairs.loser):
            row = {"prompt": "" if ctx is None else str(ctx[w]), "chosen": str(pairs.option_text[w]),
                   "rejected": str(pairs.option_text[l])}
            if u >= 0:
                row["user"] = str(pairs.user_ids[u])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@dataclass(frozen=True)
class PairSplit:
    """Train, valid and test pairs; ``part`` (int8 (n,), 0/1/2) says where each input pair went
    (None when the parts were drawn separately)."""

    train: PreferencePairs
    valid: PreferencePairs
    test: PreferencePairs
    protocol: str
    part: np.ndarray | None = None

    def indices(self, name: str) -> np.ndarray:
        """Positions in the input pairs of the part ``train``, ``valid`` or ``test``."""
        if self.part is None:
            raise ValueError("this split was not made from one set of pairs")
        return np.flatnonzero(self.part == ("train", "valid", "test").index(name))


def split_pairs(pairs: PreferencePairs, fractions: Sequence[float] = (0.8, 0.1, 0.1), *, by: str = "pair",
                seed: int = DEFAULT_SEED) -> PairSplit:
    """Seeded train/valid/test parts of ``pairs``.

    ``by``: ``pair`` (each pair on its own), ``group`` (all pairs of one prompt/context on one
    side, so no context is seen in training and testing), or ``user`` (whole users held out, for
    few-shot tests on unseen users; pairs without a user stay in train).
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"fractions {fractions} are not three non-negative parts summing to 1", expected="e.g. 0.8,0.1,0.1")
    rng = np.random.default_rng(seed)
    if by == "pair":
        unit, n_units = np.arange(len(pairs)), len(pairs)
    elif by == "group":
        unit, n_units = pairs.group, int(pairs.group.max()) + 1 if len(pairs) else 0
    elif by == "user":
        unit, n_units = pairs.user, pairs.n_users
    else:
        raise DataError(f"cannot split by {by!r}", expected="pair, group or user")
    rank = np.empty(n_units, dtype=np.int64)
    rank[rng.permutation(n_units)] = np.arange(n_units)
    cut1, cut2 = round(n_units * fractions[0]), round(n_units * (fractions[0] + fractions[1]))
    part = np.where(rank < cut1, 0, np.where(rank < cut2, 1, 2))[np.maximum(unit, 0)]
    if by == "user":
        part = np.where(pairs.user < 0, 0, part)
    label = f"by {by} {'/'.join(f'{f:g}' for f in fractions)}, seed {seed}"
    names = ("train", "valid", "test")
    parts = [pairs.subset(part == p, Step("split", int((part == p).sum()), f"{names[p]} part, {label}"),
                          name=f"{pairs.name}/{names[p]}") for p in range(3)]
    return PairSplit(*parts, protocol=label, part=part.astype(np.int8))


def rating_pair_split(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, seed: int = DEFAULT_SEED,
                      pairs_per_rating: float = 5.0, option_text: Sequence[str] | None = None) -> PairSplit:
    """Comparisons from ratings with no rating shared across parts: each user's ratings are split
    first (per-user random holdout), then pairs are drawn within each part. A test pair then asks
    about two items whose ratings by that user were never seen, so a model cannot read the answer
    off the training pairs that share one of the two ratings (as a split of the pairs would allow)."""
    from penchant.data.split import random_holdout

    parts = random_holdout(ds, ratios, seed=seed)
    made = [pairs_from_ratings(p, pairs_per_rating, seed + k, option_text) for k, p in
            enumerate((parts.train, parts.valid, parts.test))]
    return PairSplit(*made, protocol=f"ratings split per user {parts.protocol}; pairs within each part")
