"""The field's CTR models (DeepFM, DCN-V2), AW-MoE against its feature-gated MoE, and LightGBM's
LambdaRank, each on a small world that plants what the model is for."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from penchant.data.ctr import assemble, synthetic_ctr
from penchant.errors import ConfigError, DataError
from penchant.eval.ctr import auc, gauc, ndcg_lists
from penchant.models.ctr.awmoe import AWMoE, MoE, moe_network
from penchant.models.ctr.base import CTRModel
from penchant.models.ctr.dcnv2 import DCNV2
from penchant.models.ctr.deepfm import DeepFM
from penchant.models.ctr.lambdarank import LambdaRank, platt
from penchant.models.ctr.lr import LogisticRegression
from penchant.models.registry import create

FAST = {"epochs": 10, "batch_size": 256, "lr": 3e-3, "device": "cpu"}


def _split(data, p):
    rows = np.random.default_rng(0).permutation(data.n)
    cut = (np.array([0.7, 0.8]) * data.n).astype(int)
    parts = np.split(rows, cut)
    return [data.subset(r) for r in parts], p[parts[2]]


@pytest.fixture(scope="module")
def crosses():
    """9,000 impressions whose click logit holds a strong segment × category cross (no one-hot weight fits it)."""
    data, p = synthetic_ctr(n_users=300, n_items=100, rows_per_user=30, interaction=3.0, seed=0)
    (train, valid, test), truth = _split(data, p)
    lr = LogisticRegression().fit(train, valid)
    return train, valid, test, truth, lr


@pytest.fixture(scope="module")
def fitted(crosses):
    train, valid, _, _, _ = crosses
    return {"deepfm": DeepFM(**FAST).fit(train, valid), "dcnv2": DCNV2(**FAST).fit(train, valid),
            "lambdarank": LambdaRank(trees=100).fit(train, valid)}


@pytest.mark.parametrize("name", ["deepfm", "dcnv2"])
def test_deep_models_learn_the_planted_cross_that_lr_cannot(crosses, fitted, name):
    _, _, test, truth, lr = crosses
    model, base = fitted[name].predict(test), lr.predict(test)
    assert auc(test.label, model) > auc(test.label, base) + 0.01
    assert np.abs(model - truth).mean() < np.abs(base - truth).mean() - 0.02  # nearer the true click probability


def test_dcnv2_stacked_and_low_rank_cross_layers_train(crosses):
    train, valid, test, _, lr = crosses
    model = DCNV2(structure="stacked", rank=8, **FAST).fit(train, valid)
    assert model.net_.cross[0].w[0].weight.shape == (8, model.net_.cross[0].w[1].out_features)
    assert auc(test.label, model.predict(test)) > auc(test.label, lr.predict(test))


def test_lambdarank_orders_each_users_list(crosses, fitted):
    _, _, test, _, lr = crosses
    score = fitted["lambdarank"].predict(test)
    random = np.random.default_rng(1).random(test.n)
    assert ndcg_lists(test.label, score, test.group)[0] > ndcg_lists(test.label, random, test.group)[0] + 0.1
    assert gauc(test.label, score, test.group).value > gauc(test.label, lr.predict(test), test.group).value
    assert ((score > 0) & (score < 1)).all()  # Platt-calibrated probabilities, not raw scores


def test_platt_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    s = rng.normal(size=20_000)
    y = rng.random(20_000) < 1 / (1 + np.exp(-(2.0 * s - 0.5)))
    a, b = platt(s, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-0.5, abs=0.1)


def _matching_world(n=6000, n_items=40, n_cat=5, length=8, seed=0):
    """Rows whose click depends only on whether the candidate's category is the one the row's
    history leans to (half its items from one category): no field, user or item, predicts it."""
    rng = np.random.default_rng(seed)
    category = np.arange(n_items) % n_cat
    lean = rng.integers(n_cat, size=n)
    members = np.stack([np.flatnonzero(category == c) for c in range(n_cat)])
    history = np.where(rng.random((n, length)) < 0.5,
                       members[lean[:, None], rng.integers(members.shape[1], size=(n, length))],
                       rng.integers(n_items, size=(n, length)))
    item = rng.integers(n_items, size=n)
    p = 1 / (1 + np.exp(-(-2.0 + 4.0 * (category[item] == lean))))
    label = (rng.random(n) < p).astype(np.float32)
    user = rng.integers(200, size=n)
    data = assemble(label, user, item, np.array([f"u{k}" for k in range(200)]),
                    np.array([f"i{k}" for k in range(n_items)]), user_fields={},
                    item_fields={"category": ([[f"c{c}"] for c in category], False)}, context={}, name="matching")
    return replace(data, history=history.astype(np.int64)), p


@pytest.fixture(scope="module")
def matching():
    data, _ = _matching_world()
    cut = [int(0.7 * data.n), int(0.8 * data.n)]
    train, valid, test = (data.subset(r) for r in np.split(np.arange(data.n), cut))
    settings = {**FAST, "epochs": 20, "lr": 5e-3, "hidden": "64", "patience": 5}
    return train, valid, test, AWMoE(**settings).fit(train, valid), MoE(**settings).fit(train, valid)


def test_awmoe_gate_reads_the_history_that_a_feature_gate_cannot(matching):
    _, _, test, awmoe, moe = matching
    assert auc(test.label, awmoe.predict(test)) > auc(test.label, moe.predict(test)) + 0.1
    # the same rows with another row's history: the gate (and the click) changes with the history
    shuffled = replace(test, history=test.history[np.random.default_rng(0).permutation(test.n)])
    assert auc(test.label, awmoe.predict(shuffled)) < 0.6


def test_contrastive_gradient_joins_the_click_loss():
    """_AddLoss passes the logits through and adds the InfoNCE term's gradient, exactly."""
    import torch

    torch.manual_seed(0)
    net = moe_network(20, 3, 0, 4, 2, (8,), 0.0, 8, 1, True, cl_weight=0.5, mask_rate=0.3)
    codes = torch.randint(0, 20, (16, 3))
    history = torch.randint(0, 21, (16, 5))
    dense = torch.zeros((16, 0))
    y = torch.randint(0, 2, (16,)).float()
    net.train()
    torch.manual_seed(1)
    torch.nn.functional.binary_cross_entropy_with_logits(net(codes, dense, history), y).backward()
    joined = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.eval()  # logits without the term, then the term by hand with the same masks
    logits = net(codes, dense, history)
    torch.manual_seed(1)
    v, seq, real, _ = net._inputs(codes, dense, history)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 0.5 * net._contrastive(net._votes(v, seq), real)
    loss.backward()
    for a, b in zip(joined, (p.grad for p in net.parameters())):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in joined[-4:])  # the gate's units got gradient


def test_save_load_gives_identical_predictions(crosses, fitted, matching, tmp_path):
    _, _, test, _, _ = crosses
    models = dict(fitted) | {"awmoe": matching[3], "moe": matching[4]}
    for name, model in models.items():
        data = matching[2] if name in ("awmoe", "moe") else test
        path = model.save(tmp_path / f"{name}.npz")
        loaded = CTRModel.load(path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_awmoe_refuses_data_without_history(crosses):
    train = crosses[0]
    with pytest.raises(DataError, match="history"):
        AWMoE(**FAST).fit(replace(train, history=None))


@pytest.mark.parametrize("name, params", [
    ("deepfm", {"hidden": "200,x"}), ("deepfm", {"dims": 0}), ("deepfm", {"dropout": 1.5}),
    ("dcnv2", {"structure": "diagonal"}), ("dcnv2", {"rank": -1}), ("dcnv2", {"epochs": 0}),
    ("awmoe", {"experts": 0}), ("awmoe", {"mask_rate": 1.0}), ("awmoe", {"temperature": 0}),
    ("moe", {"gate_hidden": 8}), ("lambdarank", {"trees": 0}), ("lambdarank", {"leaves": 1}),
    ("lambdarank", {"learning_rate": -0.1}),
])
def test_bad_parameters_are_config_errors(name, params):
    with pytest.raises(ConfigError, match=name):
        create(name, **params)


def test_serving_forward_in_numpy_equals_torch(crosses, fitted, tmp_path):
    """The per-request path (``logits``: numpy gathers and matmuls for DeepFM and FM) gives torch's
    logits to float32 rounding, also after a save and load, and the numpy path is the one taken."""
    train, valid, test, _, _ = crosses
    fm = create("ctr-fm", dims=8, epochs=2, device="cpu").fit(train, valid)
    assert test.dense.shape[1] > 0 or test.codes.shape[1] > len(test.fields)  # numbers or multi-valued padding read
    for model in (fitted["deepfm"], fm, CTRModel.load(fitted["deepfm"].save(tmp_path / "deepfm.npz"))):
        served = model.logits(test.codes, test.dense)
        assert model._forward_np is not None
        np.testing.assert_allclose(served, model.predict_logits(test), rtol=0, atol=1e-5)
        assert np.std(served) > 0.1  # a trained network, not a constant
