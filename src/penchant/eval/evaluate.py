"""Full-catalogue top-K evaluation, vectorised and chunked over users.

For each test user: the model scores every item, the items the user already has in the
training (and validation) data are masked, the top ``max(ks)`` are taken, and every metric is
computed from which of those are held-out test items. Per-user values are kept so that two
models can be compared with a paired test. Sampled-negative ranking exists only on request and
is labelled so in the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.backends import Backend, resolve
from penchant.data import Dataset
from penchant.errors import ConfigError, DataError
from penchant.eval import metrics as M
from penchant.models import Recommender
from penchant.models.ranking import chunk_size, top_k

FULL = "full ranking"


@dataclass
class EvalResult:
    """What one model scored on one test set.

    Attributes:
        model: registry name (or label); params: its hyper-parameters.
        protocol: ``"full ranking"`` or ``"sampled: N negatives per user (not full ranking)"``.
        users: evaluated user indices, int (n,).
        per_user: metric name -> float64 (n,) values for those users.
        aggregate: catalogue-level metrics (coverage, gini) at each K.
        left_out: why how many users or interactions were not evaluated.
    """

    model: str
    params: dict[str, Any]
    protocol: str
    ks: list[int]
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    aggregate: dict[str, float]
    left_out: dict[str, int]
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Mean of every per-user metric, plus the aggregate ones."""
        out = {k: float(v.mean()) if len(v) else float("nan") for k, v in self.per_user.items()}
        out.update(self.aggregate)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "params": self.params, "protocol": self.protocol,
                "metrics": self.metrics(), "users_evaluated": int(len(self.users)), "left_out": self.left_out,
                "fit_seconds": round(self.fit_seconds, 4), "eval_seconds": round(self.eval_seconds, 4), **self.extra}


@dataclass(frozen=True)
class Target:
    """The users to evaluate, what is relevant for each and what to mask, over one vocabulary.

    Built once per (train, test) pair and shared by every model compared on it, so all of
    them are judged on exactly the same users.
    """

    users: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix
    left_out: dict[str, int]
    item_users: np.ndarray
    n_train_users: int
    candidates: sp.csr_matrix | None = None


def build_target(train: Dataset, test: Dataset, also_exclude: tuple[Dataset, ...] = (),
                 candidates: sp.csr_matrix | None = None) -> Target:
    """Decide who is evaluated, on which items, and what is masked.

    * masked: each user's train items plus the items in ``also_exclude`` (the validation part
      when testing);
    * relevant: the user's test items, less any that are masked (counted) and less items that
      no training user has (cold items, counted: collaborative models cannot rank them);
    * evaluated: users with at least one training interaction and one relevant item; users
      with test items but no training history are counted as cold-start users.

    With ``candidates`` (CSR (n_users, n_items)), each user ranks only their candidate items
    (for example the randomly exposed items of a random-exposure test), not the catalogue.
    """
    exclude = train.csr
    for extra in also_exclude:
        exclude = ((exclude + extra.csr) > 0).astype(np.float32).tocsr()
    rel = test.csr.copy()
    left: dict[str, int] = {}
    overlap = rel.multiply(exclude)
    if overlap.nnz:
        left["test_interactions_already_seen"] = int(overlap.nnz)
        rel = (rel - overlap).tocsr()
        rel.eliminate_zeros()
    item_users = train.item_counts
    cold_items = item_users == 0
    if cold_items.any():
        cold = rel[:, cold_items]
        if cold.nnz:
            left["test_interactions_on_items_not_in_train"] = int(cold.nnz)
            keep = sp.diags((~cold_items).astype(np.float32))
            rel = (rel @ keep).tocsr()
            rel.eliminate_zeros()
    if candidates is not None:
        outside = rel - rel.multiply(candidates > 0)
        if outside.nnz:
            left["test_interactions_outside_candidates"] = int(outside.nnz)
            rel = rel.multiply(candidates > 0).tocsr()
            rel.eliminate_zeros()
        candidates = (candidates > 0).astype(np.float32).tocsr()
    test_users = np.flatnonzero(test.user_counts > 0)
    has_train = train.user_counts[test_users] > 0
    left["test_users_not_in_train"] = int((~has_train).sum())
    has_rel = np.diff(rel.indptr)[test_users] > 0
    left["test_users_without_relevant_items"] = int((has_train & ~has_rel).sum())
    users = test_users[has_train & has_rel]
    return Target(users, rel, exclude.tocsr(), left, item_users, train.n_users, candidates)


def _sampled_candidates(n_rows: int, n_items: int, rel: sp.csr_matrix, ex: sp.csr_matrix, n_neg: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Bool (n_rows, n_items): the relevant items plus ``n_neg`` uniform unseen non-relevant items."""
    keys = rng.random((n_rows, n_items), dtype=np.float32)
    forbidden = (rel + ex).tocsr()
    rows = np.repeat(np.arange(n_rows), np.diff(forbidden.indptr))
    keys[rows, forbidden.indices] = np.inf
    n_neg = min(n_neg, n_items - 1)
    negatives = np.argpartition(keys, n_neg - 1, axis=1)[:, :n_neg]
    cand = np.zeros((n_rows, n_items), dtype=bool)
    np.put_along_axis(cand, negatives, np.take_along_axis(keys, negatives, axis=1) < np.inf, axis=1)
    relrows = np.repeat(np.arange(n_rows), np.diff(rel.indptr))
    cand[relrows, rel.indices] = True
    return cand


def evaluate(model: Recommender, train: Dataset, test: Dataset, *, ks: list[int] | tuple[int, ...] = (10, 20),
             also_exclude: tuple[Dataset, ...] = (), target: Target | None = None,
             sampled: int | None = None, seed: int = DEFAULT_SEED, diversity_attribute: str | None = "auto",
             beyond_accuracy: bool = True, label: str | None = None, progress: Any = None,
             backend: str | Backend | None = None) -> EvalResult:
    """Evaluate a fitted ``model`` on ``test`` (see :func:`build_target` for who counts).

    Args:
        ks: cut-offs; each must be at most the number of items.
        also_exclude: further parts whose items are masked (pass the validation part when testing).
        target: a prebuilt :class:`Target` (shared across models); built from the data if None.
        sampled: rank each user's relevant items among this many sampled unseen items instead of
            the full catalogue (labelled as such everywhere).
        seed: seed of the negative sampling.
        diversity_attribute: item attribute for intra-list diversity; "auto" picks a genre-like
            one (``genre``, ``class``, ``genres``) when present; None skips it.
        beyond_accuracy: compute coverage, Gini, novelty, ILD and ARP.
        progress: optional callable ``progress(done_users, total_users)``.
        backend: where the blocks of users are ranked: ``"local"`` (default), ``"ray"`` or a
            :class:`~penchant.backends.Backend`; the same metrics either way.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > train.n_items:
        raise ConfigError(f"cut-offs {ks} must be between 1 and the number of items ({train.n_items})")
    start_time = time.perf_counter()
    target = target or build_target(train, test, also_exclude)
    users = target.users
    kmax = ks[-1]
    n_items = train.n_items
    step = chunk_size(n_items, bytes_per_cell=16)
    blocks = [(s, users[s:s + step]) for s in range(0, len(users), step)]
    job = _Ranking(model, target, kmax, sampled, seed)
    tick = (lambda done: progress(min(len(users), done * step), len(users))) if progress else None
    parts = resolve(backend).map(_rank_block, blocks, job, progress=tick)
    lists = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, kmax), dtype=np.int32)
    hits = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, kmax), dtype=bool)
    n_rel = np.diff(target.relevant.indptr)[users]
    per_user = M.accuracy_metrics(hits, n_rel, ks)
    aggregate: dict[str, float] = {}
    if beyond_accuracy and len(users):
        info = M.self_information(target.item_users, target.n_train_users)
        features = _diversity_features(train, diversity_attribute)
        for k in ks:
            top = lists[:, :k]
            aggregate[f"coverage@{k}"] = M.coverage(top, n_items)
            aggregate[f"gini@{k}"] = M.gini(top, n_items)
            per_user[f"novelty@{k}"] = M.novelty(top, info)
            per_user[f"arp@{k}"] = M.average_popularity(top, target.item_users)
            if features is not None:
                per_user[f"ild@{k}"] = M.intra_list_diversity(top, features)
    protocol = FULL if not sampled else f"sampled: {sampled} negatives per user (not full ranking)"
    if target.candidates is not None:
        n_cand = np.diff(target.candidates.indptr)[users].mean() if len(users) else 0
        protocol = f"given candidates: each user ranks their own {n_cand:.0f} candidate items (not full ranking)"
    return EvalResult(model=label or model.name, params=model.params(), protocol=protocol, ks=ks, users=users,
                      per_user=per_user, aggregate=aggregate, left_out=dict(target.left_out),
                      eval_seconds=time.perf_counter() - start_time)


@dataclass(frozen=True)
class _Ranking:
    """What every block of an evaluation shares (put once into a cluster's object store)."""

    model: Recommender
    target: Target
    kmax: int
    sampled: int | None
    seed: int


def _rank_block(job: _Ranking, block: tuple[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Top-``kmax`` lists, int32 (n, kmax), and whether each is relevant, bool (n, kmax), for one
    block ``(start, users)``; sampled negatives are drawn from a generator seeded by (seed, start),
    so a block draws the same ones wherever it runs."""
    start, chunk = block
    target, n_items = job.target, job.target.relevant.shape[1]
    scores = job.model.score(chunk).astype(np.float32, copy=False)
    rel = target.relevant[chunk]
    ex = target.exclude[chunk]
    if job.sampled:
        rng = np.random.default_rng([job.seed, start])
        scores[~_sampled_candidates(len(chunk), n_items, rel, ex, job.sampled, rng)] = -np.inf
    if target.candidates is not None:
        allowed = target.candidates[chunk]
        keep = np.zeros((len(chunk), n_items), dtype=bool)
        keep[np.repeat(np.arange(len(chunk)), np.diff(allowed.indptr)), allowed.indices] = True
        scores[~keep] = -np.inf
    top, _ = top_k(scores, job.kmax, ex)
    return top, _hits(top, rel)


def _hits(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Bool (n, k): whether ``top[r, j]`` is one of row r's items in ``relevant`` (CSR (n, n_items)),
    by binary search of row-major keys, never a dense (n, n_items) matrix."""
    if not relevant.has_sorted_indices:
        relevant = relevant.sorted_indices()
    n_items = relevant.shape[1]
    keys = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr)) * n_items
    keys += relevant.indices  # rows in order, indices sorted within each: the keys are sorted
    if not len(keys):
        return np.zeros(top.shape, dtype=bool)
    query = np.arange(len(top), dtype=np.int64)[:, None] * n_items + top
    return keys[np.minimum(np.searchsorted(keys, query), len(keys) - 1)] == query


def _diversity_features(train: Dataset, attribute: str | None) -> sp.csr_matrix | None:
    if attribute is None:
        return None
    if attribute == "auto":
        attribute = next((a for a in ("genre", "genres", "class", "category") if a in train.item_attributes), None)
        if attribute is None:
            return None
    if attribute not in train.item_attributes:
        raise ConfigError(f"no item attribute {attribute!r}; the data has: {', '.join(train.item_attributes) or 'none'}")
    return train.item_attributes[attribute].matrix


def validator(train: Dataset, valid: Dataset, metric: str = "ndcg@10"):  # -> Validator
    """A function scoring a fitted model on the validation part (mean of ``metric``), for model selection."""
    name, _, k = metric.partition("@")
    if name not in M.ACCURACY or not k.isdigit():
        raise ConfigError(f"validation metric {metric!r} is not one of {', '.join(M.ACCURACY)} with @K")
    target = build_target(train, valid)
    if not len(target.users):
        left = ", ".join(f"{k} {v:,}" for k, v in target.left_out.items() if v) or "none given"
        raise DataError(f"no user of {valid.name} can be judged: none has a validation item outside their training "
                        f"items (left out: {left})", expected="validation interactions that are not in the training data")

    def score(model: Recommender) -> float:
        result = evaluate(model, train, valid, ks=[int(k)], target=target, beyond_accuracy=False)
        return float(result.per_user[metric].mean())

    return score
