"""The service's settings: one TOML file plus environment variables, validated at start-up (an
unknown key or a value of the wrong type is an error naming it).

```toml
[service]
database_url = "postgresql://user@host/db"   # default: SQLite in the data folder
rate_limit_per_minute = 1200                 # per API key; 429 beyond it
max_request_bytes = 2000000                  # 413 beyond it
max_model_bytes = 1000000000                 # 413 beyond it, for POST /v1/models/import
max_batch = 10000                            # rows per batch request
retrain_every_s = 0                          # 0: retrain only on demand
answer_cache_entries = 10000                 # recent recommendation answers kept (0: none); a user's event invalidates theirs
unknown_users = "create"                     # feedback naming a user not stored: "create" it, or "reject" (422)
unknown_items = "create"                     # the same for items ("reject": the catalogue is managed with PUT /v1/items)
exploration_epsilon = 0.0                    # each slot of a served list shows a random eligible item with this chance
log_impressions = true                       # record every served list (items, positions, propensities, version)
ann_min_items = 100000                       # catalogues this large are served through an approximate index (0: never)

[model]
name = "als"
params = { factors = 64 }

[feedback_types]                             # type name = meaning, or {meaning, weight}
click = "positive"
like = { meaning = "positive", weight = 3.0 }
dislike = "negative"
read = "exposure"
```

A positive pair's value is the sum of the weights of its positive events (default weight 1); it
reaches the models as the data's values (``ratings``), which ``als`` uses with ``values = true``.

Environment variables override the file: ``PENCHANT_DATABASE_URL``, ``PENCHANT_RATE_LIMIT_PER_MINUTE``,
``PENCHANT_RETRAIN_EVERY_S``, ``PENCHANT_MODEL``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from penchant.errors import ConfigError

MEANINGS = ("positive", "negative", "exposure")
DEFAULT_TYPES = {"click": "positive", "like": "positive", "purchase": "positive", "dislike": "negative",
                 "read": "exposure"}


@dataclass(frozen=True)
class Settings:
    """Validated settings (see the module docstring for the file layout)."""

    data_dir: Path
    database_url: str | None = None
    rate_limit_per_minute: int = 1200
    max_request_bytes: int = 2_000_000
    max_model_bytes: int = 1_000_000_000
    max_batch: int = 10_000
    retrain_every_s: float = 0.0
    answer_cache_entries: int = 10_000
    unknown_users: str = "create"
    unknown_items: str = "create"
    exploration_epsilon: float = 0.0
    log_impressions: bool = True
    ann_min_items: int = 100_000
    model: str = "als"
    model_params: dict = field(default_factory=dict)
    feedback_types: dict = field(default_factory=lambda: dict(DEFAULT_TYPES))
    feedback_weights: dict = field(default_factory=dict)

    def meaning(self, kind: str) -> str | None:
        return self.feedback_types.get(kind)

    def weight(self, kind: str) -> float:
        return self.feedback_weights.get(kind, 1.0)


_SERVICE = {"database_url": str, "rate_limit_per_minute": int, "max_request_bytes": int, "max_model_bytes": int,
            "max_batch": int,
            "retrain_every_s": float, "unknown_users": str, "unknown_items": str,
            "answer_cache_entries": int, "exploration_epsilon": float, "log_impressions": bool,
            "ann_min_items": int}
_ENV = {"PENCHANT_DATABASE_URL": "database_url", "PENCHANT_RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
        "PENCHANT_RETRAIN_EVERY_S": "retrain_every_s", "PENCHANT_MODEL": "model"}


def _typed(where: str, value, kind: type):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where} must be a {kind.__name__}, not {value!r}")
    return value


def load_settings(data_dir: Path, *, database_url: str | None = None, config_file: Path | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``config_file`` (TOML), then the environment, then explicit arguments."""
    env = os.environ if env is None else env
    values: dict = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{config_file}: {e}") from None
        for section in raw:
            if section not in ("service", "model", "feedback_types"):
                raise ConfigError(f"{config_file}: unknown section [{section}]; known: service, model, feedback_types")
        for key, value in raw.get("service", {}).items():
            if key not in _SERVICE:
                raise ConfigError(f"{config_file}: unknown key service.{key}; known: {', '.join(_SERVICE)}")
            values[key] = _typed(f"service.{key}", value, _SERVICE[key])
        for key, value in raw.get("model", {}).items():
            if key == "name":
                values["model"] = _typed("model.name", value, str)
            elif key == "params":
                values["model_params"] = _typed("model.params", value, dict)
            else:
                raise ConfigError(f"{config_file}: unknown key model.{key}; known: name, params")
        if "feedback_types" in raw:
            types, weights = {}, {}
            for kind, spec in raw["feedback_types"].items():
                meaning = spec
                if isinstance(spec, dict):
                    unknown = set(spec) - {"meaning", "weight"}
                    if unknown:
                        raise ConfigError(f"{config_file}: unknown key feedback_types.{kind}.{sorted(unknown)[0]}; "
                                          "known: meaning, weight")
                    meaning = spec.get("meaning")
                    weight = _typed(f"feedback_types.{kind}.weight", spec.get("weight", 1.0), float)
                    if weight <= 0:
                        raise ConfigError(f"feedback_types.{kind}.weight must be positive")
                    weights[kind] = weight
                if meaning not in MEANINGS:
                    raise ConfigError(f"{config_file}: feedback_types.{kind} must be one of {', '.join(MEANINGS)}, "
                                      f"not {meaning!r}")
                types[kind] = meaning
            values["feedback_types"], values["feedback_weights"] = types, weights
    for var, key in _ENV.items():
        if var in env:
            kind = _SERVICE.get(key, str)
            try:
                values[key] = kind(env[var])
            except ValueError:
                raise ConfigError(f"{var}={env[var]!r} is not a {kind.__name__}") from None
    if database_url:
        values["database_url"] = database_url
    settings = replace(Settings(Path(data_dir)), **values)
    from penchant.models.registry import model_names

    if settings.model not in model_names():
        raise ConfigError(f"model {settings.model!r} is not registered; known: {', '.join(model_names())}")
    for name in ("unknown_users", "unknown_items"):
        if getattr(settings, name) not in ("create", "reject"):
            raise ConfigError(f"service.{name} must be \"create\" or \"reject\", not {getattr(settings, name)!r}")
    if settings.answer_cache_entries < 0:
        raise ConfigError("answer_cache_entries must be 0 or more")
    if settings.ann_min_items < 0:
        raise ConfigError("ann_min_items must be 0 (never) or a number of items")
    if not 0.0 <= settings.exploration_epsilon <= 1.0:
        raise ConfigError(f"exploration_epsilon must be in [0, 1], not {settings.exploration_epsilon}")
    for f in fields(settings):
        if f.name in ("rate_limit_per_minute", "max_request_bytes", "max_model_bytes", "max_batch") and getattr(settings, f.name) < 1:
            raise ConfigError(f"{f.name} must be at least 1")
    return settings
