"""The reward-model half of "Secrets of RLHF II": SimCSE on the pair's difference representation
and MetaRM's meta-process (penchant.models.preference.contrastive / .metarm), on planted feature
vectors (no MiniLM)."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.func import functional_call

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference import create_preference
from penchant.models.preference.contrastive import pair_contrast, reward_net, simcse_loss
from penchant.models.preference.metarm import adapted_params, difference_objective, meta_loss
from penchant.models.preference.train import pair_loss


def test_simcse_loss_by_hand():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # cosine: row 0 (1, 0), row 1 (1/√2, 1/√2)
    # τ = 0.5: anchor 0 sees similarities (2, √2), positive 2; anchor 1 sees (0, √2), positive √2
    expected = (math.log1p(math.exp(math.sqrt(2) - 2)) + math.log1p(math.exp(-math.sqrt(2)))) / 2
    assert float(simcse_loss(z1, z2, 0.5)) == pytest.approx(expected, rel=1e-6)
    assert float(simcse_loss(z1[:1], z2[:1], 0.5)) == pytest.approx(0.0, abs=1e-7)  # no negatives, no loss


def test_pair_contrast_reads_the_difference_of_chosen_and_rejected():
    table = torch.tensor([[1.0, 0.0], [3.0, 5.0], [0.0, 0.0], [3.0, 4.0]])

    def net(options, represent):  # a deterministic "network": both views alike
        return table[options]

    value = pair_contrast(net, torch.tensor([0, 1]), torch.tensor([2, 3]), 0.5)
    # differences (1, 0) and (0, 1): orthogonal, so each anchor's loss is log(1 + e^(0 − 1/τ))
    assert float(value) == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(4, 3))
    return reward_net(4, x, hidden=5, dropout=0.0)


def test_inner_step_ascends_the_difference_objective(tiny_net):
    module = tiny_net
    params = dict(module.named_parameters())
    a, b = torch.tensor([0, 2]), torch.tensor([1, 3])

    def spread(p):
        with torch.no_grad():
            ra, rb = functional_call(module, p, (a,)), functional_call(module, p, (b,))
            return float(difference_objective(ra, rb)), float((ra - rb).abs().mean())

    eta = 0.5
    adapted = adapted_params(module, params, a, b, eta, second_order=False)
    # the step is η ∇J: check one weight against a central finite difference of J
    h = 1e-3

    def bumped(by):
        out = {k: v.detach().clone() for k, v in params.items()}
        out["encode.weight"][0, 1] += by
        return out

    numeric = (spread(bumped(h))[0] - spread(bumped(-h))[0]) / (2 * h)
    step = float((adapted["encode.weight"][0, 1] - params["encode.weight"][0, 1]).detach())
    assert step == pytest.approx(eta * numeric, rel=1e-2, abs=1e-7) and abs(step) > 1e-5
    assert torch.allclose(adapted["head.bias"], params["head.bias"])  # a shared offset moves no difference
    before, after = spread(params), spread(adapted)
    assert after[0] > before[0] and after[1] > before[1]  # the rewards of the shifted replies move apart
    second = adapted_params(module, params, a, b, eta, second_order=True)
    assert all(torch.allclose(second[k], adapted[k]) for k in params)  # same θ', only the gradient differs


def test_first_order_meta_gradient_is_the_bt_gradient_at_the_adapted_weights(tiny_net):
    module = tiny_net
    w, l, a, b = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0, 2]), torch.tensor([1, 3])
    grads = {}
    for order in ("first", "second"):
        model = SimpleNamespace(meta_lr=0.5, meta_order=order, loss="plain", epsilon=0.0, contrastive=0.0)
        module.zero_grad()
        meta_loss(model, module, w, l, a, b).backward()
        grads[order] = {k: p.grad.clone() for k, p in module.named_parameters()}
    adapted = {k: v.detach().requires_grad_() for k, v in
               adapted_params(module, dict(module.named_parameters()), a, b, 0.5, False).items()}
    value = pair_loss(functional_call(module, adapted, (w,)) - functional_call(module, adapted, (l,)))
    at_adapted = dict(zip(adapted, torch.autograd.grad(value, list(adapted.values()))))
    assert all(torch.allclose(grads["first"][k], at_adapted[k], atol=1e-7) for k in adapted)
    # second order adds the term through the inner step: not the same gradient
    assert not torch.allclose(grads["second"]["encode.weight"], grads["first"]["encode.weight"], atol=1e-6)


def _planted(seed: int, n_src: int = 300, n_shift: int = 300, f: int = 8):
    """Options with 8 planted features and a linear true reward. Source pairs differ mostly along
    dims 0–3 (dims 4–7 at scale 0.15); shifted pairs differ along ±μ (a unit direction in dims
    4–7, to which the true reward gives weight 2) plus noise: the source says little about μ."""
    rng = np.random.default_rng(seed)
    mu = np.r_[np.zeros(f // 2), rng.normal(size=f // 2)]
    mu /= np.linalg.norm(mu)
    w = np.r_[rng.normal(size=f // 2), 2 * mu[f // 2:]]
    xs = rng.normal(size=(2 * n_src, f)) * np.r_[np.ones(f // 2), 0.15 * np.ones(f // 2)]
    base = rng.normal(size=(n_shift, f))
    y = rng.choice([-1.0, 1.0], n_shift)
    xt = np.empty((2 * n_shift, f))
    xt[0::2] = base + y[:, None] * mu + 0.4 * rng.normal(size=(n_shift, f))
    xt[1::2] = base
    x = np.vstack([xs, xt]).astype(np.float32)
    r = x @ w
    a = np.r_[np.arange(0, 2 * n_src, 2), 2 * n_src + np.arange(0, 2 * n_shift, 2)]
    b = a + 1
    label = rng.random(len(a)) < 1 / (1 + np.exp(-2 * (r[a] - r[b])))
    win, lose = np.where(label, a, b), np.where(label, b, a)
    shifted = np.arange(len(a)) >= n_src
    pairs = PreferencePairs(np.full(len(a), -1), win, lose, np.arange(len(a)), np.array([], object),
                            np.arange(len(x)).astype(str).astype(object), None, None, (), "planted")
    return x, pairs.subset(~shifted), pairs.subset(shifted), (r[win] > r[lose])[shifted]


def _fit_planted(x, src, shifted, **params):
    model = create_preference("crm", hidden=16, dropout=0.0, contrastive=0.0, epochs=20, patience=20,
                              weight_decay=0.0, lr=3e-3, **params)
    model._fit_features = lambda train: x  # planted feature vectors in place of a text pipeline
    return model.fit(src, shifted=shifted)


def test_metarm_beats_plain_bt_on_a_planted_shifted_distribution():
    gains, control, adapted = [], [], []
    for seed in range(3):
        x, src, shifted, truth = _planted(seed)

        def acc(m, shifted=shifted, truth=truth):
            return float(((m.margin(shifted.user, shifted.winner, shifted.loser) > 0) == truth).mean())

        plain = acc(_fit_planted(x, src, None))
        meta = _fit_planted(x, src, shifted, meta_lr=1.0)
        gains.append(acc(meta) - plain)
        control.append(acc(_fit_planted(x, src, shifted, meta_lr=0.0)) - plain)  # the same loop, no inner step
        adapted.append(acc(copy.deepcopy(meta).shift(shifted)) - plain)
    assert np.mean(gains) > 0.02 and min(gains) > -0.01
    assert abs(np.mean(control)) < 0.015  # the gain is the meta step's, not the loop's
    assert np.mean(adapted) > np.mean(gains)  # θ' (one inner step on the shifted replies) does better still


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_meta_file_route_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["thanks here is how", "sure the steps are", "glad to help with"], ["no", "i refuse", "go away"]
    rows = [{"prompt": f"question {i}", "chosen": f"{rng.choice(good)} {i}", "rejected": f"{rng.choice(bad)} {i % 3}"}
            for i in range(60)]
    train = _write(tmp_path / "train.jsonl", rows)
    meta = _write(tmp_path / "meta.jsonl", [{"prompt": "new", "chosen": "sure glad steps", "rejected": "refuse"}] * 4)
    from penchant.data import read_text_comparisons

    pairs = read_text_comparisons(train)
    plain = create_preference("crm", features="bow", epochs=3, seed=1).fit(pairs)
    model = create_preference("crm", features="bow", epochs=3, seed=1, meta_file=meta, meta_lr=5.0).fit(pairs)
    assert model.n_options_ == pairs.n_options and model.net_.options.x.shape[0] == pairs.n_options
    p = model.prob(pairs.user, pairs.winner, pairs.loser)
    assert not np.allclose(p, plain.prob(pairs.user, pairs.winner, pairs.loser))
    tuned = copy.deepcopy(model).tune(pairs.subset(np.arange(8)), steps=20, lr=1e-2)
    assert (tuned.prob(pairs.user, pairs.winner, pairs.loser) > p).mean() > 0.5  # fine-tuning on labels helps them
    with pytest.raises(ConfigError, match="once"):
        create_preference("crm", features="bow", meta_file=meta).fit(pairs, shifted=pairs)
    with pytest.raises(ConfigError, match="text features"):
        create_preference("crm", epochs=1).fit(pairs, shifted=read_text_comparisons(meta))
    with pytest.raises(ConfigError, match="dropout"):
        create_preference("crm", dropout=0.0, contrastive=0.1)
    with pytest.raises(ConfigError, match="meta_order"):
        create_preference("crm", meta_order="third")
