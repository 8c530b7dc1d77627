"""Top-K metrics, each a vectorised function of the hit matrix (formulas in docs/metrics.md).

Notation: for one user, ``rel_i ∈ {0,1}`` says whether the item at rank ``i`` (1-based) of the
recommended list is relevant, ``R`` is the number of relevant (held-out) items, ``K`` the cut-off.
Every function returns one value per user (float64, shape (n_users,)) unless it says otherwise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ACCURACY = ("ndcg", "recall", "precision", "mrr", "hit", "map")
BEYOND = ("coverage", "gini", "novelty", "ild", "arp")


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """P@K = (1/K) Σ_{i≤K} rel_i. ``hits``: bool (n, ≥K)."""
    return hits[:, :k].sum(axis=1) / k


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = Σ_{i≤K} rel_i / R."""
    return hits[:, :k].sum(axis=1) / n_relevant


def hit_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Hit@K = 1 if any of the top K is relevant, else 0."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K = DCG/IDCG, DCG = Σ_{i≤K} rel_i / log2(i+1), IDCG = Σ_{i≤min(R,K)} 1/log2(i+1)."""
    disc = _discounts(k)
    dcg = hits[:, :k] @ disc
    ideal = np.concatenate(([0.0], np.cumsum(disc)))[np.minimum(n_relevant, k)]
    return dcg / ideal


def mrr_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """MRR@K = 1 / (rank of the first relevant item within the top K), 0 if none."""
    h = hits[:, :k]
    first = h.argmax(axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@K = Σ_{i≤K} P@i · rel_i / min(R, K); MAP@K is its mean over users."""
    h = hits[:, :k].astype(np.float64)
    prec = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    return (prec * h).sum(axis=1) / np.minimum(n_relevant, k)


def accuracy_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    """All accuracy metrics at every cut-off, as ``{"ndcg@10": per-user values, …}``."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"precision@{k}"] = precision_at_k(hits, k)
        out[f"mrr@{k}"] = mrr_at_k(hits, k)
        out[f"hit@{k}"] = hit_at_k(hits, k)
        out[f"map@{k}"] = map_at_k(hits, n_relevant, k)
    return out


def coverage(lists: np.ndarray, n_items: int) -> float:
    """Catalogue coverage = |∪_u L_u| / n_items, over all users' lists (int (n, K))."""
    return float(np.unique(lists).size / n_items) if lists.size else 0.0


def gini(lists: np.ndarray, n_items: int) -> float:
    """Gini of exposure: with c_1 ≤ … ≤ c_n the times each item (all n_items) is recommended,
    G = Σ_j (2j − n − 1) c_j / (n Σ_j c_j). 0 when every item is shown equally, → 1 when one item takes all.
    """
    counts = np.sort(np.bincount(lists.ravel(), minlength=n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    j = np.arange(1, n_items + 1)
    return float(((2 * j - n_items - 1) * counts).sum() / (n_items * total))


def self_information(item_users: np.ndarray, n_users: int) -> np.ndarray:
    """−log2 p(i) with p(i) = max(1, users of i in train) / n_users; float64 (n_items,)."""
    return -np.log2(np.maximum(item_users, 1) / n_users)


def novelty(lists: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Novelty = mean self-information of a user's list, (1/K) Σ_{i∈L} −log2 p(i)."""
    return info[lists].mean(axis=1)


def average_popularity(lists: np.ndarray, item_users: np.ndarray) -> np.ndarray:
    """ARP = mean number of training users of the items in a user's list."""
    return item_users[lists].mean(axis=1).astype(np.float64)


def intra_list_diversity(lists: np.ndarray, features: sp.csr_matrix) -> np.ndarray:
    """ILD = mean over pairs i≠j in the list of (1 − cos(f_i, f_j)), f an item's attribute vector.

    With unit-normalised f, Σ_{i≠j} cos = ‖Σ_i f_i‖² − Σ_i ‖f_i‖², so no pair loop is needed.
    Items without attributes have f = 0 (cosine 0 with everything). ``features``: (n_items, V).
    """
    n, k = lists.shape
    if k < 2:
        return np.zeros(n)
    norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
    unit = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ features
    rows = np.repeat(np.arange(n), k)
    pick = sp.csr_matrix((np.ones(n * k), (rows, lists.ravel())), shape=(n, features.shape[0]))
    summed = pick @ unit
    sq_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    self_sq = (norms[lists] > 0).sum(axis=1)
    pair_cos = (sq_sum - self_sq) / (k * (k - 1))
    return 1.0 - pair_cos
