"""One syntax for choosing a model everywhere: ``--model NAME`` or ``--model NAME:key=value,...``,
plus ``--param key=value`` (repeatable; it wins over the same key in the name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_spec(model: str, param: list[str], family: str | tuple[str, ...] | None = None) -> tuple[str, dict[str, Any]]:
    """The registry name (aliases resolved) and its parameters converted by the registry's rules;
    an unknown name, a model of another family or a bad parameter is a ConfigError."""
    from penchant.experiment.run import parse_model_spec, parse_params
    from penchant.models.registry import convert_params, entry

    name, inline = parse_model_spec(model)
    found = entry(name, family)
    return found.name, convert_params(found.name, {**inline, **parse_params(param)})


def data_path(positional: Path | None, option: Path | None, *, required: bool = True) -> Path | None:
    """One data set is a positional path in every command (``--data PATH`` is accepted too)."""
    from penchant.errors import ConfigError

    if positional is not None and option is not None and positional != option:
        raise ConfigError(f"two data sets given ({positional} and --data {option}); give one")
    path = positional if positional is not None else option
    if path is None and required:
        raise ConfigError("give the data set: a path (or --data PATH)")
    return path
