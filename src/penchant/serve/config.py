"""The service's settings: one typed class, :class:`Settings`, filled from four places in one order.

    command-line flags  >  environment (``PENCHANT_<SETTING>``)  >  the TOML file (``--config``)  >  defaults

A setting given in a higher place replaces the lower one whole (``model_params``, ``feedback_types``
and ``feedback_weights`` included: tables are not merged across places). Every value is checked in
the place it is given, even one that a higher place overrides; an unknown setting, section or key,
or a value of the wrong type or out of bounds, is a :class:`~penchant.errors.ConfigError` of one line
naming the setting and where it came from, e.g. ``PENCHANT_MAX_BATCH='ten': max_batch must be an
integer`` or ``settings.toml: service.max_batch must be at least 1, not 0``.

How each place spells a setting (the table of every setting is in docs/service.md):

- **Flags**: ``penchant serve --set KEY=VALUE`` (repeatable; ``max-batch`` and ``max_batch`` both
  work), e.g. ``--set max_batch=500 --set log_impressions=false --set model_params='{"factors": 32}'``,
  plus ``--data-dir`` and ``--database-url``, which the other commands share. Values are read as the
  environment's are.
- **Environment**: ``PENCHANT_`` + the setting's name in capitals: ``PENCHANT_MAX_BATCH=500``,
  ``PENCHANT_LOG_IMPRESSIONS=false`` (true/false, 1/0, yes/no, on/off), ``PENCHANT_MODEL=bpr``,
  ``PENCHANT_DATA_DIR``, ``PENCHANT_DATABASE_URL``. The three tables are JSON objects:
  ``PENCHANT_MODEL_PARAMS='{"factors": 32}'``,
  ``PENCHANT_FEEDBACK_TYPES='{"click": "positive", "like": {"meaning": "positive", "weight": 3}}'``,
  ``PENCHANT_FEEDBACK_WEIGHTS='{"like": 3}'``. An empty variable counts as unset. Other ``PENCHANT_*``
  variables (``PENCHANT_DATA``, ``PENCHANT_ADMIN_KEY``, ``PENCHANT_LLM_URL``, ...) belong to other
  parts of penchant and are not read here.
- **File** (TOML, typed: ``log_impressions = 1`` is an error, not true):

```toml
[service]
database_url = "postgresql://user@host/db"   # default: SQLite in the data folder
rate_limit_per_minute = 1200                 # per API key; 429 beyond it
max_request_bytes = 2000000                  # 413 beyond it
max_model_bytes = 1000000000                 # 413 beyond it, for POST /v1/models/import
max_restore_bytes = 20000000000              # 413 beyond it, for POST /v1/admin/restore (a dump; spooled to disk)
max_batch = 10000                            # rows per batch request
retrain_every_s = 0                          # 0: retrain only on demand
answer_cache_entries = 10000                 # recent recommendation answers kept (0: none); a user's event invalidates theirs
unknown_users = "create"                     # feedback naming a user not stored: "create" it, or "reject" (422)
unknown_items = "create"                     # the same for items ("reject": the catalogue is managed with PUT /v1/items)
exploration_epsilon = 0.0                    # each slot of a served list shows a random eligible item with this chance
thompson_noise = 1.0                         # ?explore=thompson: σ² of the posterior of a user's vector (als)
thompson_draws = 1000                        # ?explore=thompson: posterior draws behind each list's propensities
log_impressions = true                       # record every served list (items, positions, propensities, version)
ann_min_items = 100000                       # catalogues this large are served through an approximate index (0: never)
job_lease_s = 30.0                           # a training job's lease: a replica silent this long leaves the job to another
job_heartbeat_s = 5.0                        # renewals of a running job's lease (at most half of job_lease_s)
job_attempts = 1                             # claims a job gets: 1 fails a dead replica's job, 2+ runs it again elsewhere

[model]
name = "als"
params = { factors = 64 }

[feedback_types]                             # type name = meaning, or {meaning, weight}
click = "positive"
like = { meaning = "positive", weight = 3.0 }
dislike = "negative"
read = "exposure"
```

The data folder is not in the file (``--data-dir`` or ``PENCHANT_DATA_DIR``), and weights are written
inside ``[feedback_types]`` there; ``feedback_weights`` given as a setting of its own (flag or
environment) overrides a type's inline weight. A positive pair's value is the sum of the weights of
its positive events (default weight 1); it reaches the models as the data's values (``ratings``),
which ``als`` uses with ``values = true``.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from penchant.errors import ConfigError

MEANINGS = ("positive", "negative", "exposure")
DEFAULT_TYPES = {"click": "positive", "like": "positive", "purchase": "positive", "dislike": "negative",
                 "read": "exposure"}
ENV_PREFIX = "PENCHANT_"

Meaning = Literal["positive", "negative", "exposure"]
Weight = Annotated[float, Field(gt=0)]


class SettingFields(BaseModel):
    """Every setting: its type, default, bounds and meaning, and the checks on its value. Validated
    on its own, it checks one place's values (see :class:`Settings`, which reads the places)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)

    data_dir: Path = Field(description="Folder for the SQLite database (when no database_url) and model versions; "
                                       "not in the file.")
    database_url: str | None = Field(None, repr=False,
                                     description="SQLAlchemy URL of the store, e.g. postgresql://user@host/db "
                                                 "(default: SQLite in data_dir).")
    rate_limit_per_minute: int = Field(1200, ge=1, description="Requests per minute per API key; 429 beyond it.")
    max_request_bytes: int = Field(2_000_000, ge=1, description="Largest request body; 413 beyond it.")
    max_model_bytes: int = Field(1_000_000_000, ge=1,
                                 description="Largest artefact for POST /v1/models/import; 413 beyond it.")
    max_restore_bytes: int = Field(20_000_000_000, ge=1,
                                   description="Largest dump for POST /v1/admin/restore (read in pieces to a "
                                               "temporary file in data_dir, never whole into memory); 413 beyond it.")
    max_batch: int = Field(10_000, ge=1, description="Rows per batch request; 422 beyond it.")
    retrain_every_s: float = Field(0.0, ge=0, description="Seconds between scheduled retrains (0: only on demand).")
    answer_cache_entries: int = Field(10_000, ge=0, description="Recent recommendation answers kept (0: none); "
                                                                "a user's event invalidates theirs.")
    unknown_users: Literal["create", "reject"] = Field(
        "create", description="Feedback naming a user not stored: create it, or reject the batch (422).")
    unknown_items: Literal["create", "reject"] = Field(
        "create", description="The same for items (reject: the catalogue is managed with PUT /v1/items).")
    exploration_epsilon: float = Field(0.0, ge=0, le=1, description="Chance that each slot of a served list "
                                                                     "shows a random eligible item instead.")
    thompson_noise: float = Field(1.0, gt=0, description="?explore=thompson: the noise variance σ² of the posterior "
                                                         "N(x̂_u, σ²(YᵀC_uY + λI)⁻¹) of a user's vector (als); larger "
                                                         "explores more.")
    thompson_draws: int = Field(1000, ge=1, le=100_000, description="?explore=thompson: posterior draws N per user; "
                                                                    "a list is one of them and its propensities are "
                                                                    "shares of them.")
    log_impressions: bool = Field(True, description="Record every served list (items, positions, propensities, "
                                                    "version).")
    ann_min_items: int = Field(100_000, ge=0, description="Catalogues this large are served through an "
                                                          "approximate index (0: never).")
    job_lease_s: float = Field(30.0, gt=0, description="A training job's lease in the database: a replica that "
                                                       "stops renewing it (died) for this long leaves the job to "
                                                       "another replica, or failed.")
    job_heartbeat_s: float = Field(5.0, gt=0, description="Seconds between renewals of a running job's lease (and "
                                                          "between a replica's looks for jobs whose lease ran out); "
                                                          "less than half of job_lease_s.")
    job_attempts: int = Field(1, ge=1, le=100, description="Claims a training job gets: 1 fails a job whose replica "
                                                           "died (naming it); 2 or more let another replica run it "
                                                           "again from the start.")
    model: str = Field("als", description="Registered model trained when a request names none (file: model.name).")
    model_params: dict[str, Any] = Field(default_factory=dict,
                                         description="Its hyper-parameters (file: model.params; else a JSON object).")
    feedback_types: dict[str, Meaning] = Field(
        default_factory=lambda: dict(DEFAULT_TYPES),
        description="Feedback type -> meaning (positive, negative or exposure); a type may be written "
                    "{meaning, weight}.")
    feedback_weights: dict[str, Weight] = Field(
        default_factory=dict, description="Feedback type -> weight of its events (default 1); file: inline in "
                                          "feedback_types.")

    def meaning(self, kind: str) -> str | None:
        return self.feedback_types.get(kind)

    def weight(self, kind: str) -> float:
        return self.feedback_weights.get(kind, 1.0)

    @model_validator(mode="before")
    @classmethod
    def _read_tables(cls, data: Any) -> Any:
        """Decode the tables given as JSON text (environment, flags) and split ``{meaning, weight}``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name in ("model_params", "feedback_types", "feedback_weights"):
            if isinstance(data.get(name), str):
                try:
                    data[name] = json.loads(data[name])
                except json.JSONDecodeError:
                    data[name] = None
                if not isinstance(data[name], dict):
                    raise _invalid(name, "must be a JSON object, e.g. " + _EXAMPLES[name])
        if isinstance(data.get("feedback_types"), dict):
            meanings, weights = _split_types(data["feedback_types"])
            data["feedback_types"] = meanings
            explicit = data.get("feedback_weights", {})
            if weights and isinstance(explicit, dict):
                data["feedback_weights"] = {**weights, **explicit}
        return data

    @field_validator("model")
    @classmethod
    def _registered(cls, name: str) -> str:
        from penchant.experiment.tasks import FILE_FAMILIES
        from penchant.models.registry import model_names

        servable = sorted(n for family in FILE_FAMILIES for n in model_names(family))
        if name not in servable:  # a model the service can train and serve, not a conversation or simulator policy
            raise _invalid("model", f"must be a registered model ({', '.join(servable)})", value=name)
        return name

    @field_validator("job_heartbeat_s")
    @classmethod
    def _heartbeat_within_lease(cls, heartbeat: float, info: ValidationInfo) -> float:
        lease = info.data.get("job_lease_s")
        if lease is not None and not (info.context or {}).get("alone") and heartbeat * 2 > lease:
            raise _invalid("job_heartbeat_s", f"must be at most half of job_lease_s ({lease:g}), so that a live "
                                              "replica renews its lease before it runs out", value=heartbeat)
        return heartbeat

    @field_validator("feedback_weights")
    @classmethod
    def _weights_of_types(cls, weights: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        types = info.data.get("feedback_types")
        if types is None or (info.context or {}).get("alone"):  # checked once every place is read
            return weights
        for kind in weights:
            if kind not in types:
                raise _invalid("feedback_weights", f"is not a feedback type (known: {', '.join(types)})", path=kind)
        return weights


class Settings(SettingFields, BaseSettings):
    """The service's validated settings, read from the flags (the arguments), the environment and the
    file (see the module docstring). Copies with changes: ``settings.model_copy(update={...})``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True, enable_decoding=False,
                                      env_ignore_empty=True, allow_inf_nan=False, validate_default=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (the arguments) > the environment > the TOML file (> the defaults, which pydantic-settings
        adds last). No .env or secrets folder: a setting comes from one of the places documented."""
        inputs = _INPUTS.get() or _Inputs(None, os.environ)
        inputs.environment = _Environment(settings_cls, inputs.environ)
        inputs.file = _ConfigFile(settings_cls, inputs.config_file)
        return init_settings, inputs.environment, inputs.file


_EXAMPLES = {"model_params": '{"factors": 32}', "feedback_types": '{"click": "positive", "like": '
             '{"meaning": "positive", "weight": 3}}', "feedback_weights": '{"like": 3}'}
#: the [service] keys of the file: every scalar setting but the data folder
_FILE_SERVICE = tuple(n for n in Settings.model_fields
                      if n not in ("data_dir", "model", "model_params", "feedback_types", "feedback_weights"))


def _invalid(name: str, problem: str, *, path: str = "", value: Any = None) -> PydanticCustomError:
    ctx = {"field": name, "path": path, "problem": problem}
    if value is not None:
        ctx["value"] = value
    return PydanticCustomError("penchant_setting", "{problem}", ctx)


def _split_types(table: dict) -> tuple[dict, dict]:
    """``{type: meaning | {meaning, weight}}`` -> meanings and the weights written inline."""
    meanings, weights = {}, {}
    for kind, spec in table.items():
        meaning = spec
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - {"meaning", "weight"})
            if unknown:
                raise _invalid("feedback_types", "is not a key (known: meaning, weight)", path=f"{kind}.{unknown[0]}")
            if "meaning" not in spec:
                raise _invalid("feedback_types", "is required", path=f"{kind}.meaning")
            meaning, weight = spec["meaning"], spec.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise _invalid("feedback_types", "must be a number", path=f"{kind}.weight", value=weight)
            if not (math.isfinite(weight) and weight > 0):
                raise _invalid("feedback_types", "must be positive", path=f"{kind}.weight", value=weight)
            weights[kind] = float(weight)
        if meaning not in MEANINGS:
            raise _invalid("feedback_types", f"must be one of {', '.join(MEANINGS)}", path=str(kind), value=meaning)
        meanings[kind] = meaning
    return meanings, weights


# --- where values come from -------------------------------------------------------------------------

@dataclass
class _Inputs:
    """What one :func:`load_settings` call reads: the file and the environment; the sources it made."""

    config_file: Path | None
    environ: Mapping[str, str]
    environment: _Environment | None = None
    file: _ConfigFile | None = None
    flags: dict[str, str] = field(default_factory=dict)  # setting -> how the command line spelled it


_INPUTS: ContextVar[_Inputs | None] = ContextVar("penchant_settings_inputs", default=None)
Describe = Callable[[str], tuple[str | None, str]]  # setting -> (where, how that place names it)


class _Environment(EnvSettingsSource):
    """``PENCHANT_<SETTING>`` from the given mapping (``os.environ`` unless a caller passes its own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env_vars = parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)
        self.won: dict[str, Any] = {}

    def __call__(self) -> dict[str, Any]:
        given = super().__call__()
        _check(given, lambda name: (f"{ENV_PREFIX}{name.upper()}={given.get(name)!r}", name), strict=False)
        self.won = {k: v for k, v in given.items() if k not in self.current_state}  # a flag replaces it whole
        return self.won


class _ConfigFile(PydanticBaseSettingsSource):
    """The TOML file's ``[service]``, ``[model]`` and ``[feedback_types]``, mapped onto the settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.keys: dict[str, str] = {}  # setting -> its key in the file
        self.won: dict[str, Any] = {}

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the file is read whole in __call__

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        given = self._read()
        _check(given, lambda name: (str(self.path), self.keys[name]), strict=True)
        self.won = {k: v for k, v in given.items() if k not in self.current_state}
        return self.won

    def _read(self) -> dict[str, Any]:
        where = str(self.path)
        try:
            raw = tomllib.loads(Path(self.path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: {e}") from None
        known = {"service": _FILE_SERVICE, "model": ("name", "params"), "feedback_types": None}
        given: dict[str, Any] = {}
        for section, table in raw.items():
            if section not in known:
                raise ConfigError(f"{where}: unknown section [{section}]; known: {', '.join(known)}")
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: {section} must be a table ([{section}]), not {_shown(table)}")
            if section == "feedback_types":
                self.keys["feedback_types"], given["feedback_types"] = "feedback_types", table
                continue
            for key, value in table.items():
                if key not in known[section]:
                    raise ConfigError(f"{where}: unknown key {section}.{key}; known: {', '.join(known[section])}")
                name = key if section == "service" else {"name": "model", "params": "model_params"}[key]
                self.keys[name], given[name] = f"{section}.{key}", value
        return given


def _check(values: dict[str, Any], describe: Describe, *, strict: bool) -> None:
    """Validate one place's values on their own, so that a wrong value is an error even where a higher
    place overrides it. ``strict``: the file's values are typed (TOML), so no conversions."""
    if not values:
        return
    try:
        SettingFields.model_validate({"data_dir": Path("."), **values}, strict=strict, context={"alone": True})
    except ValidationError as e:
        raise ConfigError(_one_line(e.errors()[0], describe, show_value=strict)) from None


def _one_line(err: Mapping[str, Any], describe: Describe, *, show_value: bool) -> str:
    """``<where>: <setting> <problem>[, not <value>]`` for pydantic's first error."""
    ctx = err.get("ctx") or {}
    loc = err["loc"]
    name = str(loc[0]) if loc else ctx.get("field", "")
    path = [str(p) for p in loc[1:]] + ([ctx["path"]] if ctx.get("path") else [])
    where, key = describe(name)
    line = f"{'.'.join([key, *path])} {_problem(err, name)}"
    # the wrong value is shown unless the place's label already shows exactly it
    has_value = "value" in ctx or err["type"] not in ("penchant_setting", "missing")
    if has_value and (show_value or path or where is None):
        line += f", not {_shown(ctx['value'] if 'value' in ctx else err.get('input'))}"
    return f"{where}: {line}" if where else line


def _problem(err: Mapping[str, Any], name: str) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "penchant_setting":
        return ctx["problem"]
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be an integer"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be a bool (true or false)"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']:g}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']:g}"
    if kind == "greater_than":
        return "must be positive" if ctx["gt"] == 0 else f"must be more than {ctx['gt']:g}"
    if kind == "literal_error":
        return "must be " + str(ctx["expected"]).replace("'", '"')
    if kind == "missing":
        return f"is required: give --{name.replace('_', '-')} or {ENV_PREFIX}{name.upper()}"
    fixed = {"finite_number": "must be a finite number", "string_type": "must be a string",
             "dict_type": "must be a table (a JSON object in the environment or --set)",
             "path_type": "must be a path", "extra_forbidden": "is not a setting"}
    return fixed.get(kind) or str(err["msg"])[:1].lower() + str(err["msg"])[1:]


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def load_settings(data_dir: Path | None, *, database_url: str | None = None, config_file: Path | None = None,
                  env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
    """The settings: ``data_dir``, ``database_url`` and ``overrides`` (the command line: setting ->
    value as text, as ``--set`` gives them) over ``env`` (default: ``os.environ``) over ``config_file``
    (TOML) over the defaults. ``data_dir=None`` leaves the folder to ``PENCHANT_DATA_DIR``.

    Raises:
        ConfigError: one line naming the setting, where it came from and what is wrong.
    """
    values: dict[str, Any] = {}
    inputs = _Inputs(None if config_file is None else Path(config_file), os.environ if env is None else env)
    if data_dir is not None:
        values["data_dir"], inputs.flags["data_dir"] = Path(data_dir), "--data-dir"
    if database_url:
        values["database_url"], inputs.flags["database_url"] = database_url, "--database-url"
    for key, value in (overrides or {}).items():
        name = key.replace("-", "_")
        if name not in Settings.model_fields:
            raise ConfigError(f"--set {key}={value}: unknown setting {key!r}; known: {', '.join(Settings.model_fields)}")
        values[name], inputs.flags[name] = value, f"--set {key}={value}"
    _check(values, lambda name: (inputs.flags[name], name), strict=False)
    token = _INPUTS.set(inputs)
    try:
        return Settings(**values)
    except ValidationError as e:  # a check across places (a weight of a type another place left out), or no data_dir
        raise ConfigError(_one_line(e.errors()[0], lambda name: _origin(inputs, name), show_value=False)) from None
    finally:
        _INPUTS.reset(token)


def _origin(inputs: _Inputs, name: str) -> tuple[str | None, str]:
    if name in inputs.flags:
        return inputs.flags[name], name
    if inputs.environment is not None and name in inputs.environment.won:
        return f"{ENV_PREFIX}{name.upper()}={inputs.environment.won[name]!r}", name
    if inputs.file is not None and name in inputs.file.won:
        return str(inputs.file.path), inputs.file.keys[name]
    return None, name


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``["max_batch=500", ...]`` (``--set``, repeatable) -> ``{"max_batch": "500"}``; the last one wins."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set max_batch=500")
        out[key.strip()] = value
    return out
