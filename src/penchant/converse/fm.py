"""The attribute-aware factorisation machine of EAR (Lei et al., WSDM 2020, §Estimation), shared by
the ``ear`` and ``cpr`` policies (SCPR scores items and weights its entropy with the same model).

Scores, for a user vector ``u`` and the attribute values ``P_u`` the user accepted so far:

* an item: ``ŷ(i | u, P_u) = u·v_i + Σ_{p∈P_u} v_i·p_p + b_i`` (EAR eq. 1, plus an item bias);
* a value: ``ĝ(a | u, P_u) = u·p_a + Σ_{p∈P_u} p_a·p_p`` (EAR eq. 3).

Training, on the scorer's training interactions only (users × items), as EAR's reference code does:
BPR of each (user, item) against a random item the user does not have, plus BPR against a "hard"
negative: an item that also holds the accepted values ``P_u`` (EAR's second negative, which teaches
the model to rank *within* the candidates a conversation leaves), plus the attribute task (BPR of a
value of the item not in ``P_u`` against a value the item lacks, the user vector held fixed).

What this implementation chooses where the paper leaves room:

* ``P_u`` of a training pair is drawn from the item's own values, as the accepted values of a
  conversation about that item would be: always one (the opening), each of ``max_accepted − 1``
  more with probability ½. EAR's code replays max-entropy conversations to collect them; drawing
  them directly needs no simulator and gives the same kind of set (values the item has).
* **The user's vector is built from their history** instead of a per-user embedding:
  ``u(H) = |H|^(−½) Σ_{j∈H} w_j`` (FISM-style implicit-feedback features of the FM's user field), so
  a user the model never saw (a service user, a library caller, a cold user with ``H = ∅`` → the zero
  vector) is folded in exactly, with no refit. Training leaves the positive item out of its own
  history, and hides the whole history of a ``cold_share`` of the pairs, so the model also learns to
  rank from the accepted values alone (the cold case a conversation is for).
* Reflection (EAR §Reflection) updates **only the user's vector**: a few gradient steps lowering the
  rejected items' scores (BPR against the history's mean score when there is a history, as the
  reference code's online update pairs the user's own items with the rejected ones; pointwise when
  there is none), pulled back towards the folded-in vector. The item and value tables stay fixed,
  so one user's conversation never changes another's model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConfigError, DataError

#: the arrays :meth:`AttributeFM.state_arrays` writes
ARRAYS = ("V", "P", "b", "W")
#: the last models :func:`shared_fm` fitted, by fingerprint of their inputs
_SHARED: dict[str, AttributeFM] = {}


class AttributeFM:
    """EAR's FM over items and attribute values (see the module's docstring).

    Attributes:
        V: float32 (n_items, dim) item factors.
        P: float32 (n_values, dim) attribute-value factors.
        b: float32 (n_items,) item biases.
        W: float32 (n_items, dim) history factors: a user's vector is their normalised sum.
    """

    def __init__(self, V: np.ndarray, P: np.ndarray, b: np.ndarray, W: np.ndarray) -> None:
        self.V, self.P, self.b, self.W = V, P, b, W
        self._check()

    def _check(self) -> None:
        n, d = self.V.shape
        if self.P.ndim != 2 or self.P.shape[1] != d or self.b.shape != (n,) or self.W.shape != (n, d):
            raise DataError(f"an attribute FM needs V (n, d), P (m, d), b (n,), W (n, d); got {self.V.shape}, "
                            f"{self.P.shape}, {self.b.shape}, {self.W.shape}")

    @property
    def dim(self) -> int:
        return self.V.shape[1]

    # ---------------------------------------------------------------- scoring
    def user_vector(self, history: np.ndarray) -> np.ndarray:
        """float64 (dim,): ``|H|^(−½) Σ_{j∈H} w_j`` for the items ``history`` (int64); zeros when empty."""
        h = np.asarray(history, dtype=np.int64)
        if h.size == 0:
            return np.zeros(self.dim)
        return self.W[h].sum(0, dtype=np.float64) / np.sqrt(h.size)

    def _query(self, u: np.ndarray, accepted) -> np.ndarray:
        acc = np.asarray(accepted, dtype=np.int64)
        return np.asarray(u, dtype=np.float64) + (self.P[acc].sum(0, dtype=np.float64) if acc.size else 0.0)

    def item_scores(self, u: np.ndarray, accepted) -> np.ndarray:
        """float64 (n_items,): ``u·v_i + Σ_{p∈accepted} v_i·p_p + b_i``."""
        return self.V @ self._query(u, accepted) + self.b

    def value_scores(self, u: np.ndarray, accepted) -> np.ndarray:
        """float64 (n_values,): ``u·p_a + Σ_{p∈accepted} p_a·p_p`` (the predicted preference for value a)."""
        return self.P @ self._query(u, accepted)

    def reflect(self, u: np.ndarray, accepted, rejected_items, *, history: np.ndarray | None = None,
                steps: int = 5, lr: float = 0.1, reg: float = 1.0) -> np.ndarray:
        """EAR's reflection on the user's vector: float64 (dim,) after ``steps`` gradient steps of

        ``mean_r softplus(ŷ_r − m) + reg/2 ‖u − u₀‖²``

        over the ``rejected_items`` r (``ŷ`` with the ``accepted`` values), where ``m`` is the mean score
        of the ``history`` items (BPR of the user's own items against the rejected ones) or 0 when there
        is no history, and ``u₀ = u``. Lowers the rejected items' scores, and those of items like them."""
        u0 = np.asarray(u, dtype=np.float64)
        rej = np.asarray(rejected_items, dtype=np.int64)
        if rej.size == 0 or steps <= 0:
            return u0.copy()
        base = self._query(np.zeros_like(u0), accepted)
        vr = self.V[rej].astype(np.float64)
        br = self.b[rej] + vr @ base
        h = np.zeros(0, dtype=np.int64) if history is None else np.asarray(history, dtype=np.int64)
        vh = self.V[h].astype(np.float64).mean(0) if h.size else None
        bh = float(self.b[h].mean() + self.V[h].mean(0) @ base) if h.size else 0.0
        x = u0.copy()
        for _ in range(steps):
            margin = vr @ x + br - ((vh @ x + bh) if vh is not None else 0.0)
            s = 1.0 / (1.0 + np.exp(-margin))  # d softplus / d margin
            grad = (s[:, None] * vr).mean(0) - (s.mean() * vh if vh is not None else 0.0) + reg * (x - u0)
            x -= lr * grad
        return x

    # ---------------------------------------------------------------- persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """``V``, ``P``, ``b``, ``W`` as float32 arrays."""
        return {k: np.asarray(getattr(self, k), dtype=np.float32) for k in ARRAYS}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` wrote (same item and value counts)."""
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"an attribute FM's arrays lack {', '.join(missing)}")
        old = (self.V.shape, self.P.shape)
        self.V, self.P, self.b, self.W = (np.asarray(arrays[k], dtype=np.float32) for k in ARRAYS)
        self._check()
        if (self.V.shape[0], self.P.shape[0]) != (old[0][0], old[1][0]):
            raise DataError(f"an attribute FM for {self.V.shape[0]} items and {self.P.shape[0]} values cannot "
                            f"replace one for {old[0][0]} items and {old[1][0]} values")

    @classmethod
    def from_state_arrays(cls, arrays: dict[str, np.ndarray]) -> AttributeFM:
        """A model from :meth:`state_arrays`' output."""
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"an attribute FM's arrays lack {', '.join(missing)}")
        return cls(*(np.asarray(arrays[k], dtype=np.float32) for k in ARRAYS))

    # ---------------------------------------------------------------- training
    @classmethod
    def fit(cls, graph: AttributeGraph, train: sp.csr_matrix, *, dim: int = 64, epochs: int = 20,
            batch: int = 1024, lr: float = 2e-3, reg: float = 3e-3, attr_weight: float = 1.0,
            max_accepted: int = 3, cold_share: float = 0.2, seed: int = DEFAULT_SEED) -> AttributeFM:
        """EAR's multi-task BPR on ``train`` (CSR users × items, the scorer's training interactions).

        Each epoch visits every (user, item) once in batches of ``batch``; Adam at ``lr``; ``reg``
        weighs the squared norms of the rows a batch uses; ``attr_weight`` the attribute task."""
        import torch

        from penchant.models.training import seed_torch

        if dim < 1 or epochs < 0 or batch < 1 or lr <= 0 or reg < 0 or attr_weight < 0 or max_accepted < 1 \
                or not 0 <= cold_share <= 1:
            raise ConfigError("the FM needs dim, batch, max_accepted ≥ 1, epochs ≥ 0, lr > 0, reg and "
                              "attr_weight ≥ 0 and cold_share in [0, 1]")
        train = sp.csr_matrix(train, dtype=np.float32)
        n_items = train.shape[1]
        if n_items != graph.n_items:
            raise DataError(f"the FM's training matrix has {n_items} items, the attribute graph {graph.n_items}")
        seed_torch(seed)
        rng = np.random.default_rng(seed)
        n_values = graph.n_values
        item_vals = sp.csr_matrix(graph.items, dtype=bool)
        val_items = item_vals.T.tocsr()
        train.data[:] = 1.0
        counts = np.diff(train.indptr).astype(np.float64)
        have = _Membership(train)  # (user, item) pairs the user has
        holds = _Membership(item_vals)  # (item, value) pairs

        def init(*shape):
            return torch.nn.Parameter(torch.randn(*shape) * 0.01)

        V, P, W = init(n_items, dim), init(n_values, dim), init(n_items, dim)
        b = torch.nn.Parameter(torch.zeros(n_items))
        opt = torch.optim.Adam([V, P, W, b], lr=lr)
        coo = train.tocoo()
        users_all, items_all = coo.row.astype(np.int64), coo.col.astype(np.int64)
        for _ in range(epochs):
            order = rng.permutation(len(users_all))
            for s in range(0, len(order), batch):
                sel = order[s:s + batch]
                u, i = users_all[sel], items_all[sel]
                acc, acc_ok = _draw_accepted(item_vals, i, max_accepted, rng)
                j1 = _draw_negative(have, u, n_items, rng)
                j2, j2_ok = _draw_hard(val_items, have, u, i, acc[:, 0], acc_ok[:, 0], rng)
                pos_v, neg_v, attr_ok = _draw_values(item_vals, holds, i, acc, acc_ok, n_values, rng)
                # the user's vector from their history, their own positive item left out
                rest = counts[u] - 1
                keep = (rest > 0) & (rng.random(len(u)) >= cold_share)
                scale = torch.from_numpy(np.where(keep, 1.0 / np.sqrt(np.maximum(rest, 1)), 0.0).astype(np.float32))
                ti = torch.from_numpy(i)
                who, inverse = np.unique(u, return_inverse=True)
                summed = _history_sum(train[who], W)  # (unique users, dim)
                uvec = (summed[torch.from_numpy(inverse)] - W[ti]) * scale[:, None]
                okm = torch.from_numpy(acc_ok.astype(np.float32))
                pacc = (P[torch.from_numpy(acc)] * okm[..., None]).sum(1)  # (B, dim) Σ accepted values
                q = uvec + pacc
                vi, vj1, vj2 = V[ti], V[torch.from_numpy(j1)], V[torch.from_numpy(j2)]
                yi = (q * vi).sum(1) + b[ti]
                y1 = (q * vj1).sum(1) + b[torch.from_numpy(j1)]
                y2 = (q * vj2).sum(1) + b[torch.from_numpy(j2)]
                m2 = torch.from_numpy(j2_ok.astype(np.float32))
                loss = torch.nn.functional.softplus(y1 - yi).mean() \
                    + (torch.nn.functional.softplus(y2 - yi) * m2).sum() / max(1.0, float(m2.sum()))
                if attr_weight:
                    qa = uvec.detach() + pacc
                    pp, pn = P[torch.from_numpy(pos_v)], P[torch.from_numpy(neg_v)]
                    ma = torch.from_numpy(attr_ok.astype(np.float32))
                    ga = torch.nn.functional.softplus((qa * (pn - pp)).sum(1))
                    loss = loss + attr_weight * (ga * ma).sum() / max(1.0, float(ma.sum()))
                if reg:
                    loss = loss + reg * ((vi ** 2).sum() + (vj1 ** 2).sum() + (vj2 ** 2).sum()
                                         + (uvec ** 2).sum() + (pacc ** 2).sum()) / len(u)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return cls(*(t.detach().numpy().astype(np.float32) for t in (V, P, b, W)))


def _history_sum(rows: sp.csr_matrix, W):
    """torch (len(rows), dim): ``rows @ W`` for a CSR block of histories, differentiable in W (scipy's
    sparse products both ways: a quarter of the time of torch's embedding bag or sparse mm on CPU)."""
    import torch

    class HistorySum(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            return torch.from_numpy(np.asarray(rows @ w.detach().numpy(), dtype=np.float32))

        @staticmethod
        def backward(ctx, grad):
            return torch.from_numpy(np.asarray(rows.T @ grad.numpy(), dtype=np.float32))

    return HistorySum.apply(W)


class _Membership:
    """Whether (row, column) pairs are stored in a CSR matrix, vectorised (sorted row·n + column keys)."""

    def __init__(self, m: sp.csr_matrix) -> None:
        m = sp.csr_matrix(m)
        m.sort_indices()
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        self.n = m.shape[1]
        self.keys = rows * self.n + m.indices.astype(np.int64)

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        k = rows.astype(np.int64) * self.n + cols.astype(np.int64)
        pos = np.minimum(np.searchsorted(self.keys, k), max(len(self.keys) - 1, 0))
        return (self.keys[pos] == k) if len(self.keys) else np.zeros(len(k), dtype=bool)


def _draw_in_rows(m: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly drawn stored column per row (int64), and whether the row had any."""
    n = np.diff(m.indptr)[rows]
    ok = n > 0
    pick = m.indptr[rows] + np.floor(rng.random(len(rows)) * np.maximum(n, 1)).astype(np.int64)
    return np.where(ok, m.indices[np.minimum(pick, len(m.indices) - 1)], 0).astype(np.int64), ok


def _draw_accepted(item_vals: sp.csr_matrix, items: np.ndarray, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) values of each item standing for what a conversation accepted, and which slots count:
    slot 0 always (when the item has a value), each later slot with probability ½, no repeats."""
    acc = np.zeros((len(items), k), dtype=np.int64)
    ok = np.zeros((len(items), k), dtype=bool)
    for s in range(k):
        acc[:, s], ok[:, s] = _draw_in_rows(item_vals, items, rng)
        if s:
            ok[:, s] &= rng.random(len(items)) < 0.5
            ok[:, s] &= ~((acc[:, :s] == acc[:, s:s + 1]) & ok[:, :s]).any(1)
    return acc, ok


def _draw_negative(have: _Membership, users: np.ndarray, n_items: int, rng, tries: int = 3) -> np.ndarray:
    """A uniformly drawn item each user does not have (after ``tries`` redraws, whatever came)."""
    j = rng.integers(0, n_items, len(users))
    for _ in range(tries):
        bad = have(users, j)
        if not bad.any():
            break
        j[bad] = rng.integers(0, n_items, int(bad.sum()))
    return j.astype(np.int64)


def _draw_hard(val_items, have, users, items, first, first_ok, rng, tries: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """EAR's second negative: an item holding the first accepted value that the user does not have."""
    j, ok = _draw_in_rows(val_items, first, rng)
    ok &= first_ok
    for _ in range(tries):
        bad = ok & (have(users, j) | (j == items))
        if not bad.any():
            break
        j[bad], _ = _draw_in_rows(val_items, first[bad], rng)
    ok &= ~(have(users, j) | (j == items))
    return j, ok


def _draw_values(item_vals, holds, items, acc, acc_ok, n_values, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The attribute task's pair per item: a value it has outside the accepted ones, a value it lacks."""
    pos, ok = _draw_in_rows(item_vals, items, rng)
    ok &= ~((acc == pos[:, None]) & acc_ok).any(1)
    neg = rng.integers(0, n_values, len(items))
    ok &= ~holds(items, neg)
    return pos, neg.astype(np.int64), ok


def shared_fm(graph: AttributeGraph, train: sp.csr_matrix, **params) -> AttributeFM:
    """:meth:`AttributeFM.fit` once per process for the same graph, training matrix and parameters:
    EAR and CPR trained one after the other on one setup share one FM (the papers' one estimation
    model), and neither pays for fitting it twice. The model is never changed in place
    (reflection returns a new user vector), so sharing it is safe."""
    import hashlib

    t, g = sp.csr_matrix(train), sp.csr_matrix(graph.items)
    h = hashlib.sha256(repr((t.shape, g.shape, sorted(params.items()))).encode())
    for a in (t.indptr, t.indices, g.indptr, g.indices):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    key = h.hexdigest()
    if key not in _SHARED:
        while len(_SHARED) >= 2:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = AttributeFM.fit(graph, train, **params)
    return _SHARED[key]
