"""Latent-class ideal points: each user belongs to one of K taste classes, inferred from all of
their comparisons together (a mixture of ideal-point Bradley–Terry models).

Class k has an ideal point c_k in a d-dimensional preference space; an option x maps to f(x) and
a user of class k scores it s_k(x) = −‖f(x) − c_k‖². With a class prior π = softmax(ρ) and λ(m)
the likelihood of an observed label whose class-k margin is m (σ(m); under a flip rate ε the
noise-aware (1 − ε)σ(m) + εσ(−m)), user u's evidence for class k is E_uk = Σ_{i of u} log λ(m_ik),
their posterior r_uk ∝ π_k exp(E_uk), and

    P(a ≻ b | u) = Σ_k r_uk σ(s_k(a) − s_k(b)).

PAL (:mod:`.pal`) gives each user a soft mixture of ideal points fitted by gradient pair by pair;
here a user's comparisons compound into one posterior that sharpens with each of them, and under
label noise the noise-aware likelihood keeps a few flipped pairs from moving a user to the wrong
class. A mixture of Bradley–Terry models is not one, so there is no scalar score.

Training is EM by full-batch gradient: each step computes the posteriors r from the current
parameters (held fixed in the step) and takes an Adam step on

    Σ_i Σ_k r_{u_i k} ℓ(m_ik) − Σ_u Σ_k r_uk log π_k,

ℓ the chosen loss (:mod:`.train`); for ``plain`` and ``forward`` that is the gradient of the
marginal log-likelihood. Over the first ``anneal`` steps the evidence is tempered (r_uk ∝ π_k
exp(β E_uk), β rising from 0 to 1) so that every class sees every user before they commit. The
evidence uses the noise-aware likelihood for ``robust`` and ``forward`` (ε a flip rate) and the
plain one otherwise. Early stopping on the validation log-loss, each validation user's posterior
from their training pairs. Full-batch steps touch every pair once per step: fine for hundreds
of thousands of pairs (MovieLens-100K's 264k, 3 classes: about 0.04 s a step), not for hundreds
of millions. A new user is fitted by :meth:`adapt` with no gradient step: their comparisons give
their evidence. The population (user −1, or a user with no pairs) is the prior mixture.
"""

from __future__ import annotations

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.preference.neural import NeuralPreference, option_net
from penchant.models.preference.train import check_loss, judged_as_trained, judged_by, pair_loss, pair_loss_terms
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.training import EarlyStopping, check_device, net_device, seed_torch, torch_device


@register
class LatentClassIdealPoints(NeuralPreference):
    """K taste classes with one ideal point each; each user in one class, inferred.

    Args:
        prototypes: K, the classes.
        dims: d, the preference space.
        features: ``id`` (a learned vector per option) or ``text`` / ``layers`` (an MLP over
            frozen MiniLM embeddings; see :mod:`.features`).
        hidden: hidden units of the text MLP (0: linear).
        lr, weight_decay: Adam's step size and L2 weight.
        epochs, patience: full-batch steps at most, and steps without a better validation
            log-loss before stopping.
        anneal: steps over which the evidence's weight in the training posteriors rises from 0
            to 1 (deterministic annealing): with full weight from the start, the posteriors of
            random initial classes are already hard and a class that wins no user never moves
            (two planted groups end up in one class). Early stopping starts after it. It makes
            a merge rarer, not impossible (one restart in four on the plural world still merged
            two groups); ``restarts`` guards against it.
        restarts: fits from seeds ``seed``, ``seed + 1``, …; the one with the best validation
            log-loss is kept (without validation pairs, the best marginal log-likelihood of the
            training pairs). ``restart_losses_`` records each.
        loss: ``plain``, ``smooth``, ``robust`` or ``forward`` (see :mod:`.train`).
        epsilon: ε ∈ [0, 0.5) of the loss.
        strength_heads: H > 0 weights each training pair (its loss and its evidence) by the
            agreement of an H-head ensemble with its label (0: off).
        seed: initialisation.
        device: auto (CUDA when torch sees one), cpu or cuda: the network, the pairs and the
            evidence live there; initial weights are drawn on the CPU (the same start everywhere).
    """

    name = "pal-latent"
    search_space = {"prototypes": Int(1, 8), "dims": Int(4, 64, log=True), "weight_decay": Float(1e-6, 1e-2, log=True)}
    has_score = False

    def __init__(self, *, prototypes: int = 3, dims: int = 16, features: str = "id", text_model: str = "all-MiniLM-L6-v2",
                 hidden: int = 0, lr: float = 3e-2, weight_decay: float = 1e-5, epochs: int = 2000, patience: int = 100,
                 anneal: int = 100, loss: str = "plain", epsilon: float = 0.0, strength_heads: int = 0,
                 restarts: int = 1, seed: int = DEFAULT_SEED, device: str = "auto") -> None:
        if prototypes < 1 or dims < 1 or hidden < 0:
            raise ConfigError("prototypes and dims must be ≥ 1, hidden ≥ 0")
        if lr <= 0 or epochs < 1 or patience < 1 or weight_decay < 0 or anneal < 0:
            raise ConfigError("lr, epochs, patience must be positive; weight_decay, anneal ≥ 0")
        if strength_heads < 0 or strength_heads == 1:
            raise ConfigError("strength_heads must be 0 (off) or at least 2")
        if restarts < 1:
            raise ConfigError(f"restarts must be ≥ 1, not {restarts}")
        check_loss(loss, epsilon)
        self.restarts = restarts
        self.prototypes, self.dims, self.features, self.text_model, self.hidden = prototypes, dims, features, text_model, hidden
        self.lr, self.weight_decay, self.epochs, self.patience, self.anneal = lr, weight_decay, epochs, patience, anneal
        self.loss, self.epsilon, self.strength_heads, self.seed = loss, epsilon, strength_heads, seed
        self.device = check_device(device)

    # ----- the model -----------------------------------------------------------------------------
    def _network(self, x: np.ndarray | None):
        import torch

        net = torch.nn.Module()
        net.options = option_net(self.n_options_, x, self.dims, self.hidden, std=0.5)
        net.ideal = torch.nn.Parameter(torch.randn(self.prototypes, self.dims) * 0.5)
        net.prior = torch.nn.Parameter(torch.zeros(self.prototypes))
        return net

    def _utilities(self, net):
        """s_k(x) of every option, torch (n_options, K)."""
        import torch

        f = net.options(torch.arange(self.n_options_, device=net_device(net)))
        return -(f[:, None, :] - net.ideal[None]).pow(2).sum(-1)

    def _log_likelihood(self, margin):
        """log λ(m) of each observed label, elementwise."""
        return -pair_loss_terms(margin, **judged_by(self.loss, self.epsilon))

    def _evidence(self, s, users, a, b, weight=None):
        """E (n_users + 1, K) from the option utilities ``s`` (n_options, K): summed log-likelihoods
        of each user's pairs; users −1 add nothing, so the last row (the population) stays 0."""
        return self._evidence_of(s.index_select(0, a) - s.index_select(0, b), users, weight)

    def _evidence_of(self, margin, users, weight=None):
        """E from the class margins (n, K) of pairs by ``users``, each pair's log-likelihood times
        its ``weight`` (n,) if given."""
        return self._sum_by_user(self._log_likelihood(margin), self._rows(users), weight)

    def _sum_by_user(self, ll, rows, weight=None):
        """E (n_users + 1, K): the log-likelihoods ``ll`` (n, K) summed per evidence row (``rows``
        (n,), −1 already mapped to the population row, which is then reset to 0)."""
        import torch

        if weight is not None:
            ll = ll * weight[:, None]
        evidence = torch.zeros(self.n_users_ + 1, self.prototypes, dtype=ll.dtype, device=ll.device).index_add(0, rows, ll)
        evidence[-1] = 0
        return evidence

    # ----- training ------------------------------------------------------------------------------
    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        best = None
        self.restart_losses_: list[float] = []
        x = self._fit_features(train)  # once for every restart
        for r in range(self.restarts):
            loss = self._fit_once(train, valid, weight, self.seed + r, x)
            self.restart_losses_.append(loss)
            if best is None or loss < best[0]:
                best = (loss, self.net_, self.evidence_, self.history_, self.best_epoch_)
        _, self.net_, self.evidence_, self.history_, self.best_epoch_ = best

    def _fit_once(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None,
                  seed: int, x: np.ndarray | None) -> float:
        """One fit from ``seed``; its validation log-loss (without validation pairs, the negative
        marginal log-likelihood of the training pairs per pair)."""
        import torch

        seed_torch(seed)
        dev = torch_device(self.device)  # pairs, their distinct margins and the evidence all live there
        self.net_ = net = self._network(x).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        stopper = EarlyStopping(self.patience, epochs=self.epochs)
        u, w, l = (torch.from_numpy(v.astype(np.int64)).to(dev) for v in (train.user, train.winner, train.loser))
        rows = self._rows(u)
        # utilities are per option, so a margin is per ordered (winner, loser): compute each distinct
        # one once (D ≤ n_options², far fewer than the pairs) and carry the pairs' weights onto it
        key, inv = np.unique(train.winner.astype(np.int64) * self.n_options_ + train.loser, return_inverse=True)
        dw, dl, inv = (torch.from_numpy(v.astype(np.int64)).to(dev) for v in (key // self.n_options_, key % self.n_options_, inv))
        wt = (torch.ones(len(train)) if weight is None else torch.as_tensor(weight, dtype=torch.float32)).to(dev)
        seen = torch.bincount(u[u >= 0], minlength=self.n_users_ + 1) > 0  # users whose class is inferred
        validated = valid is not None and len(valid) > 0
        if validated:
            vu, vw, vl = (torch.from_numpy(v.astype(np.int64)).to(dev) for v in (valid.user, valid.winner, valid.loser))
        self.history_: list[float] = []
        self.best_epoch_ = None
        same_judge = judged_as_trained(self.loss, self.epsilon)
        for epoch in range(1, self.epochs + 1):
            net.train()
            s = self._utilities(net)
            m = s.index_select(0, dw) - s.index_select(0, dl)  # (D, K)
            terms = pair_loss_terms(m, loss=self.loss, epsilon=self.epsilon)
            log_prior = net.prior.log_softmax(0)
            with torch.no_grad():  # the E-step: labels judged as trained where the two agree (one pass)
                ll = -terms.detach() if same_judge else self._log_likelihood(m.detach())
                evidence = self._sum_by_user(ll.index_select(0, inv), rows, wt)
                r = (min(1.0, epoch / (self.anneal + 1)) * evidence + log_prior).softmax(1)
                share = torch.zeros_like(ll).index_add(0, inv, r.index_select(0, rows) * wt[:, None])  # (D, K)
            value = (share * terms).sum()
            value = (value - (r[seen] * log_prior).sum()) / wt.sum()
            opt.zero_grad()
            value.backward()
            opt.step()
            if not validated or epoch <= self.anneal:
                continue
            net.eval()
            with torch.no_grad():
                s = self._utilities(net)
                ll = self._log_likelihood(s.index_select(0, dw) - s.index_select(0, dl))
                loss = self._valid_loss(net, s, self._sum_by_user(ll.index_select(0, inv), rows, wt), vu, vw, vl)
            self.history_.append(loss)
            if stopper.update(epoch, -loss, net.state_dict):
                break
        stopper.restore_best(self)
        net.eval()
        with torch.no_grad():
            s = self._utilities(net)
            evidence = self._evidence(s, u, w, l, wt)
            self.evidence_ = evidence.double().cpu().numpy()
            if validated:
                return -stopper.best_value if stopper.best_state is not None else self._valid_loss(
                    net, s, evidence, vu, vw, vl)
            marginal = (evidence + net.prior.log_softmax(0))[:-1][seen[:-1]].logsumexp(1).sum()
            return float(-marginal / wt.sum())

    def _valid_loss(self, net, s, evidence, users, a, b) -> float:
        """Mean log-loss of the validation pairs (torch (n,) each), judged as the training labels are."""
        m = self._mixture_margin(self._log_posterior_of(evidence, net.prior.log_softmax(0), self._rows(users)), s.index_select(0, a) - s.index_select(0, b))
        return float(pair_loss(m, **judged_by(self.loss, self.epsilon)))

    @staticmethod
    def _log_posterior_of(evidence, log_prior, rows):
        """log r (n, K) of the users in evidence ``rows``: evidence plus log prior, normalised."""
        return (evidence.index_select(0, rows) + log_prior).log_softmax(1)

    @staticmethod
    def _mixture_margin(log_r, m):
        """log P(a ≻ b) − log P(b ≻ a) of the mixture Σ_k r_k σ(m_k), torch (n,), from log r and
        the class margins m (n, K); each side a log-sum over the classes of log r + log σ(±m)."""
        import torch.nn.functional as F

        return (log_r - F.softplus(-m)).logsumexp(1) - (log_r - F.softplus(m)).logsumexp(1)

    # ----- prediction ----------------------------------------------------------------------------
    def _log_posterior(self, users: np.ndarray):
        """log r (n, K), torch float64, of ``users`` (−1: the population)."""
        import torch

        rows = self._index(np.where(users < 0, self.n_users_, users))
        with torch.no_grad():
            evidence = torch.from_numpy(self.evidence_).to(rows.device)
            return self._log_posterior_of(evidence, self.net_.prior.double().log_softmax(0), rows)

    def mixture(self, users: np.ndarray) -> np.ndarray:
        """Each user's posterior over the classes, float64 (n, K)."""
        return np.exp(self._log_posterior(np.asarray(users, np.int64)).cpu().numpy())

    def _margin(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            s = self._utilities(self.net_).double()
            return self._mixture_margin(self._log_posterior(users), s[self._index(a)] - s[self._index(b)]).cpu().numpy()

    # ----- users ---------------------------------------------------------------------------------
    def adapt(self, pairs: PreferencePairs) -> LatentClassIdealPoints:
        """Set the evidence of the users in ``pairs`` from their pairs alone (no gradient step):
        few-shot use, a new user from a handful of comparisons."""
        import torch

        known = pairs.user >= 0
        users = np.unique(pairs.user[known])
        if not len(users):
            return self
        with torch.no_grad():
            e = self._evidence(self._utilities(self.net_),
                               *(self._index(v) for v in (pairs.user, pairs.winner, pairs.loser)))
        self.evidence_[users] = e.double().cpu().numpy()[users]
        return self

    def forget(self, users: np.ndarray) -> LatentClassIdealPoints:
        """Put ``users`` back to the population (no evidence), as if never seen."""
        self.evidence_[np.asarray(users, np.int64)] = 0.0
        return self

    # ----- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"evidence": self.evidence_, **super()._state()}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_state(arrays)
        self.evidence_ = arrays["evidence"].astype(np.float64)
