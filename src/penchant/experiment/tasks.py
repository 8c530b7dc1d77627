"""One task per family: how a registered model of that family reads its data, is fitted (selecting
on validation), is judged during a search, is evaluated, and is trained by the service.

The CLI, ``tune``, the service's training jobs, the benchmarks and ``llm`` ask :func:`task_for` and
call the task; nobody branches on a family name. A new family plugs in by adding its task to
``TASKS``.

=============  ===========================================  ==========================================
task           data                                         judged by
=============  ===========================================  ==========================================
``ranking``    interaction logs (train/valid/test files)    ``metric`` (NDCG@10) over the full catalogue
``sequential`` the same logs, read in time order            the same
``rating``     logs with explicit ratings                   RMSE on the validation ratings (``-rmse``)
``preference`` comparison files (TRL text or id pairs)      pair accuracy, ties counted ½
=============  ===========================================  ==========================================

Conversation policies (``conversation``: :mod:`penchant.converse.experiment`) and the simulators'
policies (``slate``, ``long-term``: :mod:`penchant.simulate.tasks`) have their tasks where they are
run, above this layer; :func:`task_for` finds them by module name. Their ``read`` builds what they
learn in (an attribute graph with simulated episodes, simulated worlds), their ``fit`` trains a
policy there and their ``test`` plays held-out episodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError, DataError
from penchant.models.registry import create, entry


@dataclass
class Parts:
    """What a task read: train, validation (None when there is none) and test (None when not asked)."""

    train: Any
    valid: Any
    test: Any

    def describe(self) -> str:
        """One line: how much each part holds."""
        return ", ".join(f"{name} {_size(part)}" for name, part in
                         (("train", self.train), ("valid", self.valid), ("test", self.test)) if part is not None)


def _size(part: Any) -> str:
    n = getattr(part, "n_interactions", None)
    return f"{n:,} interactions" if n is not None else f"{len(part):,} pairs"


class Task:
    """The protocol every family's task keeps (see the module)."""

    #: the families whose models this task fits
    families: ClassVar[tuple[str, ...]] = ()
    #: what the service keeps a fitted model as (``recommender`` or ``preference``; None: not served as a version)
    service_kind: ClassVar[str | None] = None
    #: the name of the value :meth:`judge` returns (higher is better)
    default_metric: ClassVar[str] = "ndcg@10"

    def read(self, train: str | Path, valid: str | Path | None = None, test: str | Path | None = None, *,
             seed: int = DEFAULT_SEED, **options: Any) -> Parts:
        """The files as :class:`Parts` over one vocabulary."""
        raise NotImplementedError

    def create(self, name: str, params: dict[str, Any]) -> Any:
        """An unfitted model of this task's families (a ConfigError names a bad name or parameter)."""
        return create(name, family=self.families, **params)

    def fit(self, name: str, params: dict[str, Any], train: Any, valid: Any = None, *, metric: str | None = None,
            report: Callable[[Any], float] | None = None) -> Any:
        """Model ``name`` fitted on ``train``, selecting and stopping early on ``valid``. ``report``,
        when given, replaces the validation judge (a search sees each intermediate value)."""
        raise NotImplementedError

    def judge(self, train: Any, valid: Any, metric: str | None = None) -> tuple[Callable[[Any], float], str]:
        """A function scoring a fitted model on ``valid`` (higher is better) and the metric's name."""
        raise NotImplementedError

    def fitted_line(self, name: str, model: Any, parts: Parts, seconds: float) -> str:
        """One line saying what was fitted on what (and what validation chose)."""
        raise NotImplementedError

    def test(self, model: Any, parts: Parts, *, ks: Sequence[int] = (10,), backend: Any = None,
             ) -> tuple[dict[str, Any], str]:
        """A fitted model measured once on ``parts.test``: the figures (JSON-able) and one line."""
        raise NotImplementedError

    def holdout(self, name: str, params: dict[str, Any], data: Any, *, seed: int = 0) -> tuple[Any, dict[str, Any]]:
        """The service's training job: fit on 90% of ``data``, measure on the rest, keep a model
        fitted on what :meth:`holdout` decides (see each task); returns it and its metrics."""
        raise NotImplementedError


class LogTask(Task):
    """Ranking and sequential models on interaction logs."""

    families = ("ranking", "sequential")
    service_kind = "recommender"

    def read(self, train, valid=None, test=None, *, seed=DEFAULT_SEED, min_rating: float | None = None,
             **columns: Any) -> Parts:
        from penchant.data import load, load_triple

        if valid is None and test is None:
            return Parts(load(train, min_rating=min_rating, **columns), None, None)
        if test is None:  # a train/valid pair: read as a triple with valid in the test slot
            from dataclasses import replace

            tr, _, va = load_triple(train, None, valid, min_rating=min_rating, **columns)
            return Parts(tr, replace(va, name="valid"), None)
        tr, va, te = load_triple(train, valid, test, min_rating=min_rating, **columns)
        return Parts(tr, va, te)

    def fit(self, name, params, train, valid=None, *, metric=None, report=None):
        self.create(name, params)  # the name's family is checked before anything is built
        if report is not None:
            return create(name, **params).fit(train, report)
        from penchant.experiment.fitting import fit_model

        return fit_model(name, params, train, valid, metric=metric or self.default_metric)

    def fitted_line(self, name, model, parts, seconds):
        tr, chosen, note = parts.train, model.selected(), model.fit_note()
        return (f"{name} fitted on {tr.n_interactions:,} interactions ({tr.n_users:,} users, {tr.n_items:,} items)"
                + (f"; selected on validation: {chosen}" if chosen else "") + (f"; {note}" if note else ""))

    def judge(self, train, valid, metric=None):
        from penchant.eval.evaluate import validator

        metric = metric or self.default_metric
        return validator(train, valid, metric), metric

    def test(self, model, parts, *, ks=(10,), backend=None):
        """Full-catalogue ranking of the test users, train and valid masked."""
        from penchant.eval.evaluate import evaluate

        extra = tuple(p for p in (parts.valid,) if p is not None)
        result = evaluate(model, parts.train, parts.test, ks=list(ks), also_exclude=extra, backend=backend)
        line = "  ".join(f"{m} {v:.4f}" for m, v in result.metrics().items() if m.split("@")[0] in ("ndcg", "recall"))
        return result.to_json(), line

    def holdout(self, name, params, data, *, seed=0):
        """90% of each user's interactions to fit, 10% to measure NDCG/recall@10 over the full
        catalogue; the kept model is refitted on everything."""
        from penchant.data.split import random_holdout
        from penchant.eval.evaluate import evaluate

        if data.n_interactions == 0:
            raise DataError("no positive feedback to learn from")
        split = random_holdout(data, (0.9, 0.0, 0.1), seed=seed)
        held = self.fit(name, params, split.train)
        result = evaluate(held, split.train, split.test, ks=(min(10, data.n_items),), beyond_accuracy=False)
        metrics = _finite(result.metrics()) | {"users": data.n_users, "items": data.n_items,
                                               "interactions": data.n_interactions}
        return self.fit(name, params, data), metrics


class RatingTask(LogTask):
    """Rating models: the same logs and fit (selection by ``metric`` over the catalogue, as every
    ranking leaderboard does); a search judges them by RMSE on the validation ratings."""

    families = ("rating",)
    default_metric = "-rmse"

    def judge(self, train, valid, metric=None):
        from penchant.eval.rating import rating_validator

        if valid.ratings is None:
            raise DataError(f"{valid.name} has no ratings to judge a rating model on", expected="a rating column")
        lo, hi = float(valid.ratings.min()), float(valid.ratings.max())
        return rating_validator(valid, (lo, hi)), "-rmse"


class PreferenceTask(Task):
    """Pairwise preference models on comparison files (TRL text or winner/loser ids)."""

    families = ("preference",)
    service_kind = "preference"
    default_metric = "accuracy"

    def read(self, train, valid=None, test=None, *, seed=DEFAULT_SEED, min_rating: float | None = None,
             encoding: str = "utf-8", **columns: Any) -> Parts:
        """Every file over one vocabulary; without ``valid``, 10% of the training prompts (or pairs,
        for files without prompts) are set apart for it, by ``seed``: the same carve-out whether or
        not a test file is read beside. Comparison files are UTF-8 with their own column names."""
        from penchant.data.pair_files import merge_pairs, read_pairs
        from penchant.data.preferences import split_pairs

        given = sorted(k for k, v in columns.items() if v is not None) + (["min_rating"] if min_rating is not None else [])
        if given or encoding.lower().replace("-", "") != "utf8":
            raise ConfigError(f"comparison files take no {', '.join(given) or 'encoding'} option: their columns are "
                              "prompt/chosen/rejected/user (TRL) or user/winner/loser, in UTF-8")
        files = [train] + ([valid] if valid else []) + ([test] if test else [])
        alone = [read_pairs(f) for f in files]
        merged, where = merge_pairs(alone)
        parts = [merged.subset(idx) for idx in where]
        tr = replace(parts[0], name=Path(train).name)
        if valid is None:  # carved from the training file as read alone: the same pairs whatever is read beside it
            by = "group" if tr.option_context is not None else "pair"
            carve = split_pairs(alone[0], (0.9, 0.1, 0.0), by=by, seed=seed)
            tr, va = (tr.subset(carve.part == p, part.steps[-1]) for p, part in enumerate((carve.train, carve.valid)))
        else:
            va = replace(parts[1], name=Path(valid).name)
        return Parts(tr, va, replace(parts[-1], name=Path(test).name) if test else None)

    def fit(self, name, params, train, valid=None, *, metric=None, report=None):
        return self.create(name, params).fit(train, valid)

    def judge(self, train, valid, metric=None):
        return (lambda model: pair_accuracy(model, valid)), "accuracy"

    def fitted_line(self, name, model, parts, seconds):
        va = parts.valid
        judged = (f"validation accuracy {pair_accuracy(model, va):.4f} on {len(va):,} pairs" if va is not None and len(va)
                  else "no validation pairs (too few to set any apart)")
        return f"{name} fitted on {len(parts.train):,} pairs in {seconds:.1f} s; {judged}"

    def report(self, model: Any, label: str, test: Any, valid: Any, *, seed: int = DEFAULT_SEED,
               seconds: float = 0.0) -> dict[str, Any]:
        """Held-out accuracy (ties ½), its interval (users resampled when there are more than ten),
        log-loss, Brier, calibration and per-user figures of ``model`` on ``test``."""
        from penchant.eval.prefs import evaluate_pairs

        resample = "users" if (test.user >= 0).any() and len(set(test.user[test.user >= 0])) > 10 else "pairs"
        row = evaluate_pairs(model, test, valid, label=label, seed=seed, resample=resample).row()
        return row | {"fit_seconds": round(seconds, 3)}

    def split_source(self, data: str | Path, source: str, *, split: str = "pair", seed: int = DEFAULT_SEED) -> Any:
        """One comparison source split 80/10/10 (a :class:`~penchant.data.preferences.PairSplit`):
        ``text`` (TRL prompt/chosen/rejected) or ``ids`` (user?/winner/loser) split ``by`` pair,
        group or user; ``ratings`` (a log) split per user before pairs are drawn in each part."""
        from penchant.data import load, read_id_comparisons, read_text_comparisons
        from penchant.data.preferences import rating_pair_split, split_pairs

        if source not in PAIR_SOURCES:
            raise ConfigError(f"--source must be one of {', '.join(PAIR_SOURCES)}, not {source!r}")
        if source == "ratings":
            return rating_pair_split(load(data), seed=seed)
        pairs = read_text_comparisons(data) if source == "text" else read_id_comparisons(data)
        return split_pairs(pairs, (0.8, 0.1, 0.1), by=split, seed=seed)

    def compare(self, runs: Sequence[tuple[str, dict[str, Any]]], parts: Any, *, seed: int = DEFAULT_SEED,
                progress: Callable[[int, str], None] | None = None) -> list[dict[str, Any]]:
        """The pair experiment: each (name, params) fitted on ``parts.train`` (early stopping on
        ``parts.valid``) and reported on ``parts.test``, in the order given. ``progress(done, what)``
        before each fit and evaluation."""
        rows = []
        for done, (name, params) in enumerate(runs):
            label = run_label(name, params)
            if progress:
                progress(done, f"fitting {label}")
            start = time.perf_counter()
            fitted = self.fit(name, params, parts.train, parts.valid)
            seconds = time.perf_counter() - start
            if progress:
                progress(done, f"evaluating {label}")
            rows.append(self.report(fitted, label, parts.test, parts.valid, seed=seed, seconds=seconds))
        if progress:
            progress(len(runs), "done")
        return rows

    def test(self, model, parts, *, ks=(10,), backend=None):
        """Accuracy on the test pairs, ties counted ½."""
        accuracy = pair_accuracy(model, parts.test)
        return {"accuracy": accuracy, "pairs": len(parts.test)}, f"accuracy {accuracy:.4f} on {len(parts.test):,} pairs"

    def holdout(self, name, params, data, *, seed=0):
        """90% of the comparisons to fit (early stopping on the other 10%), which also measure it;
        that model is kept."""
        from penchant.data.preferences import split_pairs
        from penchant.eval.prefs import evaluate_pairs

        if len(data) < 10:
            raise DataError(f"{len(data)} comparisons stored; at least 10 are needed")
        split = split_pairs(data, (0.9, 0.1, 0.0), seed=seed)
        model = self.fit(name, params, split.train, split.valid)
        report = evaluate_pairs(model, split.valid, resample="pairs")
        metrics = _finite({"accuracy": report.accuracy, "log_loss": report.log_loss})
        return model, metrics | {"comparisons": len(data), "users": data.n_users, "options": data.n_options}


#: what a comparison source for the pair experiment holds (:meth:`PreferenceTask.split_source`)
PAIR_SOURCES = ("text", "ids", "ratings")


def baselines(text: bool) -> list[tuple[str, dict[str, Any]]]:
    """The pair experiment's baselines, always shown: the majority (win rate), global Bradley–Terry
    and, on text, reply length."""
    return [("winrate", {}), ("bt", {})] + ([("bt", {"features": "length"})] if text else [])


def run_label(name: str, params: dict[str, Any]) -> str:
    """A result row's name: the model and its settings, e.g. ``bt features=length``."""
    return name + "".join(f" {k}={v}" for k, v in params.items())


def pair_accuracy(model: Any, pairs: Any) -> float:
    """Share of ``pairs`` whose winner gets P > ½ from ``model``, ties counted ½."""
    from penchant.eval.prefs import pair_accuracy as credit

    return float(credit(model.prob(pairs.user, pairs.winner, pairs.loser)).mean())


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """Rounded; NaN (too little data to hold any out) as None: JSON has no NaN, PostgreSQL refuses it."""
    return {k: round(float(v), 5) if np.isfinite(v) else None for k, v in metrics.items()}


_LOG, _RATING, _PREFERENCE = LogTask(), RatingTask(), PreferenceTask()
#: every family and its task (the families that live above this layer add theirs, see _PLUG_INS)
TASKS: dict[str, Task] = {"ranking": _LOG, "sequential": _LOG, "rating": _RATING, "preference": _PREFERENCE}
#: the families a task can fit from files (what `penchant fit`, `tune` and the service take)
FILE_FAMILIES = tuple(TASKS)
#: modules whose import adds the tasks of the families that live above this layer (conversation
#: policies in penchant.converse, the simulators' policies in penchant.simulate, and the ctr family's
#: task, which imports this module); found by name, as the registry finds their policies, so this
#: layer never imports them
_PLUG_INS = ("penchant.converse.experiment", "penchant.simulate.tasks", "penchant.experiment.ctr_task")


def register_task(task: Task) -> Task:
    """Make ``task`` the task of each of its families (the plug-in modules call this on import)."""
    for family in task.families:
        TASKS[family] = task
    return task


def task_for(name: str, families: Sequence[str] = FILE_FAMILIES) -> Task:
    """The task of registered model or policy ``name`` (an alias too); a model of another family
    than ``families`` is a ConfigError listing the names the caller takes."""
    family = entry(name, tuple(families)).family
    if family not in TASKS:
        import importlib

        for module in _PLUG_INS:
            importlib.import_module(module)
    return TASKS[family]
