"""Hyper-parameter search spaces, declared beside each model and read by ``penchant tune``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]


Space = dict[str, Int | Float | Choice]


def select_on_validation(model: Any, settings: list[dict[str, Any]], build: Callable[[dict[str, Any]], Any],
                         valid: Callable[[Any], float]) -> dict[str, Any]:
    """Give ``model.weights_`` each setting's ``build(setting)``, score it with ``valid``, and keep the
    best; records every setting with its score in ``model.selection_`` and returns the chosen one."""
    model.selection_ = []
    best: tuple[float, dict[str, Any], Any] = (float("-inf"), settings[0], None)
    for setting in settings:
        model.weights_ = build(setting)
        value = valid(model)
        model.selection_.append({**setting, "valid": value})
        if value > best[0]:
            best = (value, setting, model.weights_)
    model.weights_ = best[2]
    return best[1]
