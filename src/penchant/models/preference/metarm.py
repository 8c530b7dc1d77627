"""MetaRM: training a reward model so that it keeps telling replies apart on a shifted distribution
("Secrets of RLHF in Large Language Models Part II: Reward Modeling", Wang et al. 2024, §6;
Dou et al. 2024, "MetaRM: Shifted Distributions Alignment via Meta-Learning").

Each training step takes a batch X_s of pairs of replies from the shifted distribution (two replies
to one prompt; which one is better is not known and not used) and a labelled batch X_t of the
original preference data, and

1. ascends the *difference objective* on X_s one step (the inner, meta step):

       J_θ(X_s) = (1/|X_s|) Σ_(a, b)∈X_s σ(|r_θ(a) − r_θ(b)|),      θ' = θ + η ∇_θ J_θ(X_s)

   (the paper's (2/k) Σ_{i<j} σ(|r(x, s_i) − r(x, s_j)|) over the k replies of a prompt, averaged
   over prompts, with k = 2 replies a prompt here);
2. descends the Bradley–Terry loss of X_t evaluated at the adapted weights:
   θ ← θ − α ∇_θ L_θ'(X_t) (Adam at ``lr`` here, as for the plain model).

``meta_order="second"`` differentiates L_θ' through the inner step (MAML; the update then carries
the paper's product of the meta gradient and the BT Hessian); ``"first"`` uses ∇L at θ' as the
gradient at θ (first-order MAML). The model kept (and scored) is θ, not θ'. Early stopping reads
the original distribution's validation pairs (the shifted one has no labels). The SimCSE term of
:mod:`.contrastive`, when on, is part of L and evaluated at θ' too.
"""

from __future__ import annotations

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.models.preference.train import judged_by, pair_loss
from penchant.models.training import EarlyStopping, net_device, seed_torch


def difference_objective(ra, rb):
    """J = mean σ(|r(a) − r(b)|) over torch reward tensors (n,) of the two replies of each shifted
    pair: in [0.5, 1), larger when the model tells the replies further apart."""
    import torch

    return torch.sigmoid((ra - rb).abs()).mean()


def adapted_params(module, params: dict, a, b, meta_lr: float, second_order: bool = True) -> dict:
    """θ' = θ + η ∇_θ J_θ on the shifted pairs (a, b) (int64 torch (m,)); ``params`` the module's
    named parameters. With ``second_order`` the result stays differentiable through the gradient."""
    import torch
    from torch.func import functional_call

    value = difference_objective(functional_call(module, params, (a,)), functional_call(module, params, (b,)))
    grads = torch.autograd.grad(value, list(params.values()), create_graph=second_order, allow_unused=True)
    return {k: p if g is None else p + meta_lr * (g if second_order else g.detach())
            for (k, p), g in zip(params.items(), grads)}


def meta_loss(model, module, w, l, a, b, weight=None):
    """BT loss (+ the model's SimCSE term) of the labelled pairs (w ≻ l) at the weights adapted on
    the shifted pairs (a, b): the objective whose gradient at θ MetaRM descends."""
    from torch.func import functional_call

    from penchant.models.preference.contrastive import pair_contrast

    params = dict(module.named_parameters())
    adapted = adapted_params(module, params, a, b, model.meta_lr, model.meta_order == "second")

    def net(options, represent=False):
        return functional_call(module, adapted, (options,), {"represent": represent})

    value = pair_loss(net(w) - net(l), loss=model.loss, epsilon=model.epsilon, weight=weight)
    if model.contrastive:
        value = value + model.contrastive * pair_contrast(net, w, l, model.temperature)
    return value


def meta_train(model, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None,
               shifted_a: np.ndarray, shifted_b: np.ndarray) -> list[float]:
    """Train ``model.net_.options`` by the meta-process: mini-batches of ``train`` (seeded order,
    ``model.batch_size``), each with ``model.meta_batch`` shifted pairs drawn at random (with
    replacement when there are fewer) from the option indices ``shifted_a``, ``shifted_b`` (int64
    (m,)); Adam, early stopping on ``valid``'s log-loss. Returns the validation losses by epoch."""
    import torch

    if not len(shifted_a):
        from penchant.errors import DataError

        raise DataError("the shifted distribution has no pairs of replies")
    seed_torch(model.seed)
    rng = np.random.default_rng(model.seed)
    module = model.net_.options
    opt = torch.optim.Adam(module.parameters(), lr=model.lr, weight_decay=model.weight_decay)
    stopper = EarlyStopping(model.patience, epochs=model.epochs)
    dev = net_device(module)
    w, l = (torch.from_numpy(np.asarray(v, np.int64)).to(dev) for v in (train.winner, train.loser))
    sa, sb = (torch.from_numpy(np.asarray(v, np.int64)).to(dev) for v in (shifted_a, shifted_b))
    wt = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).to(dev)
    history: list[float] = []
    for epoch in range(1, model.epochs + 1):
        module.train()
        order = torch.from_numpy(rng.permutation(len(train))).to(dev)
        for s in range(0, len(order), model.batch_size):
            sel = order[s:s + model.batch_size]
            m = torch.from_numpy(rng.integers(0, len(sa), model.meta_batch)).to(dev)
            value = meta_loss(model, module, w[sel], l[sel], sa[m], sb[m], None if wt is None else wt[sel])
            opt.zero_grad()
            value.backward()
            opt.step()
        if valid is not None and len(valid):
            module.eval()
            with torch.no_grad():
                vw, vl = (torch.from_numpy(v.astype(np.int64)).to(dev) for v in (valid.winner, valid.loser))
                value = float(pair_loss(module(vw) - module(vl), **judged_by(model.loss, model.epsilon)))
            history.append(value)
            if stopper.update(epoch, -value, model.net_.state_dict):
                break
    stopper.restore_best(model)
    model.net_.eval()
    return history
