"""Hyper-parameter search with Optuna on the validation split, with pruning of early-stopped runs.

Each trial fits the model on train with parameters drawn from the model's ``search_space``.
The validator handed to ``fit`` reports every intermediate validation score to Optuna, so a
model that checks validation each few epochs (the gradient-trained ones) is stopped early when
its trial is clearly worse than earlier ones (median pruning). The best parameters are then
refitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from penchant import DEFAULT_SEED
from penchant.backends import Backend, resolve
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.experiment.tasks import Task, task_for
from penchant.models import Recommender
from penchant.models.registry import entry
from penchant.models.search import Choice, Float, Int


@dataclass
class TuneResult:
    """Every trial (parameters, validation value, state, seconds) and the refitted best model."""

    model: str
    metric: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_model: Recommender | None = None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "best_params": self.best_params,
                "best_value": self.best_value, "trials": self.trials}


def _suggest(trial, name: str, dim) -> Any:
    if isinstance(dim, Int):
        return trial.suggest_int(name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, Float):
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    if isinstance(dim, Choice):
        return trial.suggest_categorical(name, list(dim.options))
    raise TypeError(f"unknown search dimension {dim!r}")


@dataclass
class Search:
    """One search: the model, the fixed parameters and the searched space, and how a fitted model
    is judged on the validation part (its family's task). Built where the trials run (it holds the data)."""

    name: str
    train: Any
    valid: Any
    fixed: dict[str, Any]
    space: dict[str, Any]
    task: Task
    metric: str
    judge: Callable[[Any], float]

    def fit(self, params: dict[str, Any], report: Callable[[Recommender], float] | None = None) -> Any:
        """The model with ``params`` fitted on train through its task; ``report`` sees each
        intermediate validation (a pairwise model early-stops on the validation pairs themselves)."""
        return self.task.fit(self.name, params, self.train, self.valid, report=report or self.judge)


def search(name: str, train: Dataset, valid: Dataset, *, metric: str = "ndcg@10",
           fixed: dict[str, Any] | None = None) -> Search:
    """The :class:`Search` of model ``name``: its space less ``fixed``, and its task's judge (see :func:`tune`)."""
    job = task_for(name)
    found = entry(name)
    fixed = dict(fixed or {})
    space = {k: v for k, v in found.search_space.items() if k not in fixed}
    if not space:
        raise ConfigError(f"model {found.name!r} has nothing to tune" + (" beyond the fixed parameters" if fixed else ""))
    judge, metric = job.judge(train, valid, metric)
    return Search(found.name, train, valid, fixed, space, job, metric, judge)


def sampler(seed: int):
    """The Optuna sampler of every search, local or on Ray: TPE, seeded."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def tune(name: str, train: Dataset, valid: Dataset, *, trials: int = 20, seed: int = DEFAULT_SEED, metric: str = "ndcg@10",
         fixed: dict[str, Any] | None = None, timeout: float | None = None,
         progress: Callable[[int, float], None] | None = None, backend: str | Backend | None = None) -> TuneResult:
    """Search model ``name``'s space on ``valid``; ``fixed`` parameters are not searched.

    Rating models are judged by validation RMSE (reported as ``-rmse``, higher is better);
    ranking and sequential models by ``metric`` over the full catalogue; preference models (``train``
    and ``valid`` are then :class:`~penchant.data.preferences.PreferencePairs`) by validation
    accuracy, ties counted ½, each trial early-stopping on ``valid`` as ``prefs fit`` does.

    On the Ray backend the trials run in parallel through Ray Tune, with the same search space and
    sampler (:func:`penchant.experiment.tune_ray.tune_on_ray`); the best parameters are refitted here.
    """
    job = search(name, train, valid, metric=metric, fixed=fixed)  # checks the request before any trial runs
    if resolve(backend).name == "ray":  # resolving connects this process to the cluster
        from penchant.experiment.tune_ray import tune_on_ray

        best, value, records = tune_on_ray(job, metric=metric, trials=trials, seed=seed, timeout=timeout,
                                           progress=progress)
        return TuneResult(job.name, job.metric, best, value, records, job.fit(best))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler(seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    records: list[dict[str, Any]] = []

    def objective(trial) -> float:
        params = {**job.fixed, **{k: _suggest(trial, k, dim) for k, dim in job.space.items()}}
        step = {"n": 0, "best": float("-inf")}

        def report(model: Recommender) -> float:
            value = job.judge(model)
            step["best"] = max(step["best"], value)
            trial.report(value, step["n"])
            step["n"] += 1
            if trial.should_prune():
                raise optuna.TrialPruned()
            return value

        start = time.perf_counter()
        record = {"number": trial.number, "params": params}
        try:
            value = job.judge(job.fit(params, report))
            record.update(value=value, state="complete")
            return value
        except optuna.TrialPruned:
            record.update(value=step["best"], state="pruned")
            raise
        finally:
            record["seconds"] = round(time.perf_counter() - start, 3)
            records.append(record)
            if progress:
                progress(len(records), max(r["value"] for r in records))

    study.optimize(objective, n_trials=trials, timeout=timeout)
    best = {**job.fixed, **study.best_params}
    return TuneResult(job.name, job.metric, best, float(study.best_value), records, job.fit(best))
