"""Every model of every family by name: its class, family, typed parameters, search space and aliases.

One registry serves the CLI, tuning, evaluation, ``prefs`` and the service. A model's parameters are
its constructor's keyword-only arguments, typed by their annotations; :func:`params_class` makes them
one pydantic class per model (unknown keys forbidden), from which the registry reads names, types,
defaults, help (the class docstring's ``Args:``) and checks the search space. :func:`create`
validates every value through it (strings converted by one set of rules) and an unknown key or a
bad value is a one-line :class:`~penchant.errors.ConfigError` naming the parameter and what it accepts.

Families (``FAMILIES``): ``ranking`` (top-K over a catalogue from implicit feedback), ``rating``
(explicit ratings), ``sequential`` (next item from the order of a history), ``preference`` (A-versus-B
choices), ``conversation`` (elicitation policies, built over an attribute graph), ``slate`` (bandit and
slate policies, built for a slate world) and ``long-term`` (policies for the long-term world, built for
its worlds) and ``ctr`` (click probabilities from feature rows: :mod:`penchant.models.ctr`). The
policies live above ``penchant.models`` and are found as plug-ins (``_PROVIDERS``).
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from penchant.errors import ConfigError

FAMILIES = ("ranking", "rating", "sequential", "preference", "conversation", "slate", "long-term", "ctr")
#: modules whose import registers a family's models; imported on first look-up. The conversation and
#: simulation policies live above ``penchant.models`` and are found here as plug-ins, not imported by it.
_PROVIDERS = ("penchant.models", "penchant.models.preference", "penchant.models.ctr", "penchant.models.two_stage",
              "penchant.converse.policies",
              "penchant.llm.rating",
              "penchant.simulate.policies", "penchant.converse.oracle", "penchant.converse.tree",
              "penchant.converse.ear", "penchant.converse.cpr", "penchant.converse.unicorn")


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
    """Build model ``name`` with ``params`` validated by its typed parameter class (strings converted).

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
    """``params`` validated by model ``name``'s parameter class (:func:`params_class`): strings
    converted to each parameter's type, an unknown key or a bad value a one-line ConfigError.
    Returns only the keys given (the model's defaults stay its own)."""
    found = entry(name)
    known = params_class(found.cls).model_fields
    for key in params:
        if key not in known:
            raise ConfigError(f"model {found.name!r} has no parameter {key!r}; its parameters: "
                              f"{', '.join(known) or 'none'}")
    values = {k: _none_word(v, known[k]) for k, v in params.items()}
    try:
        checked = params_class(found.cls).model_validate(values)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0])
        raise ConfigError(_bad_value(found.name, key, params[key], known[key])) from None
    return {k: getattr(checked, k) for k in params}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def params_class(cls: type) -> type[BaseModel]:
    """The typed parameter class of a model class: one field per keyword-only constructor argument,
    typed by its annotation, defaulting to its default, described by the class docstring's ``Args:``
    section; unknown keys forbidden. Derived once per class and kept; the registry reads names,
    types, defaults and help from it, and a ``search_space`` naming anything else is refused."""
    config = _CLASSES.get(cls)
    if config is None:
        hints = typing.get_type_hints(cls.__init__)
        docs = _param_docs(cls)
        fields: dict[str, Any] = {}
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind == p.KEYWORD_ONLY:
                fields[p.name] = (_word_typed(hints.get(p.name, Any)),
                                  Field(default=p.default, description=_plain(docs.get(p.name, ""))))
        unknown = set(getattr(cls, "search_space", {}) or {}) - set(fields)
        if unknown:
            raise TypeError(f"{cls.__name__}.search_space names {sorted(unknown)}, which are not its parameters")
        config = _CLASSES[cls] = create_model(f"{cls.__name__}Params", __config__=_FORBID_UNKNOWN, **fields)
    return config


_CLASSES: dict[type, type[BaseModel]] = {}
_FORBID_UNKNOWN = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _word_typed(kind: Any) -> Any:
    """A boolean reads only the words of one rule (true/false, yes/no, on/off, 1/0) or a bool; an int
    only an integer literal."""
    if kind is bool:
        return Annotated[bool, BeforeValidator(_boolean)]
    return Annotated[int, BeforeValidator(_integer)] if kind is int else kind


def _integer(value: Any) -> Any:
    """A string for an int is an integer literal: "0.0" is refused as "3.5" is, not read as 0."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("not a valid int") from None
    return value


def _boolean(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("not a boolean")


def _none_word(value: Any, field: FieldInfo) -> Any:
    """A string stripped; ``none``/``null`` (any case) as None where the parameter takes None."""
    if not isinstance(value, str):
        return value
    if value.strip().lower() in ("none", "null") and (field.default is None or type(None) in typing.get_args(field.annotation)):
        return None
    return value.strip()


def _bad_value(model: str, key: str, value: Any, field: FieldInfo) -> str:
    kind = _type_text(field.annotation)
    if kind == "bool":
        return f"model {model!r}: parameter {key}={value!r} is not a boolean (accepted: true/false, yes/no, on/off, 1/0)"
    return f"model {model!r}: parameter {key}={value!r} is not a valid {kind}"


def _params(cls: type) -> list[Param]:
    return [Param(name, _type_text(f.annotation), f.default, f.description or "")
            for name, f in params_class(cls).model_fields.items()]


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``:mod:`.features``` -> ``.features``, double backquotes dropped."""
    return re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")


def _type_text(annotation: Any) -> str:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
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
