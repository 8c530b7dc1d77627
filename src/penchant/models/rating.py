"""Rating prediction for explicit feedback: biased MF and a factorisation machine with side features.

Both predict ``r̂_ui`` for any (user, item) pair and rank items by it. They are trained on the
ratings by minimising squared error over mini-batches (lazy Adam: a step updates the rows of the
users, items and features in its batch only), with early stopping on the validation RMSE when a
validator is given.

* ``biasedmf``: ``r̂ = μ + b_u + b_i + p_u · q_i`` (Koren, Bell & Volinsky 2009).
* ``fm``: a second-order factorisation machine (Rendle 2010) over one-hot user and item ids plus
  categorical user features (age, gender, occupation…) and item features (genres, year…):
  ``r̂ = w₀ + Σ_j w_j x_j + Σ_{j<k} ⟨v_j, v_k⟩ x_j x_k``. Since every feature belongs to the user
  or the item, it is computed as ``w₀ + lin_u + lin_i + s_u·s_i + self_u + self_i`` with
  ``s_u = Σ_{j∈user} v_j x_j`` — linear in the number of features. A user with no ratings is
  served from their features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError, DataError
from penchant.models.base import Recommender, Validator
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.training import (
    EarlyStopping,
    blas_single_threaded,
    check_device,
    seed_torch,
    torch_device,
    torch_single_threaded,
)


class RatingModel(Recommender):
    """A model that predicts ratings; ``score`` ranks items by the predicted rating."""

    family = "rating"
    task = "rating"

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, float32 (n,), for the pairs ``(users[k], items[k])``."""
        self._check_fitted()
        return self._predict_pairs(np.asarray(users, np.int64), np.asarray(items, np.int64))

    # Every rating model here exports r̂ = w0 + lu[u] + li[i] + su[u]·si[i] into ``state_``.
    state_: dict[str, np.ndarray] | None = None
    STATE_KEYS = ("w0", "lu", "li", "su", "si")

    def _snapshot(self) -> dict[str, np.ndarray]:
        assert self.state_ is not None
        return {k: v.copy() for k, v in self.state_.items()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.state_ = state

    def selected(self) -> dict[str, int]:
        return {"epochs": self.best_epoch_} if getattr(self, "best_epoch_", None) else {}

    def diagnostics(self) -> dict[str, Any]:
        """Figures about how the predictions were made (e.g. a language model's requests), for reports."""
        return {}

    def check_data(self, train: Dataset) -> None:
        _ratings_present(train)

    def _predict_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        s = self.state_
        assert s is not None
        return (s["w0"] + s["lu"][users] + s["li"][items] + (s["su"][users] * s["si"][items]).sum(1)).astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        s = self.state_
        assert s is not None
        return (s["w0"] + s["lu"][users][:, None] + s["li"][None, :] + s["su"][users] @ s["si"].T).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.state_ is not None
        return {k: np.asarray(v) for k, v in self.state_.items()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.state_ = {k: arrays[k] for k in self.STATE_KEYS}


def _ratings_present(train: Dataset) -> None:
    if train.ratings is None:
        raise DataError(f"{train.name} has no ratings; rating models need explicit feedback",
                        expected="a rating column (and no --min-rating)")


def _ratings(train: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _ratings_present(train)
    return train.users.astype(np.int64), train.items.astype(np.int64), train.ratings.astype(np.float32)


def _rows(table, index):
    """Rows ``table[index]`` whose gradient is sparse: only the rows a batch touches get updated."""
    import torch

    return torch.nn.functional.embedding(index, table, sparse=True)


@blas_single_threaded
@torch_single_threaded()  # a step of 1,024 ratings is too small to split: one thread is the faster (docs/benchmarks.md)
def _train_squared_error(model, tables, scalars, forward, train: Dataset, valid: Validator | None, dev) -> None:
    """Adam on mean squared error over shuffled mini-batches of ratings (each moved to ``dev`` as it
    is used), early-stopped on valid.

    ``tables`` are per-user, per-item or per-feature parameters read through :func:`_rows`: they
    step by lazy Adam (``torch.optim.SparseAdam``: the moments and values of the rows in the batch
    only), so a step costs the batch's rows, not the whole table — at 138k users and 27k items a
    dense Adam step over every row took ≈ 60 ms for 1,024 ratings. ``scalars`` (the global bias)
    step by Adam.
    """
    import torch

    users, items, ratings = _ratings(train)
    rng = np.random.default_rng(model.seed)
    opts = [torch.optim.SparseAdam(tables, lr=model.lr), torch.optim.Adam(scalars, lr=model.lr)]
    stopper = EarlyStopping(model.patience, epochs=model.epochs)
    for epoch in range(1, model.epochs + 1):
        order = rng.permutation(len(ratings))
        for s in range(0, len(order), model.batch_size):
            sel = order[s:s + model.batch_size]
            pred, penalty = forward(users[sel], items[sel])
            loss = (pred - torch.from_numpy(ratings[sel]).to(dev)).pow(2).mean() + model.reg * penalty / len(sel)
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            for opt in opts:
                opt.step()
        if valid is not None and epoch % model.eval_every == 0:
            model._export()
            if stopper.update(epoch, valid(model), model._snapshot):
                break
    if not stopper.restore_best(model):
        model._export()


@register
class BiasedMF(RatingModel):
    """Matrix factorisation with global, user and item biases, for explicit ratings.

    Args:
        factors: latent dimensions.
        lr: learning rate of lazy Adam (a step moves the rows of its batch only).
        reg: L2 weight on the factors and biases of each batch.
        epochs: maximum epochs.
        batch_size: ratings per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation and shuffling.
        device: auto (CUDA when torch sees one), cpu or cuda; batches of ratings move there one at a time.
    """

    name = "biasedmf"
    summary = "biased matrix factorisation for rating prediction (torch)"
    search_space = {"factors": Int(8, 256, log=True), "lr": Float(2e-4, 1e-2, log=True), "reg": Float(0.01, 0.5, log=True)}

    def __init__(self, *, factors: int = 64, lr: float = 0.001, reg: float = 0.1, epochs: int = 200,
                 batch_size: int = 1024, patience: int = 5, eval_every: int = 2, seed: int = DEFAULT_SEED,
                 device: str = "auto") -> None:
        if factors < 1 or lr <= 0 or reg < 0:
            raise ConfigError("factors ≥ 1, lr > 0 and reg ≥ 0 are required")
        self.factors, self.lr, self.reg, self.epochs = factors, lr, reg, epochs
        self.batch_size, self.patience, self.eval_every, self.seed = batch_size, patience, eval_every, seed
        self.device = check_device(device)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        dev = torch_device(self.device)
        _, _, ratings = _ratings(train)
        self._t = {k: torch.nn.Parameter(v.to(dev)) for k, v in {
            "mu": torch.tensor(float(ratings.mean())),
            "bu": torch.zeros(train.n_users, 1),
            "bi": torch.zeros(train.n_items, 1),
            "p": torch.randn(train.n_users, self.factors) * 0.01,
            "q": torch.randn(train.n_items, self.factors) * 0.01,
        }.items()}
        t = self._t

        def forward(users, items):
            u, i = torch.from_numpy(users).to(dev), torch.from_numpy(items).to(dev)
            pu, qi, bu, bi = _rows(t["p"], u), _rows(t["q"], i), _rows(t["bu"], u)[:, 0], _rows(t["bi"], i)[:, 0]
            pred = t["mu"] + bu + bi + (pu * qi).sum(1)
            return pred, pu.pow(2).sum() + qi.pow(2).sum() + bu.pow(2).sum() + bi.pow(2).sum()

        _train_squared_error(self, [t[k] for k in ("bu", "bi", "p", "q")], [t["mu"]], forward, train, valid, dev)
        del self._t

    def _export(self) -> None:
        t = {k: v.detach().cpu().numpy().copy() for k, v in self._t.items()}
        self.state_ = {"w0": t["mu"], "lu": t["bu"][:, 0], "li": t["bi"][:, 0], "su": t["p"], "si": t["q"]}


def feature_matrix(attrs: dict, names: list[str], n: int, with_id: bool) -> sp.csr_matrix:
    """CSR (n, F): one-hot id (optional) then each named attribute, rows normalised per attribute.

    A multi-valued attribute (genres) spreads weight 1 over its values, so every attribute
    contributes equally whatever the number of values.
    """
    blocks = [sp.identity(n, format="csr", dtype=np.float32)] if with_id else []
    for name in names:
        m = attrs[name].matrix.astype(np.float32)
        counts = np.asarray(m.sum(axis=1)).ravel()
        blocks.append((sp.diags(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)) @ m).tocsr())
    return sp.hstack(blocks, format="csr", dtype=np.float32) if blocks else sp.csr_matrix((n, 0), dtype=np.float32)


def _resolve(spec: str, available: dict, defaults: tuple[str, ...]) -> list[str]:
    if spec == "auto":
        return [a for a in defaults if a in available]
    if spec in ("", "none"):
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in available:
            raise ConfigError(f"no attribute {n!r}; available: {', '.join(available) or 'none'}")
    return names


@register
class FM(RatingModel):
    """Second-order factorisation machine over user/item ids and their categorical features.

    Args:
        factors: latent dimensions of each feature.
        user_features: comma-separated user attributes, "auto" (age, gender, occupation when
            present) or "none".
        item_features: comma-separated item attributes, "auto" (genre/class, release_year) or "none".
        lr: learning rate of lazy Adam (a step moves the rows of its batch only).
        reg: L2 weight on the latent vectors and weights used by each batch.
        epochs: maximum epochs.
        batch_size: ratings per step.
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation and shuffling.
        device: auto (CUDA when torch sees one), cpu or cuda; batches of ratings move there one at a time.
    """

    name = "fm"
    summary = "factorisation machine with user and item side features (rating prediction, cold-start users)"
    search_space = {"factors": Int(8, 256, log=True), "lr": Float(2e-4, 1e-2, log=True), "reg": Float(0.01, 0.5, log=True)}

    def __init__(self, *, factors: int = 128, user_features: str = "auto", item_features: str = "auto",
                 lr: float = 0.001, reg: float = 0.1, epochs: int = 200, batch_size: int = 1024, patience: int = 5,
                 eval_every: int = 2, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if factors < 1 or lr <= 0 or reg < 0:
            raise ConfigError("factors ≥ 1, lr > 0 and reg ≥ 0 are required")
        self.factors, self.user_features, self.item_features = factors, user_features, item_features
        self.lr, self.reg, self.epochs, self.batch_size = lr, reg, epochs, batch_size
        self.patience, self.eval_every, self.seed = patience, eval_every, seed
        self.device = check_device(device)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        dev = torch_device(self.device)
        _, _, ratings = _ratings(train)
        ufeat = feature_matrix(train.user_attributes, _resolve(self.user_features, train.user_attributes,
                                                               ("age", "gender", "occupation")), train.n_users, True)
        ifeat = feature_matrix(train.item_attributes, _resolve(self.item_features, train.item_attributes,
                                                               ("genre", "class", "release_year")), train.n_items, True)
        self.user_x_, self.item_x_ = ufeat, ifeat

        def sparse(m: sp.csr_matrix):
            c = m.tocoo()
            idx = torch.from_numpy(np.vstack([c.row, c.col]).astype(np.int64))
            return torch.sparse_coo_tensor(idx, torch.from_numpy(c.data), c.shape, check_invariants=True).coalesce().to(dev)

        xu, xi = sparse(ufeat), sparse(ifeat)
        xu2, xi2 = sparse(ufeat.multiply(ufeat).tocsr()), sparse(ifeat.multiply(ifeat).tocsr())
        t = self._t = {k: torch.nn.Parameter(v.to(dev)) for k, v in {
            "w0": torch.tensor(float(ratings.mean())),
            "wu": torch.zeros(ufeat.shape[1], 1),
            "wi": torch.zeros(ifeat.shape[1], 1),
            "vu": torch.randn(ufeat.shape[1], self.factors) * 0.01,
            "vi": torch.randn(ifeat.shape[1], self.factors) * 0.01,
        }.items()}
        self._sides = lambda: (self._side(xu, xu2, t["wu"], t["vu"]), self._side(xi, xi2, t["wi"], t["vi"]))

        def forward(users, items):
            lu, su, selfu = self._batch_side(ufeat, users, t["wu"], t["vu"], dev)
            li, si, selfi = self._batch_side(ifeat, items, t["wi"], t["vi"], dev)
            pred = t["w0"] + lu + li + (su * si).sum(1) + selfu + selfi
            return pred, su.pow(2).sum() + si.pow(2).sum() + lu.pow(2).sum() + li.pow(2).sum()

        _train_squared_error(self, [t[k] for k in ("wu", "wi", "vu", "vi")], [t["w0"]], forward, train, valid, dev)
        del self._t, self._sides

    @staticmethod
    def _batch_side(x: sp.csr_matrix, rows: np.ndarray, w, v, dev):
        """:meth:`_side` for the batch's rows (B,) of ``x`` only, with sparse gradients on w and v."""
        import torch

        sub = x[rows]  # the batch's rows, repeats kept, in order
        seg = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
        idx, val = (torch.from_numpy(a).to(dev) for a in (sub.indices.astype(np.int64), sub.data))
        seg_t = torch.from_numpy(seg).to(dev)
        xv = _rows(v, idx) * val[:, None]  # (nnz, d): x_j v_j
        s = torch.zeros(len(rows), v.shape[1], device=dev).index_add(0, seg_t, xv)
        squares = torch.zeros(len(rows), device=dev).index_add(0, seg_t, xv.pow(2).sum(1))
        linear = torch.zeros(len(rows), device=dev).index_add(0, seg_t, _rows(w, idx)[:, 0] * val)
        return linear, s, 0.5 * (s.pow(2).sum(1) - squares)

    @staticmethod
    def _side(x, x2, w, v):
        """Per entity: linear term (n,), summed latent vector s (n, d), and within-side pairs (n,)."""
        import torch

        s = torch.sparse.mm(x, v)
        self_pairs = 0.5 * (s.pow(2).sum(1) - torch.sparse.mm(x2, v.pow(2)).sum(1))
        return torch.sparse.mm(x, w).squeeze(1), s, self_pairs

    def _export(self) -> None:
        import torch

        with torch.no_grad():
            (lu, su, selfu), (li, si, selfi) = self._sides()
        self.state_ = {k: v.detach().cpu().numpy().copy() for k, v in
                       {"w0": self._t["w0"], "lu": lu + selfu, "li": li + selfi, "su": su, "si": si}.items()}
