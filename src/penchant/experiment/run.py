"""Fit-then-evaluate, the one protocol behind ``penchant evaluate``, ``compare``, ``quickstart`` and
``llm summarize``; fitting goes through the model's task (:mod:`penchant.experiment.tasks`).

The model is fitted on train; validation data serves only its selection (through a validator)
and is masked, together with train, when ranking for the test users.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from penchant import DEFAULT_SEED
from penchant.backends import Backend
from penchant.data import Dataset
from penchant.eval.evaluate import EvalResult, Target, build_target, evaluate
from penchant.experiment.tasks import task_for
from penchant.models.protocols import SessionScorer


def parse_model_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"itemknn:k=200,shrink=50"`` -> ``("itemknn", {"k": "200", "shrink": "50"})``."""
    name, _, rest = spec.partition(":")
    return name.strip(), parse_params([p for p in rest.split(",") if p.strip()])


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``["k=10", "shrink=5"]`` -> dict; a pair without ``=`` is an error naming it."""
    from penchant.errors import ConfigError

    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"parameter {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def run(name: str, params: dict[str, Any], train: Dataset, valid: Dataset | None, test: Dataset, *,
        ks: list[int], metric: str = "ndcg@10", target: Target | None = None, sampled: int | None = None,
        seed: int = DEFAULT_SEED, label: str | None = None, status: Callable[[str], None] | None = None,
        backend: str | Backend | None = None) -> EvalResult:
    """Fit model ``name`` on ``train`` (selecting on ``valid``) and evaluate it on ``test``, ranking
    the test users' blocks on ``backend`` (see :mod:`penchant.backends`)."""
    if status:
        status(f"fitting {label or name}")
    start = time.perf_counter()
    model = task_for(name, ("ranking", "rating", "sequential")).fit(name, params, train, valid, metric=metric)
    fit_seconds = time.perf_counter() - start
    if status:
        status(f"evaluating {label or name}")
    if isinstance(model, SessionScorer) and valid is not None and valid.n_interactions:
        model.partial_fit(valid)  # the test item comes after the validation item in each history
    extra = tuple(p for p in (valid,) if p is not None)
    target = target or build_target(train, test, extra)
    result = evaluate(model, train, test, ks=ks, target=target, sampled=sampled, seed=seed, label=name,
                      backend=backend)
    result.fit_seconds = fit_seconds
    result.extra["trials"] = len(model.selection_ or ()) or 1
    if model.epoch_seconds_:
        result.extra["epoch_seconds"] = sum(model.epoch_seconds_) / len(model.epoch_seconds_)  # training only
    selected = model.selected()
    if selected:
        result.extra["selected"] = selected
    if label:
        result.extra["label"] = label
    return result
