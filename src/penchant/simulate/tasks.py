"""The simulators' tasks (:mod:`penchant.experiment.tasks`): families ``slate`` and ``long-term``.

What a task reads is a world, not a file of answers: ``read`` builds it (a synthetic slate world;
the long-term worlds over a data set's tastes, whose recommender is fitted through its own task),
``fit`` builds a registered policy for it and trains it where it learns offline, and ``test`` runs
it: lists served online with regret for a slate policy, simulated users over many steps for a
long-term one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError
from penchant.experiment.tasks import Task, register_task, task_for
from penchant.models.registry import create
from penchant.simulate.experiment import Worlds, movielens_worlds, run_policies, summary
from penchant.simulate.long_term import WorldParams
from penchant.simulate.slate_world import CHOICE_MODELS, SlateWorld


class SlateTask(Task):
    """Bandit and slate policies learning online in a slate world with known best lists."""

    families = ("slate",)
    default_metric = "late_share_of_best"

    def read(self, train: str | Path | None = None, valid=None, test=None, *, seed: int = DEFAULT_SEED,
             users: int = 200, items: int = 50, slate_size: int = 3, dim: int = 4, choice: str = "logit") -> SlateWorld:
        """A synthetic world of ``users`` × ``items`` with random latent tastes (``train`` is not read:
        the world is its own data)."""
        if train is not None or valid is not None or test is not None:
            raise ConfigError("a slate world is synthetic: it reads no file")
        if choice not in CHOICE_MODELS:
            raise ConfigError(f"choice must be one of {', '.join(CHOICE_MODELS)}, not {choice!r}")
        if slate_size > items:
            raise ConfigError(f"--slate-size {slate_size} is more than the {items} items")
        return SlateWorld.synthetic(n_users=users, n_items=items, dim=dim, slate_size=slate_size, choice=choice,
                                    no_click=0.0, scale=2.0, offset=-1.0, seed=seed)

    def fit(self, name: str, params: dict[str, Any], train: SlateWorld, valid=None, *, metric=None, report=None) -> Any:
        """The policy built for the world; it learns online, from what it is shown in :meth:`test`."""
        return create(name, train, family="slate", **params)

    def test(self, model: Any, parts: SlateWorld, *, ks=(), backend=None, rounds: int = 12_000, batch: int = 100,
             seed: int = DEFAULT_SEED) -> tuple[dict[str, Any], str]:
        """``rounds`` lists served, ``batch`` between updates: final regret, its log–log slope, the last
        quarter's share of the best lists' clicks, clicks per list; and the regret curve (``curve``)."""
        from penchant.simulate.loop import run_policy

        start = time.perf_counter()
        run = run_policy(parts, model, rounds, batch=batch, seed=seed)
        late = slice(rounds - max(1, rounds // 4), rounds)
        result = {"regret": float(run.regret[-1]), "regret_slope": run.regret_slope() if run.regret[-1] > 0 else 0.0,
                  "late_share_of_best": float(run.expected[late].mean() / run.best[late].mean()),
                  "clicks_per_list": float(run.reward.mean()), "seconds": time.perf_counter() - start,
                  "curve": np.asarray(run.regret)}
        return result, f"regret {result['regret']:,.1f}, last quarter {result['late_share_of_best']:.3f} of the best"


class LongTermTask(Task):
    """Long-term policies over simulated users whose tastes come from a fitted recommender."""

    families = ("long-term",)
    default_metric = "click"

    def read(self, train: Any, valid=None, test=None, *, seed: int = DEFAULT_SEED, model: str = "als",
             model_params: dict[str, Any] | None = None, params: WorldParams | None = None, users: int = 600,
             train_users: int = 100) -> Worlds:
        """The worlds over ``train``'s tastes (a Dataset): ``model`` fitted on it through its task,
        users drawn from disjoint pools for training, validation and test (see :func:`movielens_worlds`)."""
        if valid is not None or test is not None:
            raise ConfigError("the long-term worlds split their users themselves (60/20/20)")
        recommender = task_for(model, ("ranking",)).fit(model, model_params or {}, train)
        return movielens_worlds(train, recommender, params=params, seed=seed, sizes={"test": users, "train": train_users})

    def fit(self, name: str, params: dict[str, Any], train: Worlds, valid=None, *, metric=None, report=None,
            progress=None) -> Any:
        """The policy built for the worlds, and trained on the training users' worlds (selected on
        the validation users') where it learns."""
        return create(name, train, family="long-term", **params).fit(progress)

    def test(self, model: Any, parts: Worlds, *, ks=(), backend=None, steps: int = 200,
             seed: int = DEFAULT_SEED) -> tuple[dict[str, Any], str]:
        """The policy on the test users' world for ``steps`` steps: the returns, retention and the
        rest of :func:`~penchant.simulate.experiment.summary`, beside the oracle on the same world."""
        oracle = self.fit("oracle", {}, parts)
        episodes = run_policies(parts, {"policy": model, "oracle": oracle}, steps, seed)
        result = summary(episodes["policy"], episodes["oracle"])
        return result, f"clicks {result['return']['click']['mean']:.1f} per user, retention {result['retention']['mean']:.3f}"


SLATE, LONG_TERM = register_task(SlateTask()), register_task(LongTermTask())
