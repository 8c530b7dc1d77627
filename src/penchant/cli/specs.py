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


def backend_options():
    """The ``--backend`` and ``--ray-address`` options, shared by the commands that can run on Ray."""
    import typer

    backend = typer.Option(None, "--backend", help="Where users are ranked, scored or trials run: local or ray "
                           "(default: ray when PENCHANT_RAY_ADDRESS is set, else local).")
    address = typer.Option(None, "--ray-address", help="Ray cluster to use: auto (the one `ray start` made here), "
                           "HOST:PORT of its head, or ray://HOST:10001; implies --backend ray.")
    return backend, address


def backend_of(backend: str | None, address: str | None):
    """The backend the options ask for (:func:`penchant.backends.resolve`), said on stderr when it is Ray."""
    from penchant.backends import resolve
    from penchant.cli.render import err

    chosen = resolve(backend, address)
    if chosen.name != "local":
        err.print(f"backend: {chosen.describe()}")
    return chosen


def train_backend(backend: str | None, address: str | None, workers: int | None, name: str):
    """The Ray backend ``fit`` trains ``name`` on, or None to train here. Training goes to Ray only when
    asked for by ``--backend ray`` or ``--ray-address`` (PENCHANT_RAY_ADDRESS then gives the address);
    a model that does not train data-parallel, or ``--workers`` without Ray, is a ConfigError."""
    from penchant.errors import ConfigError

    if backend is None and address is None or backend == "local":
        if address:
            raise ConfigError("a Ray address was given with the local backend; drop --ray-address or use --backend ray")
        if workers is not None:
            raise ConfigError("--workers is the number of data-parallel ranks on Ray; give --backend ray with it")
        return None
    from penchant.backends import BACKENDS
    from penchant.backends.ray_train import check_data_parallel, solves_in_blocks

    if backend not in (None, *BACKENDS):
        raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    check_data_parallel(name)  # before connecting: a refusal comes at once
    if workers is not None and solves_in_blocks(name):
        raise ConfigError(f"--workers sets Ray Train's ranks; {name} sends its solves as Ray tasks to every CPU instead")
    return backend_of(backend or "ray", address)


def read_named(data: str):
    """A data set by MovieLens name (``ml-100k``: $PENCHANT_DATA, the cache, else downloaded) or any
    path penchant reads."""
    from penchant.data import load, load_movielens

    return load_movielens(data) if data.startswith("ml-") and not Path(data).exists() else load(data)
