"""The CTR baselines: logistic regression and the factorisation machine, on a synthetic world with
a planted pairwise interaction (and known click probabilities), by hand, and saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.ctr import random_rows, synthetic_ctr
from penchant.errors import DataError
from penchant.eval.ctr import auc, log_loss
from penchant.models.ctr.base import CTRModel
from penchant.models.registry import create


@pytest.fixture(scope="module")
def world():
    data, p = synthetic_ctr(n_users=300, n_items=100, rows_per_user=40, seed=1)
    train, valid, test = random_rows(data, seed=1)
    order = np.random.default_rng(1).permutation(data.n)  # random_rows' draw: the test rows' true p
    p_test = p[np.sort(order[int(round(0.9 * data.n)):])]
    return train, valid, test, p_test


@pytest.fixture(scope="module")
def fitted(world):
    train, valid, _, _ = world
    return {"lr": create("lr").fit(train, valid), "ctr-fm": create("ctr-fm", dims=8, lr=0.01).fit(train, valid)}


def test_fm_beats_lr_where_a_pairwise_interaction_is_planted(world, fitted):
    _, _, test, p_true = world
    ceiling = auc(test.label, p_true)
    lr, fm = (fitted[k].predict(test) for k in ("lr", "ctr-fm"))
    a_lr, a_fm = auc(test.label, lr), auc(test.label, fm)
    assert a_fm > a_lr + 0.04  # LR has one weight per feature: it cannot express segment × category
    assert ceiling - 0.05 < a_fm < ceiling + 0.01 and ceiling - 0.15 < a_lr
    assert log_loss(test.label, fm) < log_loss(test.label, lr)


def test_early_stopping_keeps_the_best_validation_log_loss(world, fitted):
    _, valid, _, _ = world
    for model in fitted.values():
        assert model.best_epoch_ is not None and model.best_epoch_ >= 1
        assert log_loss(valid.label, model.predict(valid)) == pytest.approx(model.valid_log_loss_, abs=1e-5)


def test_fm_pairwise_term_is_rendles_sum_over_pairs():
    import torch

    from penchant.models.ctr.fm import fm_network

    torch.manual_seed(0)
    net = fm_network(n_features=7, n_dense=2, dims=3)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
        net.factor.weight[7].zero_()
        net.weight.weight[7].zero_()
    codes = torch.tensor([[0, 3, 5, 7], [1, 2, 7, 7]])  # 7 = padding
    dense = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    got = net(codes, dense, torch.zeros((2, 0), dtype=torch.int64)).detach().numpy()
    V, w = net.factor.weight.detach().numpy(), net.weight.weight.detach().numpy()[:, 0]
    Vd, wd, b = net.dense_factor.detach().numpy(), net.dense_weight.detach().numpy(), float(net.bias.detach())
    for r in range(2):
        xs = [(V[c], 1.0, w[c]) for c in codes[r].tolist() if c != 7] + [(Vd[j], float(dense[r, j]), wd[j]) for j in range(2)]
        want = b + sum(x * wj for _, x, wj in xs)
        want += sum(xs[i][0] @ xs[j][0] * xs[i][1] * xs[j][1] for i in range(len(xs)) for j in range(i + 1, len(xs)))
        assert got[r] == pytest.approx(want, rel=1e-5)


def test_lr_is_the_l2_logistic_regression(world):
    sk = pytest.importorskip("sklearn.linear_model")
    from penchant.models.ctr.lr import design_matrix

    train = world[0].subset(np.arange(3000))
    l2 = 1e-3
    mine = create("lr", l2=l2, max_iter=2000).fit(train)
    X = design_matrix(train)
    ref = sk.LogisticRegression(C=1 / (l2 * train.n), tol=1e-10, max_iter=5000).fit(X, train.label)
    assert np.abs(mine.weights_ - ref.coef_[0]).max() < 2e-3 and mine.bias_ == pytest.approx(ref.intercept_[0], abs=2e-3)


@pytest.mark.parametrize("name", ["lr", "ctr-fm"])
def test_save_load_round_trip(world, fitted, tmp_path, name):
    _, _, test, _ = world
    model = fitted[name]
    path = model.save(tmp_path / f"{name}.npz")
    back = CTRModel.load(path)
    assert type(back) is type(model) and back.params() == model.params()
    assert np.allclose(back.predict(test), model.predict(test), atol=1e-6)
    assert back.vocabulary_.fields == test.fields and back.best_epoch_ == model.best_epoch_
    codes, _ = back.vocabulary_.encode({f: [test.vocabulary.values[k][0]] for k, f in enumerate(test.fields)} |
                                       {"activity": [0.0], "price": [1.0]})
    assert codes.shape == (1, test.codes.shape[1])


def test_data_of_another_vocabulary_is_refused(fitted):
    other, _ = synthetic_ctr(n_users=20, n_items=30, rows_per_user=5, seed=2)
    with pytest.raises(DataError, match="not encoded with the vocabulary"):
        fitted["lr"].predict(other)
