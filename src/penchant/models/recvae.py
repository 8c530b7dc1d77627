"""RecVAE (Shenbin, Alekseev, Tutubalina, Malykh & Nikolenko, WSDM 2020): Mult-VAE with a stronger
encoder, a composite prior, a per-user KL weight and alternating training.

What changes against :mod:`penchant.models.multvae` (whose scoring, persistence and early stopping
this model reuses):

- **Encoder**: L2-normalised row → dropout → five dense layers, each ``LayerNorm(swish(W h + Σ of
  the earlier layers' outputs))`` (dense connections summed, layer norm with ε = 0.1) → (μ, log σ²).
  The decoder is one linear layer z → logits over items.
- **Composite prior**: p(z | x) = 3/20 · N(0, I) + 3/4 · q(z | x; φ_old) + 1/10 · N(0, e^10 I), where
  φ_old is the encoder as it was after the previous encoder phase (frozen). As in the authors' code,
  the mixture is taken per latent coordinate and the log-densities summed over coordinates; the KL
  term is the one-sample estimate log q(z|x) − log p(z|x).
- **β rescaled by the user's feedback**: the KL weight of user u is β' = γ·|X_u| (``gamma``).
- **Alternating updates**: each epoch runs ``encoder_epochs`` passes updating only the encoder (with
  input dropout), copies the encoder into φ_old, then ``decoder_epochs`` passes updating only the
  decoder (no dropout; its loss is the multinomial likelihood alone, since the KL term does not
  depend on the decoder). Two Adam optimisers, one per side.
- **Denoising**: input dropout on the encoder phase, as in Mult-DAE/Mult-VAE.

Inputs are sparse as in Mult-VAE (:class:`penchant.models.multvae.SparseRows`): the first encoder
layer reads only a user's stored items, the likelihood gathers log softmax at them, and β' uses
the row sums; no dense (users × items) row is built.

The dense connections are the authors' current code (sums of earlier layers), which their README
says differs slightly from the WSDM paper's; the paper's Implicit-SLIM extension is not included.
Scoring uses z = μ and the decoder, so any user with a history is scored by one forward pass.

Defaults are the authors' (hidden 600, latent 200, γ = 0.005, lr 5e-4, 3 encoder passes to 1
decoder pass) except the batch and patience (5 validation checks). The batch is sized to the log
(``batch_size=0``, Mult-VAE's rule): 128 users up to 32,768 users, since ML-100K's 943 users make
two steps a pass at 500 (seed-2026 split: test NDCG@10 0.302 at 128, stopping after 16 epochs,
against 0.298 at 500 after 39); users // 256 above, 540 on the 20M log's 138k users (the authors
train with 500).

In the encoder passes the decoder's weights take no gradient (``requires_grad`` off): only the
encoder's optimiser steps there, so the decoder's (latent × items) weight gradient, a third of the
pass's largest product, is not computed; the decoder passes already skip the encoder's backward.
"""

from __future__ import annotations

import math
import time

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.bpr import auto_batch
from penchant.models.distributed import shard, synced
from penchant.models.multvae import (
    MIN_BATCH,
    MultVAE,
    SparseRows,
    _sparse_input,
    multinomial_nll,
    sparse_rows,
    transposed_inputs,
)
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.training import (
    EarlyStopping,
    blas_single_threaded,
    check_device,
    seed_torch,
    torch_device,
    validate_net,
)

#: the paper's mixture weights: standard normal, the old posterior, the wide normal
PRIOR_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)
#: log-variance of the wide component
WIDE_LOGVAR = 10.0


def log_normal(z, mu, logvar):
    """Log-density of N(mu, exp(logvar)) at z, per coordinate (torch tensors, broadcast)."""
    return -0.5 * (logvar + math.log(2 * math.pi) + (z - mu).pow(2) / logvar.exp())


def composite_log_prior(z, old_mu, old_logvar, weights: tuple[float, float, float] = PRIOR_WEIGHTS,
                        wide_logvar: float = WIDE_LOGVAR):
    """log p(z | x) of the composite prior per coordinate, (batch, latent): log of
    w₀·N(z; 0, 1) + w₁·N(z; old_mu, exp(old_logvar)) + w₂·N(z; 0, exp(wide_logvar))."""
    import torch

    zero = torch.zeros_like(z)
    parts = [log_normal(z, zero, zero) + math.log(weights[0]),
             log_normal(z, old_mu, old_logvar) + math.log(weights[1]),
             log_normal(z, zero, zero + wide_logvar) + math.log(weights[2])]
    return torch.logsumexp(torch.stack(parts, dim=-1), dim=-1)


def _network(n_items: int, hidden: int, latent: int, layers: int):
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # the first layer reads the L2-normalised, dropped-out sparse row (Mult-VAE's SparseInput)
            self.fc = torch.nn.ModuleList([_sparse_input(n_items, hidden) if k == 0 else torch.nn.Linear(hidden, hidden)
                                           for k in range(layers)])
            self.ln = torch.nn.ModuleList([torch.nn.LayerNorm(hidden, eps=0.1) for _ in range(layers)])
            self.mu = torch.nn.Linear(hidden, latent)
            self.logvar = torch.nn.Linear(hidden, latent)

        def forward(self, x: SparseRows, dropout: float):
            outs: list = []
            for k, (fc, ln) in enumerate(zip(self.fc, self.ln)):
                a = fc(x, dropout) if k == 0 else fc(outs[-1]) + sum(outs)
                h = ln(torch.nn.functional.silu(a))  # silu is swish: a·sigmoid(a)
                outs.append(h)
            return self.mu(h), self.logvar(h)

    class RecVAENet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.encoder_old = Encoder()  # φ_old of the composite prior: a frozen copy
            self.encoder_old.requires_grad_(False)
            self.decoder = torch.nn.Linear(latent, n_items)
            self.update_prior()

        def update_prior(self) -> None:
            self.encoder_old.load_state_dict(self.encoder.state_dict())

        def forward(self, x: SparseRows, dropout: float = 0.0):
            mu, logvar = self.encoder(x, dropout)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.decoder(z), mu, logvar

    return RecVAENet()


@register
class RecVAE(MultVAE):
    """Mult-VAE with RecVAE's dense layer-normed encoder, composite prior, β = γ·|X_u| and
    alternating encoder/decoder updates (Shenbin et al. 2020).

    Args:
        hidden: width of the encoder's layers.
        latent: dimensions of z.
        layers: dense encoder layers (the authors: 5).
        dropout: input dropout rate of the encoder phase.
        gamma: γ; user u's KL weight is γ times the number of u's training items.
        encoder_epochs: passes over the users updating the encoder, per epoch.
        decoder_epochs: passes over the users updating the decoder, per epoch.
        lr: Adam learning rate (both optimisers).
        epochs: maximum epochs (each: the encoder passes, then the decoder passes).
        batch_size: users per step; 0 sizes it to the log (see Mult-VAE).
        patience: validation checks without improvement before stopping.
        eval_every: epochs between validation checks.
        seed: seed of initialisation, dropout and sampling.
        device: auto (CUDA when torch sees one), cpu or cuda.
    """

    name = "recvae"
    summary = "RecVAE: Mult-VAE with composite prior, β = γ|X_u|, alternating updates (torch)"
    search_space = {"gamma": Float(5e-4, 5e-2, log=True), "dropout": Float(0.1, 0.7),
                    "lr": Float(1e-4, 5e-3, log=True), "latent": Int(32, 256, log=True)}

    def __init__(self, *, hidden: int = 600, latent: int = 200, layers: int = 5, dropout: float = 0.5,
                 gamma: float = 0.005, encoder_epochs: int = 3, decoder_epochs: int = 1, lr: float = 5e-4,
                 epochs: int = 100, batch_size: int = 0, patience: int = 5, eval_every: int = 1,
                 seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if not 0 <= dropout < 1 or gamma < 0 or min(hidden, latent, layers, epochs) < 1 or batch_size < 0:
            raise ConfigError("dropout must be in [0, 1), gamma ≥ 0, batch_size ≥ 0 (0: sized to the log); "
                              "hidden, latent, layers, epochs ≥ 1")
        if encoder_epochs < 1 or decoder_epochs < 1:
            raise ConfigError("encoder_epochs and decoder_epochs must be at least 1")
        self.hidden, self.latent, self.layers, self.dropout, self.gamma = hidden, latent, layers, dropout, gamma
        self.encoder_epochs, self.decoder_epochs, self.lr, self.epochs = encoder_epochs, decoder_epochs, lr, epochs
        self.batch_size, self.patience, self.eval_every, self.seed = batch_size, patience, eval_every, seed
        self.device = check_device(device)
        self.net_ = None

    @blas_single_threaded
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        import torch

        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        x = train.csr
        active = np.flatnonzero(np.diff(x.indptr) > 0)
        dev = torch_device(self.device)
        self.net_ = net = _network(x.shape[1], self.hidden, self.latent, self.layers).to(dev)
        # fused: see Mult-VAE; synced: on Ray each side's gradients averaged over the ranks (distributed)
        enc_opt = synced(torch.optim.Adam(net.encoder.parameters(), lr=self.lr, fused=True))
        dec_opt = synced(torch.optim.Adam(net.decoder.parameters(), lr=self.lr, fused=True))
        stopper = EarlyStopping(self.patience, epochs=self.epochs)

        def batches():
            order, batch = shard(rng.permutation(active),  # this rank's share on Ray
                                 self.batch_size or auto_batch(len(active), minimum=MIN_BATCH))
            for s in range(0, len(order), batch):
                yield sparse_rows(x[order[s:s + batch]], dev)

        self.epoch_seconds_: list[float] = []  # training only (encoder and decoder passes), validation excluded
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            net.train()
            net.decoder.requires_grad_(False)  # the encoder passes step the encoder only
            for _ in range(self.encoder_epochs):
                for rows in batches():
                    mu, logvar = net.encoder(rows, self.dropout)
                    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                    logits = net.decoder(z)
                    with torch.no_grad():
                        old_mu, old_logvar = net.encoder_old(rows, 0.0)
                    kl = (log_normal(z, mu, logvar) - composite_log_prior(z, old_mu, old_logvar)).sum(1)
                    nll = multinomial_nll(logits, rows)
                    enc_opt.zero_grad()
                    (nll + self.gamma * rows.sums() * kl).mean().backward()
                    enc_opt.step()
            net.decoder.requires_grad_(True)
            net.update_prior()
            for _ in range(self.decoder_epochs):
                for rows in batches():
                    with torch.no_grad():  # the decoder's loss does not reach the encoder: no backward through it
                        mu, logvar = net.encoder(rows, 0.0)
                        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                    logits = net.decoder(z)
                    dec_opt.zero_grad()
                    multinomial_nll(logits, rows).mean().backward()
                    dec_opt.step()
            self.epoch_seconds_.append(time.perf_counter() - start)
            if validate_net(self, net, stopper, epoch, valid, self.eval_every):
                break
        stopper.restore_best(self)
        net.eval()

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self.net_ = _network(self.n_items_, self.hidden, self.latent, self.layers)
        arrays = transposed_inputs(arrays, ("net.encoder.fc.0.weight", "net.encoder_old.fc.0.weight"), self.n_items_)
        self.net_.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")})  # copied: the arrays may be read-only maps
        self.net_.eval()
