"""Every model of every family by name: its class, family, typed parameters, search space and aliases.

One registry serves the CLI, tuning, evaluation, ``prefs`` and the service. A model's parameters are
its constructor's keyword-only arguments; :func:`create` converts strings by one set of rules and an
unknown key or a bad value is a :class:`~penchant.errors.ConfigError` naming the parameter and what
it accepts.

Families (``FAMILIES``): ``ranking`` (top-K over a catalogue from implicit feedback), ``rating``
(explicit ratings), ``sequential`` (next item from the order of a history), ``preference`` (A-versus-B
choices) and ``conversation`` (elicitation policies, built over an attribute graph).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant.errors import ConfigError

FAMILIES = ("ranking", "rating", "sequential", "preference", "conversation")
#: modules whose import registers a family's models; imported on first look-up. The conversation
#: policies live above ``penchant.models`` and are found here as plug-ins, not imported by it.
_PROVIDERS = ("penchant.models", "penchant.models.preference", "penchant.converse.policies", "penchant.llm.rating")


@dataclass(frozen=True)
class Entry:
    """One registered model."""

    name: str
    cls: type
    family: str
    aliases: tuple[str, ...]

    @property
    def summary(self) -> str:
        return getattr(self.cls, "summary", "") or (inspect.getdoc(self.cls) or "").split("\n")[0]

    @property
    def search_space(self) -> dict[str, Any]:
        return dict(getattr(self.cls, "search_space", {}) or {})

    def params(self) -> list[Param]:
        return _params(self.cls)


@dataclass(frozen=True)
class Param:
    """A constructor parameter: name, type (as text), default and the docstring's description."""

    name: str
    type: str
    default: Any
    help: str

    def as_json(self) -> dict[str, Any]:
        default = self.default if isinstance(self.default, (int, float, str, bool, type(None))) else repr(self.default)
        return {"name": self.name, "type": self.type, "default": default, "help": self.help}


_REGISTRY: dict[str, Entry] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(cls: type) -> type:
    """Class decorator: make a model available under ``cls.name`` (and ``cls.aliases``) in ``cls.family``."""
    name, family = getattr(cls, "name", ""), getattr(cls, "family", "")
    if not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if family not in FAMILIES:
        raise TypeError(f"{cls.__name__}.family must be one of {FAMILIES}, not {family!r}")
    if name in _REGISTRY and _REGISTRY[name].cls is not cls:
        raise TypeError(f"model name {name!r} is taken by {_REGISTRY[name].cls.__name__}")
    aliases = tuple(getattr(cls, "aliases", ()))
    _REGISTRY[name] = Entry(name, cls, family, aliases)
    for alias in aliases:
        _ALIASES[alias] = name
    return cls


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _PROVIDERS:
            importlib.import_module(module)


def model_names(family: str | None = None) -> list[str]:
    """Registered names, sorted; only ``family``'s when given."""
    _ensure_loaded()
    if family is not None and family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)


def entry(name: str, family: str | tuple[str, ...] | None = None) -> Entry:
    """The entry of ``name`` (or an alias); with ``family``, a model of another family is an error."""
    _ensure_loaded()
    key = _ALIASES.get(name, name)
    families = (family,) if isinstance(family, str) else family
    if key not in _REGISTRY:
        known = model_names() if families is None else [n for f in families for n in model_names(f)]
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(known))}")
    found = _REGISTRY[key]
    if families is not None and found.family not in families:
        known = sorted(n for f in families for n in model_names(f))
        raise ConfigError(f"{name!r} is a {found.family} model; here a {' or '.join(families)} model is needed: "
                          f"{', '.join(known)}")
    return found


def model_class(name: str) -> type:
    return entry(name).cls


def param_specs(name: str) -> list[dict[str, Any]]:
    """Each parameter of a model: name, type (as text), default and description."""
    return [{"name": p.name, "type": p.type, "default": p.default, "help": p.help} for p in entry(name).params()]


def create(name: str, *args: Any, family: str | tuple[str, ...] | None = None, **params: Any) -> Any:
    """Build model ``name`` with ``params``: strings are converted to each parameter's type.

    ``args`` go to the constructor as they are (a conversation policy's attribute graph). An unknown
    parameter lists the known ones; a bad value names the parameter and the values it accepts.
    """
    found = entry(name, family)
    converted = convert_params(found.name, params)
    try:
        return found.cls(*args, **converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {found.name!r}: {exc}") from None


def convert_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with strings converted to model ``name``'s parameter types (see :func:`create`)."""
    found = entry(name)
    known = {p.name: p for p in found.params()}
    out = {}
    for key, value in params.items():
        if key not in known:
            raise ConfigError(f"model {found.name!r} has no parameter {key!r}; its parameters: "
                              f"{', '.join(known) or 'none'}")
        out[key] = convert(value, known[key], found.name)
    return out


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def convert(value: Any, param: Param, model: str) -> Any:
    """One value for ``param``: strings by the parameter's type; other values checked for booleans."""
    kinds, default = param.type, param.default
    is_bool = isinstance(default, bool) or kinds in ("bool", "bool | None")
    if not isinstance(value, str):
        if is_bool and not isinstance(value, (bool, np.bool_)) and value is not None:
            raise ConfigError(f"model {model!r}: parameter {param.name}={value!r} is not a boolean "
                              f"(accepted: true/false, yes/no, on/off, 1/0)")
        return value
    text = value.strip()
    if text.lower() in ("none", "null") and ("None" in kinds or default is None):
        return None
    bad_bool = ConfigError(f"model {model!r}: parameter {param.name}={value!r} is not a boolean "
                           f"(accepted: true/false, yes/no, on/off, 1/0)")
    if is_bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise bad_bool
    try:
        if (isinstance(default, int) and not isinstance(default, bool)) or kinds.startswith("int"):
            return int(text)
        if isinstance(default, float) or kinds.startswith("float") or kinds.startswith("int | float"):
            return float(text)
    except ValueError:
        raise ConfigError(f"model {model!r}: parameter {param.name}={value!r} is not a valid {kinds}") from None
    return text


def _params(cls: type) -> list[Param]:
    sig = inspect.signature(cls.__init__)
    docs = _param_docs(cls)
    return [Param(p.name, _type_text(p.annotation), p.default, _plain(docs.get(p.name, "")))
            for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``:mod:`.features``` -> ``.features``, double backquotes dropped."""
    return re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


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
