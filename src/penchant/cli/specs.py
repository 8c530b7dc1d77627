"""One syntax for choosing a model everywhere: ``--model NAME`` or ``--model NAME:key=value,...``,
plus ``--param key=value`` (repeatable; it wins over the same key in the name)."""

from __future__ import annotations

from typing import Any


def model_spec(model: str, param: list[str], family: str | tuple[str, ...] | None = None) -> tuple[str, dict[str, Any]]:
    """The registry name (aliases resolved) and its parameters converted by the registry's rules;
    an unknown name, a model of another family or a bad parameter is a ConfigError."""
    from penchant.experiment.run import parse_model_spec, parse_params
    from penchant.models.registry import convert_params, entry

    name, inline = parse_model_spec(model)
    found = entry(name, family)
    return found.name, convert_params(found.name, {**inline, **parse_params(param)})
