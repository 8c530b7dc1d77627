"""SLIST (Choi, Kim, Lee, Shim & Lee, "Session-aware Linear Item-Item Models for Session-based
Recommendation", WWW 2021) on user histories: each user's training history, in time order
(i_0, …, i_{L−1}), plays the paper's session.

Two linear item-item objectives share one weight matrix B (n_items, n_items):

- SLIS (item similarity): one row per user; input the binary history L2-normalised (X̃), target
  the binary history X: ‖X − X̃B‖².
- SLIT (item transition): one row per position t < L−1 of a history; input the partial history
  up to t, ``s_t[i_k] = exp(−(t−k)/δ_train)`` for k ≤ t, L2-normalised (S̃); target the rest of the
  history, ``y_t[i_k] = exp(−(k−t−1)/δ_train)`` for k > t (T): ‖T − S̃B‖².

SLIST minimises ``α‖W^½(X − X̃B)‖² + (1−α)‖W^½(T − S̃B)‖² + λ‖B‖²``, whose closed form is

    B = (ZᵀWZ + λI)⁻¹ ZᵀWY,   Z = [√α X̃; √(1−α) S̃],   Y = [√α X; √(1−α) T],

W weighing every row by its user's recency, ``w_u = exp((t_u − t_max)/δ_session)`` (t_u the user's
last training time, t_max the log's, δ_session in days; 0: every row weighs 1). A user is scored
from their history with the latest items emphasised (the paper's inference weighting):

    score(u) = Σ_k exp(−(L−1−k)/δ_pred) · B[i_k, :]     (δ_pred = 0: the binary history).

What differs from the paper (and its reference code): the SLIT rows keep only the ``W`` positions
nearest to t on each side, W = ⌈δ_train · ln 1000⌉ (weights below 10⁻³ are dropped; the reference
keeps whole sessions, O(L²) entries per history, too many for users with hundreds of items); no
diagonal constraint is imposed (as the reference code for α < 1; the paper's SLIS alone constrains
diag(B) ≤ ξ). Settings left as None are chosen on validation data (a grid over α, λ, δ_train and
δ_pred; δ_pred only re-scores, so it costs no refit).
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import HistoryScored, Validator
from penchant.models.linear import CELL_BYTES_SELECTING, gram_matrix, spd_inverse
from penchant.models.registry import register
from penchant.models.search import Float, select_on_validation

ALPHA_GRID = (0.25, 0.5, 0.75, 1.0)
LAMBDA_GRID = (2.0, 8.0, 32.0, 128.0)
TRAIN_DECAY_GRID = (1.0, 4.0, 8.0)
PREDICT_DECAY_GRID = (0.0, 2.0, 8.0, 32.0)
DEFAULTS = {"alpha": 0.5, "lam": 8.0, "train_decay": 4.0, "predict_decay": 8.0}
SECONDS_PER_DAY = 86_400.0


def _ranges(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``rows`` of a CSR-like ``indptr``: (row number of each entry, entry's offset in its row,
    entry's global index), int64, one element per entry of the chosen rows, in row order."""
    lengths = indptr[rows + 1] - indptr[rows]
    which = np.repeat(np.arange(len(rows)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return which, offset, indptr[rows][which] + offset


def l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty); a new CSR of the same shape."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ m).tocsr()


def transition_rows(indptr: np.ndarray, items: np.ndarray, n_items: int, decay: float,
                    window: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """SLIT's partial-history inputs and their targets.

    ``indptr`` (n_users + 1,), ``items`` (n,): each user's history in time order. One row per
    position t < L−1 of each history: input entries ``exp(−(t−k)/decay)`` for the ``window`` items
    k ≤ t nearest t, target entries ``exp(−(k−t−1)/decay)`` for the ``window`` items after t.
    Returns (S, T), float64 CSR (n_rows, n_items) (repeated items summed), and each row's user (n_rows,).
    """
    lengths = np.diff(indptr)
    user = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(items)) - indptr[user]
    at = np.flatnonzero(pos < lengths[user] - 1)  # the positions that start a row
    n_rows = len(at)
    parts: dict[str, list[np.ndarray]] = {"ir": [], "ic": [], "iv": [], "tr": [], "tc": [], "tv": []}
    rows = np.arange(n_rows)
    for k in range(window):  # offsets, not interactions: window ≤ a few dozen steps
        back = pos[at] >= k
        parts["ir"].append(rows[back]), parts["ic"].append(items[at[back] - k])
        parts["iv"].append(np.full(int(back.sum()), math.exp(-k / decay)))
        ahead = pos[at] + k + 1 <= lengths[user[at]] - 1
        parts["tr"].append(rows[ahead]), parts["tc"].append(items[at[ahead] + k + 1])
        parts["tv"].append(np.full(int(ahead.sum()), math.exp(-k / decay)))
    s = sp.csr_matrix((np.concatenate(parts["iv"]), (np.concatenate(parts["ir"]), np.concatenate(parts["ic"]))),
                      shape=(n_rows, n_items))
    t = sp.csr_matrix((np.concatenate(parts["tv"]), (np.concatenate(parts["tr"]), np.concatenate(parts["tc"]))),
                      shape=(n_rows, n_items))
    return s, t, user[at]


@register
class SLIST(HistoryScored):
    """Session-aware linear item similarity/transition model (Choi et al. 2021) on user histories.

    Args:
        alpha: weight α of the similarity objective (1 − α: the transition one), in [0, 1] (1: SLIS
            alone, 0: SLIT alone). None: chosen on validation data (0.25, 0.5, 0.75, 1), else 0.5.
        lam: L2 regularisation λ. None: chosen on validation data (2, 8, 32, 128), else 8.
        train_decay: δ_train, in positions, of the transition rows' weights. None: chosen (1, 4, 8), else 4.
        predict_decay: δ_pred, in positions, of the scoring history's weights; 0 scores the binary
            history. None: chosen on validation data (0, 2, 8, 32), else 8.
        session_decay: δ_session in days, each user's rows weighted by the recency of their last
            training event; 0 (default): every row weighs 1.
    """

    name = "slist"
    summary = "SLIST (Choi et al. 2021): item similarity + transition linear model, latest items emphasised"
    search_space: ClassVar[dict[str, Float]] = {"alpha": Float(0.0, 1.0), "lam": Float(0.1, 1000.0, log=True),
                    "train_decay": Float(0.5, 32.0, log=True), "predict_decay": Float(0.0, 64.0)}

    weights_: np.ndarray | None = None

    def __init__(self, *, alpha: float | None = None, lam: float | None = None, train_decay: float | None = None,
                 predict_decay: float | None = None, session_decay: float = 0.0) -> None:
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError("model 'slist': alpha must be in [0, 1]")
        if lam is not None and lam <= 0:
            raise ConfigError("model 'slist': lam must be positive")
        if train_decay is not None and train_decay <= 0:
            raise ConfigError("model 'slist': train_decay must be positive")
        if (predict_decay is not None and predict_decay < 0) or session_decay < 0:
            raise ConfigError("model 'slist': predict_decay and session_decay must be ≥ 0 (0: off)")
        self.alpha, self.lam, self.train_decay = alpha, lam, train_decay
        self.predict_decay, self.session_decay = predict_decay, session_decay

    # ----- fit -------------------------------------------------------------------------------------
    def _candidates(self) -> list[dict[str, float]]:
        axes = {"alpha": ALPHA_GRID, "train_decay": TRAIN_DECAY_GRID, "lam": LAMBDA_GRID,
                "predict_decay": PREDICT_DECAY_GRID}
        fixed = {k: getattr(self, k) for k in axes if getattr(self, k) is not None}
        grids = {k: (fixed[k],) if k in fixed else v for k, v in axes.items()}
        out = [dict(zip(grids, values, strict=True)) for values in itertools.product(*grids.values())]
        # α = 1 has no transition rows: δ_train changes nothing there
        return [c for c in out if c["alpha"] < 1 or c["train_decay"] == grids["train_decay"][0]]

    def memory_need(self, train: Dataset, valid: Validator | None) -> tuple[int, str, tuple[str, ...]]:
        what = f"dense {train.n_items:,} × {train.n_items:,} item matrices (two float64 Grams, an inverse, the weights)"
        return train.n_items ** 2 * (CELL_BYTES_SELECTING + 16) + (256 << 20), what, ("ease", "rp3beta", "itemknn")

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.seq_indptr_, items = train.sequences()
        self.seq_items_ = items.astype(np.int64)
        n_items = train.n_items
        x = (train.csr > 0).astype(np.float64).tocsr()
        x_in = l2_rows(x)
        user_w = np.ones(train.n_users)
        if self.session_decay > 0 and train.timestamps is not None:
            last = np.full(train.n_users, -np.inf)
            np.maximum.at(last, train.users, train.timestamps)
            user_w = np.exp(np.minimum(last - train.timestamps.max(), 0.0) / (self.session_decay * SECONDS_PER_DAY))
        systems: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}

        def system(alpha: float, decay: float) -> tuple[np.ndarray, np.ndarray]:
            """(ZᵀWZ, ZᵀWY), float64 (n_items, n_items) each."""
            if (alpha, decay) not in systems:
                systems.clear()  # candidates come grouped: one pair of dense matrices at a time
                wx = sp.diags(alpha * user_w) @ x_in
                gram, rhs = gram_matrix(wx, x_in), gram_matrix(wx, x)
                if alpha < 1:
                    s, t, owner = transition_rows(self.seq_indptr_, self.seq_items_, n_items, decay,
                                                  max(1, math.ceil(decay * math.log(1000.0))))
                    s = l2_rows(s)
                    ws = sp.diags((1 - alpha) * user_w[owner]) @ s
                    gram += gram_matrix(ws, s)
                    rhs += gram_matrix(ws, t)
                systems[alpha, decay] = (gram, rhs)
            return systems[alpha, decay]

        solved: dict[tuple[float, float, float], np.ndarray] = {}

        def weights(setting: dict[str, float]) -> np.ndarray:
            self.chosen_ = setting  # the scoring decay is read from the setting being tried
            key = (setting["alpha"], setting["train_decay"], setting["lam"])
            if key not in solved:
                solved.clear()
                gram, rhs = system(setting["alpha"], setting["train_decay"])
                g = gram.copy()
                g[np.diag_indices_from(g)] += setting["lam"]
                p = spd_inverse(g)
                del g
                solved[key] = np.asarray(p @ rhs, dtype=np.float32, order="C")
            return solved[key]

        candidates = self._candidates()
        if valid is None or len(candidates) == 1:
            fixed = {k: v for k, v in self.params().items() if k in DEFAULTS and v is not None}
            chosen = candidates[0] if len(candidates) == 1 else {**DEFAULTS, **fixed}
            self.weights_ = weights(chosen)
        else:
            chosen = select_on_validation(self, candidates, weights, valid)
        self.chosen_ = chosen

    def selected(self) -> dict[str, float]:
        fixed = {k for k, v in self.params().items() if v is not None}
        return {k: v for k, v in getattr(self, "chosen_", {}).items() if k not in fixed}

    # ----- scores ----------------------------------------------------------------------------------
    def _history_rows(self, users: np.ndarray) -> sp.csr_matrix:
        """Each user's history weighted by recency, exp(−(L−1−k)/δ_pred) (1 when δ_pred = 0); CSR (n, n_items)."""
        which, offset, index = _ranges(self.seq_indptr_, np.asarray(users, dtype=np.int64))
        lengths = np.diff(self.seq_indptr_)[users]
        return self._decayed(which, offset, lengths, self.seq_items_[index], len(users))

    def _decayed(self, which: np.ndarray, offset: np.ndarray, lengths: np.ndarray, items: np.ndarray,
                 n: int) -> sp.csr_matrix:
        decay = float(self.chosen_["predict_decay"])
        back = (lengths[which] - 1 - offset).astype(np.float64)
        w = np.exp(-back / decay) if decay > 0 else np.ones(len(items))
        return sp.csr_matrix((w, (which, items)), shape=(n, self.n_items_))

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._score_rows(self._history_rows(users))

    def _score_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        assert self.weights_ is not None
        return np.asarray(rows @ self.weights_, dtype=np.float32)

    def score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Scores of every item, float32 (n_items,), for a user known only by ``items`` (indices, oldest
        first: the order sets the recency weights; values are not used); the model is unchanged."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        n = len(items)
        row = self._decayed(np.zeros(n, np.int64), np.arange(n), np.array([n]), items, 1)
        return self._score_rows(row)[0]

    # ----- new events ------------------------------------------------------------------------------
    def partial_fit(self, events: Dataset) -> SLIST:
        """Append ``events`` (time-ordered per user) to their users' histories, after what each had."""
        ev = self._on_vocabulary(events)
        self._add_seen(ev)
        order = ev.time_order()
        old_user = np.repeat(np.arange(self.n_users_), np.diff(self.seq_indptr_))
        user = np.concatenate([old_user, ev.users[order].astype(np.int64)])
        items = np.concatenate([self.seq_items_, ev.items[order].astype(np.int64)])
        after = np.concatenate([np.zeros(len(old_user)), np.ones(len(order))])
        keep = np.lexsort((np.arange(len(user)), after, user))
        self.seq_items_ = items[keep]
        self.seq_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=self.n_users_))])
        return self

    def _grow_users(self, n: int) -> None:
        super()._grow_users(n)
        self.seq_indptr_ = np.concatenate([self.seq_indptr_, np.full(n, self.seq_indptr_[-1])])

    # ----- persistence -----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        assert self.weights_ is not None
        chosen = np.array([self.chosen_[k] for k in DEFAULTS], dtype=np.float64)
        return {"weights": self.weights_, "seq_indptr": self.seq_indptr_, "seq_items": self.seq_items_, "chosen": chosen}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.ascontiguousarray(arrays["weights"])
        self.seq_indptr_ = np.asarray(arrays["seq_indptr"], dtype=np.int64)
        self.seq_items_ = np.asarray(arrays["seq_items"], dtype=np.int64)
        self.chosen_ = dict(zip(DEFAULTS, (float(v) for v in arrays["chosen"]), strict=True))
