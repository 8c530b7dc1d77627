"""Thompson sampling over a model's posterior of a user's vector, and the lists' Monte-Carlo propensities.

A model that can sample its user vectors (:class:`UserPosterior`: ALS, whose posterior given the
fixed item factors is Gaussian, see :meth:`penchant.models.als.ALS.sample_user_vectors`) ranks the
catalogue by each sampled vector's scores: one draw is one Thompson list. The probability that a
Thompson list puts item a at slot l has no closed form; from N lists drawn from the posterior

    p̂_l(a) = (1/N) Σ_j [list_j[l] = a],  the list's own  P̂ = (1/N) Σ_j [list_j = the list],

each the mean of N Bernoulli(p) indicators: unbiased for the Thompson probability p, variance
p(1 − p)/N. When the list served is itself one of the N, chosen uniformly (what the service
does), the policy that served it is exactly "a uniformly chosen one of these N lists", whose
propensities are p̂ and P̂ without error (never 0 for what was shown); read as estimates of the
fresh-draw Thompson policy they are (1 + B)/N with B ~ Binomial(N − 1, p): bias (1 − p)/N,
variance (N − 1)p(1 − p)/N².
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from penchant.models.ranking import top_k


@runtime_checkable
class UserPosterior(Protocol):
    """``sample_user_vectors(n, rng, *, noise, user, items, values) -> float64 (n, factors)``: draws of
    a user's vector from the model's posterior (``user`` an index the model was fitted on, else the
    user known by a history of item indices ``items`` with values ``values``); the scores of a draw
    x are ``item_factors_ @ x``."""

    item_factors_: np.ndarray | None

    def sample_user_vectors(self, n: int, rng: np.random.Generator, *, noise: float = 1.0, user: int = -1,
                            items: np.ndarray | None = None, values: np.ndarray | None = None) -> np.ndarray: ...


def thompson_lists(model: UserPosterior, n: int, k: int, rng: np.random.Generator, *, noise: float = 1.0,
                   user: int = -1, items: np.ndarray | None = None, values: np.ndarray | None = None,
                   banned: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Thompson lists of up to ``k`` items for one user: each the top-k of the scores of one
    posterior draw, items in ``banned`` (bool (n_items,)) never shown.

    Returns int32 (n, k') item indices, best first, and their sampled scores, float32 (n, k'), with
    k' = min(k, items not banned) (the same for every draw: the ban does not depend on the draw).
    Draws are scored in blocks of about 4M cells, so memory stays bounded for large catalogues.
    """
    assert model.item_factors_ is not None
    y = model.item_factors_
    n_items = len(y)
    k = min(k, n_items - (int(banned.sum()) if banned is not None else 0))
    out_items, out_scores = np.empty((n, max(k, 0)), np.int32), np.empty((n, max(k, 0)), np.float32)
    if k <= 0:
        return out_items, out_scores
    x = model.sample_user_vectors(n, rng, noise=noise, user=user, items=items, values=values).astype(np.float32)
    block = max(1, 4_000_000 // n_items)
    for start in range(0, n, block):
        scores = x[start:start + block] @ y.T  # (b, n_items)
        if banned is not None:
            scores[:, banned] = -np.inf
        top, values_ = top_k(scores, k)
        out_items[start:start + block], out_scores[start:start + block] = top, values_
    return out_items, out_scores


def list_propensities(lists: np.ndarray, shown: np.ndarray) -> tuple[np.ndarray, float]:
    """The Monte-Carlo propensities of ``shown`` (int (k,)) among ``lists`` (int (N, k), one per
    posterior draw): float64 (k,) the share of lists with ``shown[l]`` at slot l, and the share
    equal to ``shown`` whole (see the module for the estimator and its variance)."""
    hits = lists == np.asarray(shown)[None, :]
    return hits.mean(axis=0), float(hits.all(axis=1).mean())


def slot_marginals(lists: np.ndarray, n_items: int) -> np.ndarray:
    """float64 (k, n_items): the share of ``lists`` (int (N, k)) with each item at each slot (rows sum to 1)."""
    n, k = lists.shape
    cells = (np.arange(k)[None, :] * n_items + lists).ravel()
    return np.bincount(cells, minlength=k * n_items).reshape(k, n_items) / n
