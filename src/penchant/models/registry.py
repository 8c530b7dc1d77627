"""Models by name, with their hyper-parameters, so the CLI and service can build them from text."""

from __future__ import annotations

import inspect
from typing import Any

from penchant.errors import ConfigError
from penchant.models.base import Recommender

_REGISTRY: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator: make a model available under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"model name {cls.name!r} is taken by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def model_class(name: str) -> type[Recommender]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(model_names())}") from None


def param_specs(name: str) -> list[dict[str, Any]]:
    """Each parameter of a model: name, type (as text), default and description."""
    cls = model_class(name)
    sig = inspect.signature(cls.__init__)
    docs = _param_docs(cls)
    out = []
    for p in sig.parameters.values():
        if p.kind != p.KEYWORD_ONLY:
            continue
        out.append({"name": p.name, "type": str(p.annotation).replace("typing.", ""),
                    "default": p.default, "help": docs.get(p.name, "")})
    return out


def _param_docs(cls: type) -> dict[str, str]:
    """Descriptions from the class docstring's ``Args:`` section (``name: text`` lines)."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    in_args = False
    current = None
    for line in doc.splitlines():
        if line.strip() == "Args:":
            in_args = True
            continue
        if in_args:
            if not line.startswith("    ") and line.strip():
                break
            stripped = line.strip()
            if line.startswith("    ") and not line.startswith("        ") and ":" in stripped:
                current, _, text = stripped.partition(":")
                out[current] = text.strip()
            elif current and stripped:
                out[current] += " " + stripped
    return out


def _convert(value: Any, default: Any, annotation: Any, key: str, model: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    kinds = str(annotation)
    if text.lower() in ("none", "null") and ("None" in kinds or default is None):
        return None
    try:
        if isinstance(default, bool) or kinds == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int) or kinds.startswith("int"):
            return int(text)
        if isinstance(default, float) or "float" in kinds:
            return float(text)
    except ValueError:
        raise ConfigError(f"model {model!r}: parameter {key}={value!r} is not a valid {kinds}") from None
    return text


def create(name: str, **params: Any) -> Recommender:
    """Build model ``name`` with ``params`` (strings are converted to each parameter's type).

    An unknown parameter is an error that lists the known ones.
    """
    cls = model_class(name)
    sig = inspect.signature(cls.__init__)
    known = {p.name: p for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}
    converted = {}
    for key, value in params.items():
        if key not in known:
            raise ConfigError(f"model {name!r} has no parameter {key!r}; its parameters: {', '.join(known) or 'none'}")
        converted[key] = _convert(value, known[key].default, known[key].annotation, key, name)
    try:
        return cls(**converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
