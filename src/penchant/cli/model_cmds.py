"""``penchant fit`` and ``penchant recommend``: from a log of your own to answers for your own ids."""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.data_cmds import (
    BlankRating,
    BlankRatingOpt,
    Encoding,
    ItemCol,
    MinRating,
    RatingCol,
    Sep,
    TimeCol,
    UserCol,
    columns,
)
from penchant.cli.render import err, out, progress, training_status, write_json
from penchant.cli.specs import backend_of, backend_options

BackendOpt, RayAddress = backend_options()
PARAM_HELP = "Model parameter key=value (repeatable); see `penchant models`."


def fit(
    train: Path = typer.Option(..., "--train", help="Training interactions: CSV/TSV/JSONL/Parquet/.inter file or a data folder (comparisons for a preference model)."),
    model: str = typer.Option(..., "--model", help="Registered model name, or NAME:key=value,... (see `penchant models`)."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the model artefact (.npz)."),
    valid: Path = typer.Option(None, "--valid", help="Validation interactions: select settings and stop early on them (not added to the model)."),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    metric: str = typer.Option("ndcg@10", "--metric", help="Validation metric for selection."),
    min_rating: float = MinRating,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
    backend: str = typer.Option(None, "--backend", help="Where the model trains: local, or ray (data-parallel through "
                                "Ray Train: bpr, lightgcn, multvae, recvae, sasrec, gru4rec; als and fsslim: their "
                                "per-row solves as Ray tasks)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to train on (auto, HOST:PORT of its head, "
                                    "ray://HOST:10001); implies --backend ray."),
    workers: int = typer.Option(None, "--workers", help="Data-parallel ranks on Ray (default: one per node of the cluster)."),
) -> None:
    """Fit a model on a log (or on comparisons, for a preference model) and write one artefact that
    carries its parameters and id vocabularies."""
    from penchant.cli.specs import model_spec, train_backend
    from penchant.experiment.tasks import FILE_FAMILIES, task_for

    name, params = model_spec(model, param, FILE_FAMILIES)
    job = task_for(name)
    where = train_backend(backend, ray_address, workers, name)
    if where is None and "device" in params:  # a bad parameter or a GPU that is not here: refused before the log is read
        device = getattr(job.create(name, params), "device", None)
        if isinstance(device, str) and device.startswith("cuda"):
            from penchant.models.training import torch_device

            torch_device(device)
    fit_and_save(job, name, params, out_path, job.read(train, valid, seed=0, min_rating=min_rating,
                                                      **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating)),
                 metric=metric, on=where, workers=workers)


def fit_and_save(job, name: str, params: dict, out_path: Path, parts, *, metric: str | None = None,
                 on=None, workers: int | None = None) -> None:
    """Fit ``name`` through its task with progress (on the Ray backend ``on``, data-parallel, when
    given), save the artefact and say what was fitted."""
    import time

    with progress() as bar:
        task = bar.add_task(f"fitting {name}", total=None)
        start = time.perf_counter()
        with training_status(bar, task):
            if on is None:
                fitted = job.fit(name, params, parts.train, parts.valid, metric=metric)
            else:
                fitted = _fit_on_ray(job, name, params, parts, metric, on, workers, lambda s: bar.update(task, status=s))
    fitted.save(out_path)
    out.print(f"{job.fitted_line(name, fitted, parts, time.perf_counter() - start)}; saved to {out_path}")


def _fit_with(job, name: str, params: dict, train, report):
    """``job``'s fit of ``name`` on ``train``, validated by ``report`` (None: no validation); run by each rank."""
    return job.fit(name, params, train) if report is None else job.fit(name, params, train, report=report)


def _fit_on_ray(job, name: str, params: dict, parts, metric: str | None, on, workers: int | None, status):
    """``name`` fitted data-parallel on the Ray backend ``on`` (:mod:`penchant.backends.ray_train`), and a
    line on stderr saying what every rank did; ALS fitted here with its per-row solves as Ray tasks."""
    from functools import partial

    from penchant.backends.ray_train import fit_on_ray, solves_in_blocks

    if solves_in_blocks(name):  # ALS, fsSLIM: fitted here, their per-row solves as Ray tasks
        from penchant.models.distributed import solves_on

        with solves_on(on.map):
            return job.fit(name, params, parts.train, parts.valid, metric=metric)
    judge = None
    if parts.valid is not None and parts.valid.n_interactions:
        judge = job.judge(parts.train, parts.valid, metric)[0]
    fitted = fit_on_ray(partial(_fit_with, job, name, params, parts.train), judge, address=on.address,
                        workers=workers, progress=status)
    ranks = fitted.ray_ranks_
    same = len({r["checksum"] for r in ranks}) == 1
    err.print(f"ray train: {len(ranks)} ranks on {len({r['node'] for r in ranks})} node(s); examples per rank "
              + ", ".join(f"{r['examples']:,}" for r in ranks) + "; steps per rank " + ", ".join(str(r["steps"]) for r in ranks)
              + "; seconds per rank " + ", ".join(f"{r['seconds']:.1f}" for r in ranks)
              + ("; parameters equal on every rank" if same else "; PARAMETERS DIFFER between ranks"), soft_wrap=True)
    return fitted


def recommend(
    model_path: Path = typer.Option(..., "--model-path", help="A model artefact written by `penchant fit`."),
    user: list[str] = typer.Option([], "--user", help="External user id (repeatable)."),
    users_file: Path = typer.Option(None, "--users-file", help="A text file with one user id per line."),
    k: int = typer.Option(10, "--k", help="List length."),
    history: Path = typer.Option(None, "--history", help="Recent events of these users (any log format): left out of their lists, and used to fold in users the model does not know."),
    json_out: Path = typer.Option(..., "--json", help="Write the recommendations as JSON here."),
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
    backend: str = BackendOpt, ray_address: str = RayAddress,
) -> None:
    """Top-k items for your users from a fitted model; unknown users by fold-in or popularity."""
    from penchant.data import load
    from penchant.errors import ConfigError
    from penchant.experiment.answers import recommend_for
    from penchant.models.base import Recommender

    if k < 1:
        raise ConfigError("--k must be at least 1")
    ids = list(user) + (_read_ids(users_file) if users_file is not None else [])
    if not ids:
        raise ConfigError("give at least one --user ID or a --users-file")
    fitted = Recommender.load(model_path)
    events = load(history, **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating)) if history else None
    answers = recommend_for(fitted, ids, k, events, backend=backend_of(backend, ray_address))
    write_json(json_out, answers.to_json(fitted.name, k))
    counts = {how: sum(1 for v in answers.fallback.values() if v == how) for how in ("fold-in", "popular")}
    n = len(answers.lists)
    out.print(f"{fitted.name}: {n:,} user{'s' * (n != 1)} ({n - len(answers.fallback):,} known to the "
              f"model, {counts['fold-in']:,} by fold-in, {counts['popular']:,} by popularity); written to {json_out}")
    if answers.unknown_items:
        err.print(f"history: {answers.unknown_items:,} of {answers.history_events:,} events name items the model "
                  "was not fitted on; they were left out of fold-in")


def similar(
    model_path: Path = typer.Option(..., "--model-path", help="A model artefact with item vectors (als, bpr, lightgcn, …)."),
    item: list[str] = typer.Option([], "--item", help="External item id (repeatable)."),
    k: int = typer.Option(10, "--k", help="Similar items per item."),
    json_out: Path = typer.Option(..., "--json", help="Write the similar items as JSON here."),
) -> None:
    """The items closest to each given item by the model's item vectors (cosine), as the service's
    /v1/items/{id}/similar answers: {"model", "k", "items": {id: [{"item", "score"}, …]}}."""
    _lookup(model_path, item, k, json_out, "item")


def neighbours(
    model_path: Path = typer.Option(..., "--model-path", help="A model artefact written by `penchant fit`."),
    user: list[str] = typer.Option([], "--user", help="External user id (repeatable)."),
    k: int = typer.Option(10, "--k", help="Neighbours per user."),
    json_out: Path = typer.Option(..., "--json", help="Write the neighbours as JSON here."),
) -> None:
    """The training users most like each given user (cosine of their item sets), as the service's
    /v1/users/{id}/neighbours answers: {"model", "k", "users": {id: [{"user", "score"}, …]}}."""
    _lookup(model_path, user, k, json_out, "user")


def _lookup(model_path: Path, ids: list[str], k: int, json_out: Path, kind: str) -> None:
    """``similar`` (kind ``item``) and ``neighbours`` (kind ``user``) through the answer core:
    ``{"model", "k", "<kind>s": {id: [{"<kind>": id, "score"}, …]}}``."""
    from penchant.errors import ConfigError
    from penchant.experiment.answers import AnswerCore
    from penchant.models.base import Recommender

    if k < 1:
        raise ConfigError("--k must be at least 1")
    if not ids:
        raise ConfigError(f"give at least one --{kind} ID")
    core = AnswerCore(Recommender.load(model_path))
    answer, vocabulary = (core.similar_items, core.item_ids) if kind == "item" else (core.neighbours, core.user_ids)
    found = {i: answer(i, k) for i in dict.fromkeys(ids)}
    write_json(json_out, {"model": core.model.name, "k": k, f"{kind}s": {
        i: [{kind: str(vocabulary[j]), "score": float(v)} for j, v in zip(r.items, r.scores)] for i, r in found.items()}})
    what = "similar items of" if kind == "item" else "neighbours of"
    out.print(f"{core.model.name}: {what} {len(found):,} {kind}{'s' * (len(found) != 1)} written to {json_out}")


def _read_ids(path: Path) -> list[str]:
    """One id per line (surrounding spaces and blank lines ignored)."""
    from penchant.errors import DataError

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 at byte {exc.start}", file=path, expected="one user id per line") from None
    except FileNotFoundError:
        raise DataError("no such file", file=path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]
