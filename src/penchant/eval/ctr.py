"""Click-through metrics: AUC, log loss, group AUC, and NDCG of candidate lists re-ranked by the
predicted probability.

- :func:`auc`: the probability that a random positive row scores above a random negative one
  (ties count ½), from the ranks (Mann–Whitney U).
- :func:`log_loss`: mean binary cross-entropy in nats, probabilities clipped to [1e-7, 1 - 1e-7].
- :func:`gauc`: per group (a user's rows), its AUC, averaged with the group's number of rows as
  weight (Zhou et al., DIN, 2018); a group whose rows are all positive or all negative has no AUC
  and is skipped and counted.
- :func:`ndcg_lists`: each group's rows as one candidate list, ranked by the predicted probability,
  binary gains (label), NDCG@k averaged over the groups with at least one positive.

All are vectorised over rows (no loop over groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import rankdata

#: probabilities are clipped to [EPS, 1 - EPS] in the log loss
EPS = 1e-7


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` (n,) for 0/1 ``label`` (n,); NaN when one class is absent."""
    y = np.asarray(label) > 0
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))  # ties get their average rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(label: np.ndarray, prob: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of probabilities ``prob`` (n,) for 0/1 ``label`` (n,)."""
    p = np.clip(np.asarray(prob, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(label, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class GroupAUC(NamedTuple):
    """Group AUC: the impression-weighted mean AUC over the groups with both classes (``value``),
    how many groups entered it (``groups``) and how many were skipped for having one class only."""

    value: float
    groups: int
    skipped: int


def _group_ranks(group: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by (group, score): the order, each sorted row's group and its 1-based rank of
    score within its group, ties averaged."""
    order = np.lexsort((score, group))
    g, s = group[order], score[order]
    n = len(order)
    group_start = np.r_[True, g[1:] != g[:-1]]
    tie_start = group_start | np.r_[True, s[1:] != s[:-1]]
    position = np.arange(n)
    first_of_group = np.maximum.accumulate(np.where(group_start, position, 0))
    rank = position - first_of_group + 1.0
    tie_id = np.cumsum(tie_start) - 1
    tie_mean = np.bincount(tie_id, weights=rank) / np.bincount(tie_id)
    return order, g, tie_mean[tie_id]


def gauc(label: np.ndarray, score: np.ndarray, group: np.ndarray) -> GroupAUC:
    """Group AUC of ``score`` (n,) for 0/1 ``label`` (n,) within each ``group`` (n,) (see the module)."""
    y = np.asarray(label) > 0
    group = np.asarray(group)
    if len(y) == 0:
        return GroupAUC(float("nan"), 0, 0)
    order, g, rank = _group_ranks(group, np.asarray(score, dtype=np.float64))
    _, gid = np.unique(g, return_inverse=True)
    ys = y[order]
    size = np.bincount(gid).astype(np.float64)
    pos = np.bincount(gid, weights=ys.astype(np.float64))
    neg = size - pos
    pos_rank_sum = np.bincount(gid, weights=np.where(ys, rank, 0.0))
    both = (pos > 0) & (neg > 0)
    if not both.any():
        return GroupAUC(float("nan"), 0, len(size))
    per_group = (pos_rank_sum[both] - pos[both] * (pos[both] + 1) / 2) / (pos[both] * neg[both])
    value = float(np.sum(per_group * size[both]) / np.sum(size[both]))
    return GroupAUC(value, int(both.sum()), int((~both).sum()))


def ndcg_lists(label: np.ndarray, score: np.ndarray, group: np.ndarray, k: int = 10) -> tuple[float, int]:
    """Mean NDCG@k of each group's rows ranked by ``score`` (descending; ties by row order), binary
    gains from ``label``; groups without a positive are left out. Returns (NDCG@k, lists counted)."""
    y = (np.asarray(label) > 0).astype(np.float64)
    group = np.asarray(group)
    if len(y) == 0:
        return float("nan"), 0
    order = np.lexsort((np.arange(len(y)), -np.asarray(score, dtype=np.float64), group))
    g, ys = group[order], y[order]
    start = np.r_[True, g[1:] != g[:-1]]
    gid = np.cumsum(start) - 1
    position = np.arange(len(g)) - np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
    discount = np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)
    dcg = np.bincount(gid, weights=ys * discount)
    positives = np.bincount(gid, weights=ys)
    # the ideal list puts a group's positives first: its DCG is the sum of the first min(P, k) discounts
    cumulative = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    idcg = cumulative[np.minimum(positives, k).astype(int)]
    has = positives > 0
    if not has.any():
        return float("nan"), 0
    return float(np.mean(dcg[has] / idcg[has])), int(has.sum())


def ctr_metrics(label: np.ndarray, prob: np.ndarray, group: np.ndarray | None = None,
                ks: Sequence[int] = (10,)) -> dict[str, Any]:
    """Every CTR figure of probabilities ``prob`` (n,) for 0/1 ``label``: ``auc``, ``log_loss``,
    and with ``group``: ``gauc`` (with ``gauc_groups``, ``gauc_skipped``) and ``ndcg@k`` of the
    groups' lists re-ranked by ``prob`` (``lists``: how many had a positive)."""
    out: dict[str, Any] = {"auc": auc(label, prob), "log_loss": log_loss(label, prob), "rows": len(label),
                           "positive_rate": float(np.mean(label)) if len(label) else float("nan")}
    if group is not None:
        g = gauc(label, prob, group)
        out |= {"gauc": g.value, "gauc_groups": g.groups, "gauc_skipped": g.skipped}
        for k in ks:
            out[f"ndcg@{k}"], out["lists"] = ndcg_lists(label, prob, group, k)
    return out
