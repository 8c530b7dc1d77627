"""Hyper-parameter search on a Ray cluster: Ray Tune driving the same Optuna search.

Each model's ``search_space`` becomes Optuna distributions for Ray Tune's ``OptunaSearch``, with the
seeded TPE sampler of the local search (:func:`penchant.experiment.tune.sampler`). Trials run in
parallel as Ray actors, one CPU each; every trial builds its validation judge on its node from
the train and valid parts put once into the object store, and reports each intermediate
validation value, so Ray's median stopping rule ends a trial that is clearly worse than the others
(the counterpart of Optuna's median pruner in the local search).

The same trials as the local search: while TPE is in its random start-up (its first 10 trials)
the seeded sampler proposes the same parameters in the same order, and each trial's value is the
same fit judged on the same data. After that, TPE proposes from the trials finished so far, and
trials running in parallel have seen fewer of them than a sequential search would have.

Imported only by :func:`penchant.experiment.tune.tune` on the Ray backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

from penchant.experiment.tune import Search, sampler, search
from penchant.models.search import Choice, Float, Int

#: where Ray Tune keeps trial results: a path every node can write (a shared folder or a bucket
#: such as ``s3://...``) on a multi-machine cluster; a temporary folder on the driver by default
ENV_STORAGE = "PENCHANT_RAY_STORAGE"


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """The Optuna distributions of a model's ``search_space`` (what the local search suggests)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Int):
            out[name] = IntDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Float):
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = CategoricalDistribution(list(dim.options))
        else:
            raise TypeError(f"unknown search dimension {dim!r}")
    return out


def _trial(config: dict[str, Any], request: dict[str, Any]) -> None:
    """One trial, run by Ray Tune on some node: fit with ``config`` and report every validation."""
    from ray import tune

    job = search(request["name"], request["train"], request["valid"], metric=request["metric"],
                 fixed=request["fixed"])
    best = [float("-inf")]

    def report(model: Any) -> float:
        value = job.judge(model)
        best[0] = max(best[0], value)
        tune.report({"value": value, "best": best[0], "complete": 0})
        return value

    value = job.judge(job.fit({**job.fixed, **config}, report))
    tune.report({"value": value, "best": max(best[0], value), "complete": 1})


def tune_on_ray(job: Search, *, metric: str, trials: int, seed: int, timeout: float | None,
                progress: Callable[[int, float], None] | None) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """Run ``job`` on the Ray cluster this process is connected to (the Ray backend connects it):
    the best parameters (fixed ones included), its validation value, and every trial as
    ``{"number", "params", "value", "state", "seconds"}``. ``metric`` is the one asked for, which
    each trial's own :class:`Search` is built with."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(space=distributions(job.space), metric="value", mode="max", sampler=sampler(seed))
    stopper = MedianStoppingRule(time_attr="training_iteration", metric="value", mode="max", grace_period=1,
                                 min_samples_required=3)
    request = {"name": job.name, "train": job.train, "valid": job.valid, "metric": metric, "fixed": job.fixed}
    trainable = tune.with_resources(tune.with_parameters(_trial, request=request), {"cpu": 1})
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray Tune's own tables stay off the terminal (verbose=0)
    storage = os.environ.get(ENV_STORAGE)
    scratch = None if storage else tempfile.mkdtemp(prefix="penchant-tune-")
    callbacks = [_Progress(progress)] if progress else []
    try:
        tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, scheduler=stopper,
                                                                  num_samples=trials, time_budget_s=timeout,
                                                                  reuse_actors=True),
                           run_config=tune.RunConfig(name=f"penchant-{job.name}", storage_path=storage or scratch,
                                                     verbose=0, callbacks=callbacks))
        with warnings.catch_warnings():
            # OptunaSearch hands Optuna the final value at a step it already reported; Optuna keeps the first
            warnings.filterwarnings("ignore", message="The reported value is ignored")
            logging.getLogger("ray.tune").setLevel(logging.WARNING)
            grid = tuner.fit()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    results = sorted(grid, key=_created)  # the order the sampler proposed them in
    for result in results:
        if result.error is not None:
            raise result.error
    records = []
    for number, result in enumerate(results):
        m = result.metrics
        complete = bool(m.get("complete"))
        records.append({"number": number, "params": {**job.fixed, **result.config},
                        "value": float(m["value"] if complete else m["best"]),
                        "state": "complete" if complete else "pruned",
                        "seconds": round(float(m.get("time_total_s", 0.0)), 3)})
    finished = [r for r in records if r["state"] == "complete"]
    if not finished:
        from penchant.errors import ConfigError

        raise ConfigError(f"no trial of {job.name} finished on the Ray cluster ({len(records)} started)")
    best = max(finished, key=lambda r: r["value"])  # the first of equals, as Optuna keeps
    return dict(best["params"]), best["value"], records


def _created(result: Any) -> int:
    """A trial's place in the order Ray Tune created it (the counter its experiment tag starts with)."""
    tag = str((result.metrics or {}).get("experiment_tag", ""))
    head = tag.split("_", 1)[0]
    return int(head) if head.isdigit() else 1 << 30


class _Progress:
    """A Ray Tune callback calling ``progress(finished trials, best value so far)`` in the driver.

    Ray Tune pickles its callbacks with the experiment's state; the progress function (a live
    progress bar) stays out of that copy.
    """

    def __new__(cls, progress: Callable[[int, float], None]):
        from ray.tune import Callback

        class Progress(Callback):
            def __init__(self):
                self.done, self.best = 0, float("-inf")

            def __getstate__(self):
                return {"done": self.done, "best": self.best}

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.done += 1
                result = trial.last_result or {}
                self.best = max(self.best, float(result.get("best", float("-inf"))))
                if "_progress" in self.__dict__:
                    self._progress(self.done, self.best)

        made = Progress()
        made._progress = progress
        return made
