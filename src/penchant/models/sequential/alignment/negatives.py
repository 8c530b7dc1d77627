"""Where the rejected item of each (history, winner) pair comes from (``finetune_negatives``):

* ``rated``: an item the same user rated ≤ ``finetune_disliked``, drawn once per pair
  (:func:`.pairs.rated_losers`); winners of users without one give no pair;
* ``uniform``: an item drawn uniformly from the catalogue at every step;
* ``popular``: an item drawn with probability proportional to its training popularity (distinct
  users) at every step;
* ``on-policy`` (Tajwar et al., 2024): at every step, an item drawn from the *current* policy
  restricted to its top ``finetune_topk`` items after the history, π(j|s) / Σ_{top-K} π.

``uniform``, ``popular`` and ``on-policy`` never return the winner, an item of the history window,
or an item the user is known to like (rated ≥ ``finetune_liked`` in training; every training item
of theirs when the log has no ratings): they differ in the distribution only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError, DataError
from penchant.models.sequential.alignment.pairs import NextItems

NEGATIVES = ("rated", "uniform", "popular", "on-policy")

#: redraws of an offline negative that hit an excluded item before giving up
_REDRAWS = 100


def known_liked(train: Dataset, liked: float) -> sp.csr_matrix:
    """bool (n_users, n_items): items each user rated ≥ ``liked`` (every item they consumed
    without ratings)."""
    keep = np.ones(train.n_interactions, bool) if train.ratings is None else train.ratings >= liked
    m = sp.csr_matrix((np.ones(int(keep.sum()), bool), (train.users[keep], train.items[keep])),
                      shape=(train.n_users, train.n_items))
    m.sum_duplicates()
    return m


class Sampler:
    """Draws one loser per selected winner: ``draw(rng, rows, log_probs)`` with ``rows`` int64 (B,)
    indices into the winners and ``log_probs`` the current policy's float (B, n_items) torch tensor
    after their histories (read by ``on-policy`` only); returns int64 (B,) item indices."""

    on_policy = False

    def draw(self, rng: np.random.Generator, rows: np.ndarray, log_probs=None) -> np.ndarray:
        raise NotImplementedError


class RatedNegatives(Sampler):
    """The fixed losers of :func:`.pairs.rated_losers` (one per winner row)."""

    def __init__(self, losers: np.ndarray) -> None:
        self.losers = np.asarray(losers, np.int64)

    def draw(self, rng: np.random.Generator, rows: np.ndarray, log_probs=None) -> np.ndarray:
        return self.losers[rows]


class _Excluding(Sampler):
    """Shared exclusions: the winner, the history window and the user's known-liked items."""

    def __init__(self, winners: NextItems, liked: sp.csr_matrix) -> None:
        self.winners, self.liked = winners, liked

    def excluded(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """bool (B,): whether ``items`` (B,) may not be the losers of winner ``rows`` (B,)."""
        w = self.winners
        out = (items == w.item[rows]) | (w.history[rows] == items[:, None]).any(axis=1)
        return out | np.asarray(self.liked[w.user[rows], items]).ravel().astype(bool)


class OfflineNegatives(_Excluding):
    """``uniform`` (``weights`` None) or ``popular`` (``weights`` the items' training popularity)."""

    def __init__(self, winners: NextItems, liked: sp.csr_matrix, n_items: int, weights: np.ndarray | None = None) -> None:
        super().__init__(winners, liked)
        self.n_items = n_items
        self.cdf = None if weights is None else np.cumsum(weights / weights.sum())

    def _sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.cdf is None:
            return rng.integers(0, self.n_items, n)
        return np.minimum(np.searchsorted(self.cdf, rng.random(n), side="right"), self.n_items - 1)

    def draw(self, rng: np.random.Generator, rows: np.ndarray, log_probs=None) -> np.ndarray:
        out = self._sample(rng, len(rows))
        bad = np.flatnonzero(self.excluded(rows, out))
        for _ in range(_REDRAWS):
            if not len(bad):
                return out
            out[bad] = self._sample(rng, len(bad))
            bad = bad[self.excluded(rows[bad], out[bad])]
        raise DataError(f"{len(bad)} winners have no item left to reject after {_REDRAWS} draws "
                        "(their users like nearly every item)")


class OnPolicyNegatives(_Excluding):
    """Draws from the current policy's top ``topk`` allowed items, ∝ π within them."""

    on_policy = True

    def __init__(self, winners: NextItems, liked: sp.csr_matrix, topk: int) -> None:
        super().__init__(winners, liked)
        self.topk = topk

    def allowed_log_probs(self, rows: np.ndarray, log_probs):
        """``log_probs`` (B, n_items) with the excluded items of each winner row at −inf."""
        import torch

        dev = log_probs.device
        w = self.winners
        mask = torch.from_numpy(self.liked[w.user[rows]].toarray()).to(dev)
        b = torch.arange(len(rows), device=dev)
        mask[b, torch.from_numpy(w.item[rows]).to(dev)] = True
        hist = torch.from_numpy(w.history[rows]).to(dev)
        real = hist < log_probs.shape[1]  # padding is n_items
        mask[b[:, None].expand_as(hist)[real], hist[real]] = True
        return log_probs.masked_fill(mask, float("-inf"))

    def draw(self, rng: np.random.Generator, rows: np.ndarray, log_probs=None) -> np.ndarray:
        import torch

        if log_probs is None:
            raise ConfigError("on-policy negatives are drawn from the current policy: pass its log-probabilities")
        with torch.no_grad():
            allowed = self.allowed_log_probs(rows, log_probs.detach())
            top, idx = allowed.topk(min(self.topk, allowed.shape[1]), dim=1)
            p = torch.softmax(top.double(), dim=1).cpu().numpy()  # π renormalised over the top K
            idx = idx.cpu().numpy()
        if not np.isfinite(p).all():
            raise DataError("a winner has no item left to reject (its user likes every item)")
        # one categorical draw per row: the first column whose cumulative mass passes a uniform
        u = rng.random(len(rows))[:, None]
        pick = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)
        return idx[np.arange(len(rows)), pick].astype(np.int64)


def make_sampler(kind: str, train: Dataset, winners: NextItems, *, liked: float, topk: int,
                 rated: np.ndarray | None = None) -> Sampler:
    """The ``kind`` sampler for ``winners``; ``rated`` (int64 per winner) are the losers of ``rated``."""
    if kind == "rated":
        if rated is None:
            raise ConfigError("rated negatives need the losers drawn from the user's low ratings")
        return RatedNegatives(rated)
    likes = known_liked(train, liked)
    if kind == "uniform":
        return OfflineNegatives(winners, likes, train.n_items)
    if kind == "popular":
        return OfflineNegatives(winners, likes, train.n_items, train.item_counts.astype(np.float64) + 1e-12)
    if kind == "on-policy":
        return OnPolicyNegatives(winners, likes, topk)
    raise ConfigError(f"finetune_negatives must be one of {', '.join(NEGATIVES)}, not {kind!r}")
