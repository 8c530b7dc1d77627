"""Mult-VAE and RecVAE read users' rows sparse: the first encoder layer and the multinomial
likelihood over the stored entries equal their dense computations (values and gradients), and an
artefact saved with the dense layer's (hidden, n_items) weight still loads and scores the same."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.models import create
from penchant.models.artefact import load


def _rows(seed: int = 0) -> sp.csr_matrix:
    """5 users × 12 items with weights 1–3; user 2 has no item (its encoding is the bias alone)."""
    x = sp.random(5, 12, density=0.4, format="csr", random_state=seed, dtype=np.float32)
    x.data[:] = np.random.default_rng(seed).integers(1, 4, x.nnz)
    x = sp.lil_matrix(x)
    x[2, :] = 0
    return sp.csr_matrix(x)


def test_sparse_first_layer_and_gradient_are_the_dense_layer_on_normalised_rows():
    import torch

    from penchant.models.multvae import _sparse_input, sparse_rows

    x = _rows()
    layer = _sparse_input(12, 4).eval()
    torch.nn.init.normal_(layer.bias)
    got = layer(sparse_rows(x), dropout=0.5)  # eval: no dropout
    weights = torch.randn(5, 4)
    (got * weights).sum().backward()
    dense = torch.from_numpy(x.toarray())
    weight = layer.weight.detach().clone().requires_grad_()
    want = torch.nn.functional.normalize(dense, dim=1) @ weight + layer.bias.detach()
    (want * weights).sum().backward()
    torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.weight.grad, weight.grad, rtol=1e-5, atol=1e-6)
    assert torch.equal(got[2].detach(), layer.bias.detach())  # the empty row


def test_training_dropout_zeroes_or_rescales_each_stored_entry():
    import torch

    from penchant.models.multvae import _sparse_input, sparse_rows

    x = sp.csr_matrix(np.array([[0, 3, 0, 4]], np.float32))  # normalised: 0.6 and 0.8
    layer = _sparse_input(4, 1).train()
    with torch.no_grad():
        layer.weight[:] = torch.tensor([[0.0], [1.0], [0.0], [10.0]])
    torch.manual_seed(0)
    with torch.no_grad():
        seen = {round(float(layer(sparse_rows(x), dropout=0.5)), 4) for _ in range(60)}
    assert seen == {0.0, 1.2, 16.0, 17.2}  # each of 0.6·1, 0.8·10 kept ×2 or dropped


def test_multinomial_likelihood_sums_log_softmax_over_the_stored_entries():
    import torch

    from penchant.models.multvae import multinomial_nll, sparse_rows

    x = _rows(1)
    logits = torch.randn(5, 12)
    want = -(torch.log_softmax(logits, dim=1) * torch.from_numpy(x.toarray())).sum(1)
    batch = sparse_rows(x)
    torch.testing.assert_close(multinomial_nll(logits, batch), want)
    torch.testing.assert_close(batch.sums(), torch.from_numpy(np.asarray(x.sum(1), np.float32).ravel()))


def test_the_likelihoods_hand_gradient_is_autograds_through_log_softmax():
    """The one-node likelihood's backward, g_u·(|x_u|·softmax − x_u), written into the saved log
    softmax, is autograd's gradient through the dense log softmax (rows weighted by g; the empty
    row's gradient is zero); a second backward is refused rather than wrong."""
    import torch

    from penchant.models.multvae import multinomial_nll, sparse_rows

    x, g = _rows(4), torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0])
    logits = torch.randn(5, 12, requires_grad=True)
    loss = (multinomial_nll(logits, sparse_rows(x)) * g).sum()
    loss.backward(retain_graph=True)
    dense = logits.detach().clone().requires_grad_()
    (-(torch.log_softmax(dense, dim=1) * torch.from_numpy(x.toarray())).sum(1) * g).sum().backward()
    torch.testing.assert_close(logits.grad, dense.grad, rtol=1e-5, atol=1e-6)
    assert torch.equal(logits.grad[2], torch.zeros(12))
    with pytest.raises(RuntimeError, match="runs once"):
        loss.backward()


def _log() -> Dataset:
    rng = np.random.default_rng(3)
    users, items = np.repeat(np.arange(30), 6), rng.integers(0, 20, 180)
    return Dataset(np.array([f"u{u}" for u in range(30)], dtype=object), np.array([f"i{i}" for i in range(20)], dtype=object),
                   users.astype(np.int32), items.astype(np.int32))


@pytest.mark.parametrize("name,params,keys", [
    ("multvae", {"hidden": 8, "latent": 4, "epochs": 2}, ("net.enc.weight",)),
    ("recvae", {"hidden": 8, "latent": 4, "layers": 2, "epochs": 1}, ("net.encoder.fc.0.weight", "net.encoder_old.fc.0.weight")),
])
def test_an_artefact_with_the_dense_layers_weight_loads_and_scores_the_same(name, params, keys, tmp_path):
    model = create(name, **params).fit(_log())
    assert len(model.epoch_seconds_) == params["epochs"] and min(model.epoch_seconds_) > 0  # train_speed reads them
    path = model.save(tmp_path / f"{name}.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = dict(z)
    for key in keys:
        assert arrays[key].shape == (20, 8)
        arrays[key] = arrays[key].T.copy()  # as saved before the sparse input: torch.nn.Linear's (out, in)
    np.savez(tmp_path / "old.npz", **arrays)
    users = np.arange(30)
    np.testing.assert_allclose(load(tmp_path / "old.npz").score(users), model.score(users), rtol=1e-6, atol=1e-6)


def test_batch_size_zero_sizes_users_per_step_to_the_log(monkeypatch):
    """``batch_size=0`` takes max(MIN_BATCH, users // 256) users a step: 128 on ML-100K's 943 users
    (the old default, so ML-100K fits are unchanged) and on ML-1M's 6,040; 540 on ML-20M's 138,493."""
    from penchant.errors import ConfigError
    from penchant.models import multvae, recvae
    from penchant.models.bpr import auto_batch

    assert [auto_batch(n, minimum=multvae.MIN_BATCH) for n in (943, 6040, 32_767, 138_493)] == [128, 128, 128, 540]
    seen: list[int] = []

    def recording(x, device="cpu"):
        seen.append(x.shape[0])
        return multvae.sparse_rows(x, device)

    monkeypatch.setattr(recvae, "sparse_rows", recording)
    monkeypatch.setattr(multvae, "MIN_BATCH", 7)  # 30 users // 256 = 0: the minimum applies
    monkeypatch.setattr(recvae, "MIN_BATCH", 7)
    create("recvae", hidden=8, latent=4, layers=2, epochs=1).fit(_log())
    train_steps = seen[:4 * 5]  # 3 encoder passes + 1 decoder pass of 30 users, 7 a step; scoring follows
    assert train_steps == [7, 7, 7, 7, 2] * 4
    seen.clear()
    create("recvae", hidden=8, latent=4, layers=2, epochs=1, batch_size=12).fit(_log())
    assert seen[:12] == [12, 12, 6] * 4
    with pytest.raises(ConfigError):
        create("multvae", batch_size=-1)


def test_recvae_encoder_pass_with_the_decoder_frozen_has_the_same_encoder_gradients(monkeypatch):
    """The encoder passes no longer compute the decoder's weight gradient; the encoder's gradients
    (all its parameters) are those of the pass that did, and the decoder is trainable after a fit."""
    import torch

    from penchant.models import recvae
    from penchant.models.multvae import multinomial_nll

    x = sparse_rows_of(_rows(2))
    grads = []
    for frozen in (False, True):
        torch.manual_seed(0)
        net = recvae._network(12, 6, 3, 2)
        net.decoder.requires_grad_(not frozen)
        mu, logvar = net.encoder(x, 0.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        with torch.no_grad():
            old_mu, old_logvar = net.encoder_old(x, 0.0)
        kl = (recvae.log_normal(z, mu, logvar) - recvae.composite_log_prior(z, old_mu, old_logvar)).sum(1)
        (multinomial_nll(net.decoder(z), x) + 0.005 * x.sums() * kl).mean().backward()
        assert (net.decoder.weight.grad is None) == frozen
        grads.append([p.grad.clone() for p in net.encoder.parameters()])
    for dense, frozen in zip(*grads, strict=True):
        torch.testing.assert_close(frozen, dense, rtol=1e-6, atol=1e-7)
    assert any(float(g.abs().sum()) > 0 for g in grads[1])
    model = create("recvae", hidden=8, latent=4, layers=2, epochs=1, batch_size=16)
    trainable: list[bool] = []

    def recording(logits, batch):
        trainable.append(model.net_.decoder.weight.requires_grad)
        return multinomial_nll(logits, batch)

    monkeypatch.setattr(recvae, "multinomial_nll", recording)
    model.fit(_log())
    assert trainable == [False] * 6 + [True] * 2  # 3 encoder passes, 1 decoder pass, 2 steps each
    assert model.net_.decoder.weight.requires_grad


def sparse_rows_of(x: sp.csr_matrix):
    from penchant.models.multvae import sparse_rows

    return sparse_rows(x)
