"""``penchant serve`` and ``penchant keys create|list|revoke``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from penchant.cli.render import out

DATA_DIR_HELP = "Folder for the SQLite database (when no --database-url) and model versions."
URL_HELP = "SQLAlchemy URL of the store, e.g. postgresql://user@host/db (default: SQLite under --data-dir)."
SETTINGS_DATA_DIR_HELP = DATA_DIR_HELP + " Default: PENCHANT_DATA_DIR."
SET_HELP = ("Set a service setting, KEY=VALUE (repeatable), checked like PENCHANT_<KEY>: --set max_batch=500 "
            "--set log_impressions=false --set model=bpr --set model_params='{\"factors\": 32}'. Flags > environment "
            "> --config file > defaults; every setting: docs/service.md.")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    data_dir: Path = typer.Option(None, "--data-dir", help=SETTINGS_DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
    config: Path = typer.Option(None, "--config", help="TOML settings file (unknown keys are an error)."),
    assignments: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),
    access_log: bool = typer.Option(False, "--access-log", help="One JSON line per request on stderr (never the key)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Worker processes sharing the port and the store (activations reach all of them)."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). With no keys stored yet, PENCHANT_ADMIN_KEY (if
    set) becomes an admin key. Says on stderr where it listens, which store and which model
    versions it serves; SIGINT/SIGTERM let requests in flight finish. One server per --data-dir."""
    from penchant.errors import ConfigError
    from penchant.serve.app import create_app  # first: without the serve extra, one line naming it
    from penchant.serve.config import load_settings, parse_assignments
    from penchant.serve.keys import KEY_SHAPE, key_id_of

    admin_key = os.environ.get("PENCHANT_ADMIN_KEY")
    if admin_key is not None and key_id_of(admin_key) is None:
        raise ConfigError(f"PENCHANT_ADMIN_KEY is not a valid key; {KEY_SHAPE}")
    from penchant.serve.runner import hold_data_dir, serve_forever

    settings = load_settings(data_dir, database_url=database_url, config_file=config,
                             overrides=parse_assignments(assignments))
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with hold_data_dir(data_dir):  # refused before migrating or loading anything when another server has it
        if workers == 1:
            serve_forever(create_app(settings, admin_key=admin_key), host, port, access_log=access_log)
        else:
            from penchant.serve.runner import serve_workers

            _store(data_dir, settings.database_url, admin_key)  # migrations and the first key, once, before the workers
            serve_workers(settings, host, port, workers, access_log=access_log)


def models_import(
    model_path: Path = typer.Argument(..., help="A model artefact written by `penchant fit` or `penchant prefs fit`."),
    data_dir: Path = typer.Option(None, "--data-dir", help=SETTINGS_DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
    config: Path = typer.Option(None, "--config", help="TOML settings file."),
    assignments: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),
    activate: bool = typer.Option(False, "--activate", help="Make it the live version of its kind."),
) -> None:
    """Add a model fitted offline to the service's versions, served without retraining (a running
    service picks it up at its next start or activation; POST /v1/models/import is the live way)."""
    from penchant.serve.config import load_settings, parse_assignments
    from penchant.serve.host import ModelHost

    settings = load_settings(data_dir, database_url=database_url, config_file=config,
                             overrides=parse_assignments(assignments))
    store = _store(settings.data_dir, settings.database_url)
    host = ModelHost(store, settings)
    host.load_active()
    version = host.import_model(model_path, activate)
    v = store.version(version)
    out.print(f"imported {v['model']} as version {version}" + (" (active)" if v["active"] else ""))


def _store(data_dir: Path, database_url: str | None, admin_key: str | None = None):
    """The store (migrated), with ``admin_key`` registered when it has no key yet."""
    from penchant.serve.keys import create_key
    from penchant.serve.store import Store, make_engine, migrate
    from penchant.serve.store import database_url as url_of

    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url_of(data_dir, database_url))
    migrate(engine)
    store = Store(engine)
    if admin_key and not store.keys():
        create_key(store, "bootstrap admin", "admin", key=admin_key)
    return store


def keys_create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    scope: str = typer.Option("read", "--scope", help="read, write or admin."),
    data_dir: Path = typer.Option(..., "--data-dir", help=DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from penchant.errors import ConfigError
    from penchant.serve.keys import SCOPES, create_key

    if scope not in SCOPES:
        raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    print(create_key(_store(data_dir, database_url), name, scope))


def keys_list(
    data_dir: Path = typer.Option(..., "--data-dir", help=DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """List keys (ids, names, scopes; never the keys themselves)."""
    import datetime

    from rich.table import Table

    table = Table(title="API keys", title_justify="left")
    for col in ("id", "name", "scope", "created", "revoked"):
        table.add_column(col)

    def when(t: float | None) -> str:
        return "" if t is None else datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M")

    for k in _store(data_dir, database_url).keys():
        table.add_row(k["id"], k["name"], k["scopes"], when(k["created_at"]), when(k["revoked_at"]))
    out.print(table)


def keys_revoke(
    key_id: str = typer.Argument(..., help="The key's id (the part after pk_)."),
    data_dir: Path = typer.Option(..., "--data-dir", help=DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """Revoke a key: it stops working at once."""
    from penchant.errors import ConfigError

    if not _store(data_dir, database_url).revoke_key(key_id):
        raise ConfigError(f"no active key {key_id!r}")
    out.print(f"revoked {key_id}")


def store_dump(
    out_path: Path = typer.Option(..., "--out", help="JSON lines file to write."),
    data_dir: Path = typer.Option(..., "--data-dir", help=DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
) -> None:
    """Write every user, item and event as JSON lines (keys and model versions are not included)."""
    from penchant.serve.dump import dump_lines

    n = 0
    with open(out_path, "w", encoding="utf-8") as f:
        for line in dump_lines(_store(data_dir, database_url)):
            f.write(line)
            n += 1
    out.print(f"wrote {n:,} rows to {out_path}")


def store_restore(
    in_path: Path = typer.Option(None, "--in", help="A dump (JSON lines) to load."),
    dataset: Path = typer.Option(None, "--dataset", help="Or: a dataset penchant reads; its interactions become events."),
    event_type: str = typer.Option("click", "--type", help="With --dataset: the feedback type of the events."),
    data_dir: Path = typer.Option(None, "--data-dir", help=SETTINGS_DATA_DIR_HELP),
    database_url: str = typer.Option(None, "--database-url", help=URL_HELP),
    config: Path = typer.Option(None, "--config", help="TOML settings (the feedback types)."),
    assignments: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Load a dump, or a dataset's interactions (event ids ``<dataset>:<row>``, so loading twice
    stores nothing twice; items get their titles, genres as categories and release decade; users
    their attributes, e.g. MovieLens's age group, gender and occupation)."""
    from penchant.errors import ConfigError
    from penchant.serve.config import load_settings, parse_assignments
    from penchant.serve.dump import dataset_rows, parse_dump

    if (in_path is None) == (dataset is None):
        raise ConfigError("give exactly one of --in and --dataset")
    settings = load_settings(data_dir, database_url=database_url, config_file=config,
                             overrides=parse_assignments(assignments))
    store = _store(settings.data_dir, settings.database_url)
    if in_path is not None:
        with open(in_path, "rb") as f:  # decoded line by line, so a bad byte is reported with its line
            counts = store.restore(parse_dump(f, str(in_path), settings.feedback_types))
    else:
        if settings.meaning(event_type) is None:
            raise ConfigError(f"--type {event_type!r} is not a configured feedback type")
        counts = store.restore(dataset_rows(dataset, event_type))
    out.print(", ".join(f"{k} {v:,}" for k, v in counts.items()))

