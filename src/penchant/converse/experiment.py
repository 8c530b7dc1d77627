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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from penchant.errors import ConfigError
from penchant.eval.conversation import conversation_metrics
from penchant.experiment.tasks import Task, register_task


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


class ConversationTask(Task):
    """The ``conversation`` family's task (:mod:`penchant.experiment.tasks`): ``read`` a data set
    into a :class:`ConversationSetup`, ``fit`` a policy on its validation episodes (when it learns),
    ``test`` it on the held-out episodes."""

    families = ("conversation",)
    default_metric = "hdcg"

    def read(self, train: str | Path, valid=None, test=None, *, seed: int = DEFAULT_SEED, level: str | None = None,
             attributes: Sequence[str] | None = None, noun: str | None = None, episodes: int = 2000,
             valid_episodes: int = 1000, model: str = "ease", model_params: dict | None = None,
             dataset: Dataset | None = None) -> ConversationSetup:
        """The setup of ``train`` (a data set with item attributes; ``dataset`` when already read):
        its attribute graph (MovieLens's ``level``, or the named ``attributes`` columns, worded with
        ``noun``), the split, the scorer fitted on its training part and the seeded episodes."""
        from penchant.data import load
        from penchant.data.attribute_graph import item_numbers

        if valid is not None or test is not None:
            raise ConfigError("a conversation experiment splits one data set itself (80/10/10 per user)")
        if attributes is not None and level is not None:
            raise ConfigError("--level chooses among MovieLens's attributes; with --attributes leave it out")
        if noun is not None and not noun.strip():
            raise ConfigError("--noun must not be empty")
        ds = load(train) if dataset is None else dataset
        graph = attribute_graph(ds, level or "coarse", attributes=None if attributes is None else list(attributes),
                                numbers=item_numbers(train, ds), noun=None if noun is None else noun.strip())
        return prepare(ds, graph=graph, episodes=episodes, valid_episodes=valid_episodes, model=model,
                       model_params=model_params, seed=seed)

    def create(self, name: str, params: dict[str, Any], graph: AttributeGraph | None = None) -> Any:
        return create_policy(name, graph, **params)

    def fit(self, name: str, params: dict[str, Any], train: ConversationSetup, valid=None, *, metric=None,
            report=None, epochs: int = 12, policy: Any = None) -> Any:
        """Policy ``name`` over the setup's graph, trained by policy gradient on its validation
        episodes when it learns (selected on their hDCG); ``policy``: an unfitted one to train."""
        policy = self.create(name, params, train.graph) if policy is None else policy
        start = time.perf_counter()
        if policy.learned:
            policy.fit(train.trainer(epochs=epochs))
        policy.train_seconds_ = time.perf_counter() - start
        return policy

    def test(self, model: Any, parts: ConversationSetup, *, ks=(), backend=None, seed: int | None = None,
             progress=None, simulated_user=None) -> tuple[dict, str]:
        """The held-out episodes played: the metrics of :func:`~penchant.eval.conversation.conversation_metrics`
        (with the transcripts of a user who answers in words) and one line."""
        result = play(parts, model, seed=seed, progress=progress, simulated_user=simulated_user)
        return result, f"hDCG {result['hdcg']:.4f}  SR@15 {result['sr@15']:.4f}  turns {result['avg_turns']:.2f}"


def play(setup: ConversationSetup, policy: Any, *, seed: int | None = None, progress=None,
         simulated_user=None) -> dict:
    """Play the test episodes with a (trained) ``policy``; metrics plus timing and settings."""
    seed = setup.seed if seed is None else seed
    history = policy.history_
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
    return {"policy": policy.name} | metrics | {
        "params": policy.params(), "train_seconds": round(getattr(policy, "train_seconds_", 0.0), 2),
        "ms_per_episode": round(1000 * (time.perf_counter() - start) / max(1, len(users)), 2),
        "selection_hdcg_by_epoch": None if history is None else [round(h, 4) for h in history],
        "attributes": setup.graph.n_values, "model": setup.model_name}


TASK = register_task(ConversationTask())


def evaluate_policy(setup: ConversationSetup, name: str, *, multi_choice: int = 0, epochs: int = 12,
                    seed: int | None = None, progress=None, simulated_user=None, policy=None) -> dict:
    """Train ``name`` on the validation episodes (if it learns) and play the test episodes through
    the task: the metrics of :func:`penchant.eval.conversation.conversation_metrics` plus timing and
    settings. ``simulated_user`` makes the test episodes' user (see
    :func:`penchant.converse.simulator.run_episode`); training always uses the attribute user.
    ``policy``: the (untrained) policy object to train and play, for a caller that keeps it (the
    service saves its decision); by default a new one."""
    params = {"multi_choice": multi_choice} if multi_choice else {}
    fitted = TASK.fit(name, params, setup, epochs=epochs, policy=policy)
    return TASK.test(fitted, setup, seed=seed, progress=progress, simulated_user=simulated_user)[0]
