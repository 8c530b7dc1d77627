"""gBCE / BCE for SASRec and GRU4Rec: the learned logit offset that absolute losses need.

BCE-type losses judge each score on its own (σ(s)), so a model must place every negative's logit
near log(β/k) (−5 here, −6.6 for k = 256 on ML-100K). Without an offset to carry that, GRU4Rec
drove its GRU into saturation to reach it and its scores lost the history: on ML-100K its
gBCE rankings were the same for every user (valid NDCG@10 0.038 against the softmax's 0.106).
"""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.models import create


def cycles(n_users: int = 200, n_items: int = 100, length: int = 16, seed: int = 0) -> Dataset:
    """Each user walks i → i+1 (mod n_items) from a random start: the next item is certain."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    items = ((starts[:, None] + np.arange(length)[None]) % n_items).ravel().astype(np.int32)
    users = np.repeat(np.arange(n_users), length).astype(np.int32)
    times = np.tile(np.arange(length, dtype=np.float64), n_users)
    return Dataset(np.array([f"u{k}" for k in range(n_users)], dtype=object),
                   np.array([f"i{k}" for k in range(n_items)], dtype=object), users, items, timestamps=times)


PARAMS = {"loss": "gbce", "negatives": 64, "gbce_t": 0.75, "epochs": 12, "max_len": 8, "factors": 32,
          "dropout": 0.0, "lr": 5e-3, "seed": 3}


def successor_accuracy(model) -> float:
    sessions = [[(s + t) % 100 for t in range(4)] for s in range(100)]
    top = model.recommend_sessions(sessions, k=1)[0][:, 0]
    return float(np.mean(top == (np.arange(100) + 4) % 100))


@pytest.fixture(scope="module")
def data() -> Dataset:
    return cycles()


@pytest.fixture(scope="module")
def gbce(data):
    """GRU4Rec with gBCE and its learned offset, fitted once for the module."""
    return create("gru4rec", **PARAMS).fit(data)


def test_the_offset_starts_where_a_constant_logit_loses_least():
    """b = log(β/k) zeroes the gradient of the gBCE of one positive and k negatives all at logit b."""
    import torch

    from penchant.models.sequential.neural import gbce_loss

    model = create("gru4rec", loss="gbce", negatives=64, gbce_t=0.75)
    model.n_items_, model.warm_ = 100, None
    beta = model._gbce_beta(100)  # α = 64/99, β = α(t(1 − 1/α) + 1/α)
    alpha = 64 / 99
    assert beta == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    b = torch.tensor(model._base_logit(), dtype=torch.float64, requires_grad=True)
    assert float(b) == pytest.approx(np.log(beta / 64), rel=1e-6)
    gbce_loss(b[None], b.expand(1, 64), torch.zeros(1, 64, dtype=torch.bool), beta).backward()
    assert abs(float(b.grad)) < 1e-12
    assert create("sasrec", loss="bce")._base_logit() == 0.0  # one negative, β = 1: log(1/1)


def test_gbce_learns_a_planted_successor_with_the_offset(gbce):
    """With the offset gBCE learns the certain successor; with it frozen at 0 (the old trainer)
    the same 12 epochs leave it at chance (measured: 0.90 against 0.01; 1.00 against 0.01 at 20 epochs)."""
    assert successor_accuracy(gbce) >= 0.8
    assert float(gbce.net_.logit_bias) < -2  # learned near the negatives' level (measured −4.6; log(β/k) = −4.9)


def test_gbce_trains_near_the_full_softmax_it_samples_for(data, gbce):
    """gSASRec's claim against its baseline, on the planted successor: the same GRU4Rec, epochs and
    seed with the full softmax (measured over seeds 3, 4, 5: ce 0.97, 0.91, 0.97; gBCE 0.90, 0.86, 0.95).
    gBCE comes within 0.1 of it here; on ML-100K only in some settings (docs/benchmarks.md)."""
    ce = successor_accuracy(create("gru4rec", **(PARAMS | {"loss": "ce"})).fit(data))
    ours = successor_accuracy(gbce)
    assert ce >= 0.9 and ours >= ce - 0.1, (ce, ours)


def test_without_the_offset_gbce_falls_behind(data, monkeypatch):
    """The defect the offset fixes, kept visible: frozen at 0, the same fit does not learn the successor."""
    import torch

    from penchant.models.sequential import neural

    build = neural.NeuralSequential._build_net

    def frozen(self):
        net = build(self)
        del net.logit_bias
        net.register_buffer("logit_bias", torch.zeros(()))
        return net

    monkeypatch.setattr(neural.NeuralSequential, "_build_net", frozen)
    assert successor_accuracy(create("gru4rec", **PARAMS).fit(data)) < 0.5
