"""One conversational-recommendation experiment: split, scorer, episodes, policy training and
evaluation, with nothing of the test interactions reaching the scorer or the policies.

* Interactions are split per user at random 80/10/10 (seeded).
* The scorer's model is fitted on the training part only.
* Policies are trained and selected on validation episodes (user, validation item), which never
  show the user's training items; test episodes (user, test item) never show training or
  validation items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.converse.policies import create_policy
from penchant.converse.simulator import episodes_from, run_episode, seen_items
from penchant.converse.state import Scorer
from penchant.converse.training import PolicyTrainer
from penchant.data.attribute_graph import AttributeGraph, attribute_graph
from penchant.data.dataset import Dataset
from penchant.data.split import Split, random_holdout
from penchant.eval.conversation import conversation_metrics


@dataclass
class ConversationSetup:
    """Everything a policy is trained and tested with.

    Attributes:
        base: float32 (n_users, n_items) the fitted model's scores (training part only).
        popularity: float64 (n_items,) training interactions per item.
        test, valid: (users, targets) int64 arrays of episodes.
        test_exclude, valid_exclude: CSR users × items never shown in those episodes.
    """

    dataset: Dataset
    graph: AttributeGraph
    split: Split
    model_name: str
    base: np.ndarray
    popularity: np.ndarray
    test: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test_exclude: sp.csr_matrix
    valid_exclude: sp.csr_matrix
    seed: int

    def trainer(self, **kwargs) -> PolicyTrainer:
        return PolicyTrainer(self.graph, self.base, *self.valid, self.valid_exclude, self.popularity,
                             seed=self.seed, **kwargs)


def prepare(ds: Dataset, level: str = "coarse", *, episodes: int = 2000, valid_episodes: int = 1000,
            model: str = "ease", model_params: dict | None = None, seed: int = DEFAULT_SEED,
            graph: AttributeGraph | None = None) -> ConversationSetup:
    """Split ``ds``, fit the scorer's model on the training part and draw seeded episodes."""
    from penchant.models.registry import create

    graph = graph or attribute_graph(ds, level)
    split = random_holdout(ds, (0.8, 0.1, 0.1), seed=seed)
    fitted = create(model, **(model_params or {})).fit(split.train)
    base = fitted.score(np.arange(ds.n_users)).astype(np.float32)
    popularity = np.asarray(split.train.csr.sum(0)).ravel().astype(np.float64)
    return ConversationSetup(ds, graph, split, model, base, popularity,
                             episodes_from(split.test, episodes, seed, graph),
                             episodes_from(split.valid, valid_episodes, seed + 1, graph),
                             seen_items(split.train, split.valid), seen_items(split.train), seed)


def evaluate_policy(setup: ConversationSetup, name: str, *, multi_choice: int = 0, epochs: int = 12,
                    seed: int | None = None, progress=None, simulated_user=None, policy=None) -> dict:
    """Train ``name`` on the validation episodes (if it learns) and play the test episodes; the
    metrics of :func:`penchant.eval.conversation.conversation_metrics` plus timing and settings.
    ``simulated_user`` makes the test episodes' user (see :func:`penchant.converse.simulator.run_episode`);
    training always uses the attribute user. ``policy``: the (untrained) policy object to train and
    play, for a caller that keeps it (the service saves its decision); by default a new one."""
    seed = setup.seed if seed is None else seed
    policy = create_policy(name, setup.graph, multi_choice=multi_choice) if policy is None else policy
    start = time.perf_counter()
    if policy.learned:
        policy.fit(setup.trainer(epochs=epochs))
    history = policy.history_
    train_seconds = time.perf_counter() - start
    scorer = Scorer(setup.graph, setup.base, reflect=policy.reflect)
    rng = np.random.default_rng(seed)
    users, targets = setup.test
    results = []
    ex = setup.test_exclude
    start = time.perf_counter()
    for k, (u, t) in enumerate(zip(users, targets)):
        results.append(run_episode(policy, scorer, setup.graph, int(u), int(t),
                                   exclude=ex.indices[ex.indptr[u]:ex.indptr[u + 1]], rng=rng,
                                   simulated_user=simulated_user))
        if progress is not None:
            progress(k + 1, len(users))
    metrics = conversation_metrics(results, setup.graph, seed=seed)
    if results and results[0].user_model.transcript is not None:  # a user that answered in words
        understood = [ok for r in results for ok in r.user_model.understood]
        metrics |= {"answers_read": len(understood),
                    "understood": float(np.mean(understood)) if understood else None,
                    "transcripts": [r.user_model.transcript for r in results]}
    return {"policy": name} | metrics | {
        "params": policy.params(), "train_seconds": round(train_seconds, 2),
        "ms_per_episode": round(1000 * (time.perf_counter() - start) / max(1, len(users)), 2),
        "selection_hdcg_by_epoch": None if history is None else [round(h, 4) for h in history],
        "attributes": setup.graph.n_values, "model": setup.model_name}
