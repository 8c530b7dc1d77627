"""``penchant evaluate``, ``penchant compare`` and ``penchant quickstart``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from penchant.cli.data_cmds import (
    BlankRating,
    BlankRatingOpt,
    Encoding,
    ItemCol,
    MinRating,
    RatingCol,
    Seed,
    Sep,
    TimeCol,
    UserCol,
    columns,
)
from penchant.cli.render import leaderboard_table, out, progress, training_status, write_json
from penchant.cli.specs import backend_of, backend_options

Ks = typer.Option([10, 20], "--k", help="Cut-off K (repeat for several).")
BackendOpt, RayAddress = backend_options()
Sampled = typer.Option(None, "--sampled", help="Rank among this many sampled negatives instead of the full catalogue (labelled as sampled).")


def evaluate(
    train: Path = typer.Option(..., "--train", help="Training interactions (CSV/TSV/Parquet/.inter); with --task ctr alone, a data set split 80/10/10 by row."),
    test: Path = typer.Option(None, "--test", help="Test interactions (needed, except with --task ctr)."),
    model: str = typer.Option(..., "--model", help="Registered model name (see `penchant models`)."),
    valid: Path = typer.Option(None, "--valid", help="Validation interactions: used only for tuning/early stopping, and masked at test time."),
    param: list[str] = typer.Option([], "--param", help="Model parameter key=value (repeatable)."),
    k: list[int] = Ks,
    json_out: Path = typer.Option(None, "--json", help="Write the result as JSON here."),
    metric: str = typer.Option("ndcg@10", "--metric", help="Validation metric for model selection."),
    sampled: int = Sampled,
    seed: int = Seed("Seed (negative sampling)."),
    min_rating: float = MinRating,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
    backend: str = BackendOpt, ray_address: str = RayAddress,
    task_name: str = typer.Option("ranking", "--task", help="ranking (top-K over the catalogue) or ctr (click "
                                  "probabilities: AUC, log loss, GAUC; label rating>=4, features from the .user/.item files)."),
    user_features: Path = typer.Option(None, "--user-features", help="With --task ctr: a user feature file (default: the .user file beside --train)."),
    item_features: Path = typer.Option(None, "--item-features", help="With --task ctr: an item feature file (default: the .item file beside --train)."),
) -> None:
    """Fit one model on train (selecting on valid) and rank the full catalogue for every test user
    (``--task ctr``: predict the test rows' clicks)."""
    from penchant.cli.specs import model_spec
    from penchant.data import load_triple
    from penchant.errors import ConfigError
    from penchant.experiment.run import run

    if task_name == "ctr":
        cols = columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating)
        return _evaluate_ctr(train, valid, test, model, param, k, json_out, seed, min_rating, cols, user_features,
                             item_features)
    if task_name != "ranking":
        raise ConfigError(f"--task must be ranking or ctr, not {task_name!r}")
    if test is None:
        raise ConfigError("give --test (test interactions)")
    model, params = model_spec(model, param, ("ranking", "rating", "sequential"))
    where = backend_of(backend, ray_address)
    with progress() as bar:
        task = bar.add_task("reading data", total=None)
        tr, va, te = load_triple(train, valid, test, min_rating=min_rating,
                                 **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating))
        with training_status(bar, task):
            result = run(model, params, tr, va, te, ks=k, metric=metric, sampled=sampled, seed=seed,
                         status=lambda s: bar.update(task, description=s), backend=where)
    payload = result.to_json()
    metrics = payload["metrics"]
    out.print(f"[bold]{model}[/bold] on {len(result.users):,} users ({result.protocol}): " +
              "  ".join(f"{m} {metrics[m]:.4f}" for m in metrics if m.split("@")[0] in ("ndcg", "recall")))
    if result.extra.get("selected"):
        out.print(f"selected on validation: {result.extra['selected']}")
    for why, n in result.left_out.items():
        if n:
            out.print(f"[yellow]left out — {why.replace('_', ' ')}: {n:,}[/yellow]")
    if json_out:
        write_json(json_out, payload)


def _evaluate_ctr(train: Path, valid: Path | None, test: Path | None, model: str, param: list[str], ks: list[int],
                  json_out: Path | None, seed: int, min_rating: float | None, cols: dict, user_features: Path | None,
                  item_features: Path | None) -> None:
    """``evaluate --task ctr``: read, fit (early stopping on validation), measure the test rows."""
    import time

    from penchant.cli.specs import model_spec
    from penchant.experiment.tasks import task_for

    model, params = model_spec(model, param, "ctr")
    task = task_for(model, ("ctr",))
    with progress() as bar:
        status = bar.add_task("reading data", total=None)
        parts = task.read(train, valid, test, seed=seed, min_rating=min_rating, user_features=user_features,
                          item_features=item_features, **cols)
        bar.update(status, description=f"fitting {model}")
        with training_status(bar, status):
            start = time.perf_counter()
            fitted = task.fit(model, params, parts.train, parts.valid)
            seconds = time.perf_counter() - start
    figures, line = task.test(fitted, parts, ks=_k_list(ks))
    out.print(f"[bold]{model}[/bold] {line}")
    out.print(task.fitted_line(model, fitted, parts, seconds))
    if json_out:
        write_json(json_out, {"model": model, "params": params, "task": "ctr", "fit_seconds": round(seconds, 3),
                              "parts": {"train": parts.train.n, "valid": parts.valid.n if parts.valid is not None else 0,
                                        "test": parts.test.n}} | {"metrics": figures})


def _k_list(ks: list[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(int(x) for x in ks))


def compare(
    path: Path = typer.Argument(None, help="One data set to split here (instead of --train/--test files).", show_default=False),
    model: list[str] = typer.Option(..., "--model", help="Model to compare, as NAME or NAME:key=value,key=value (repeat)."),
    train: Path = typer.Option(None, "--train", help="Training interactions (or use --data with --split)."),
    valid: Path = typer.Option(None, "--valid", help="Validation interactions."),
    test: Path = typer.Option(None, "--test", help="Test interactions."),
    data: Path = typer.Option(None, "--data", help="The same as the positional data set."),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="With a data set: per-user random holdout fractions."),
    seed: int = Seed("With a data set: split seed."),
    k: list[int] = Ks,
    metric: str = typer.Option("ndcg@10", "--metric", help="Metric to rank by (and to select on validation)."),
    sampled: int = Sampled,
    json_out: Path = typer.Option(None, "--json", help="Write the leaderboard as JSON here."),
    markdown: Path = typer.Option(None, "--markdown", help="Write the leaderboard as Markdown here."),
    min_rating: float = MinRating,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
    backend: str = BackendOpt, ray_address: str = RayAddress,
) -> None:
    """Several models on one split: a leaderboard with paired significance tests and CIs."""
    from penchant.cli.specs import data_path
    from penchant.data import load, load_triple
    from penchant.data.split import random_holdout
    from penchant.errors import ConfigError
    from penchant.eval.evaluate import build_target
    from penchant.eval.report import leaderboard
    from penchant.experiment.run import parse_model_spec, run

    cols = columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating)
    data = data_path(path, data, required=False)
    if data is not None:
        if train or test:
            raise ConfigError("give either a data set (split here) or --train/--test files, not both")
        split = random_holdout(load(data, min_rating=min_rating, **cols), [float(x) for x in ratios.split(",")], seed=seed)
        tr, va, te = split.train, split.valid, split.test
    elif train is not None and test is not None:
        tr, va, te = load_triple(train, valid, test, min_rating=min_rating, **cols)
    else:
        raise ConfigError("give --train and --test (and optionally --valid), or a data set to split")
    specs = [parse_model_spec(m) for m in model]
    where = backend_of(backend, ray_address)
    target = build_target(tr, te, tuple(p for p in (va,) if p is not None))
    results = []
    with progress() as bar, training_status(bar, task := bar.add_task("models", total=len(specs))):
        for spec, (name, params) in zip(model, specs):
            results.append(run(name, params, tr, va, te, ks=k, metric=metric, target=target, sampled=sampled,
                               label=spec, status=lambda s: bar.update(task, description=s), backend=where))
            bar.advance(task)
    board = leaderboard(results, metric)
    out.print(leaderboard_table(board))
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(board.to_markdown())
    if json_out:
        write_json(json_out, board.to_json())


def quickstart(
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Folder for the Markdown report and JSON."),
    dataset: str = typer.Option("ml-100k", "--dataset", help="MovieLens release: ml-100k, ml-1m or ml-latest-small."),
    seed: int = Seed("Split seed."),
) -> None:
    """The main job: MovieLens, a per-user 80/10/10 split, the baselines, a leaderboard and a report."""
    from penchant.data import load_movielens
    from penchant.data.movielens import fetch_movielens
    from penchant.data.split import random_holdout
    from penchant.eval.evaluate import build_target
    from penchant.eval.report import leaderboard
    from penchant.experiment.run import run

    with progress() as bar:
        task = bar.add_task(f"fetching {dataset}", total=None)
        folder = fetch_movielens(dataset, progress=lambda done, total: bar.update(task, completed=done, total=total))
        bar.update(task, description=f"reading {folder}")
        ds = load_movielens(dataset)
        split = random_holdout(ds, (0.8, 0.1, 0.1), seed=seed)
        target = build_target(split.train, split.test, (split.valid,))
        models = ["pop", "itemknn", "ease"]
        bar.update(task, total=len(models), completed=0)
        results = []
        for name in models:
            results.append(run(name, {}, split.train, split.valid, split.test, ks=[10, 20], target=target,
                               status=lambda s: bar.update(task, description=s)))
            bar.advance(task)
    board = leaderboard(results, "ndcg@10")
    out.print(leaderboard_table(board))
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ds.summary()
    report = [f"# penchant quickstart: {dataset}", "",
              f"Data: `{folder}` — {summary['users']:,} users, {summary['items']:,} items, "
              f"{summary['interactions']:,} interactions (every rating counted as a positive interaction).", "",
              f"Split: {split.protocol}.", "", "```", json.dumps(split.report(), indent=2), "```", "",
              "## Leaderboard (test part; train and valid items masked; λ/parameters chosen on valid)", "",
              board.to_markdown()]
    for r in results:
        if r.extra.get("selected"):
            report.append(f"- `{r.model}` selected on validation: {r.extra['selected']}")
    (out_dir / "quickstart.md").write_text("\n".join(report) + "\n")
    write_json(out_dir / "quickstart.json", board.to_json())
    out.print(f"report written to {out_dir / 'quickstart.md'}")


def ratings_cv(
    data: Path = typer.Argument(..., help="Rated interactions (any format `data inspect` reads)."),
    model: str = typer.Option(..., "--model", help="Rating model: biasedmf or fm."),
    param: list[str] = typer.Option([], "--param", help="Model parameter key=value (repeatable)."),
    folds: int = typer.Option(5, "--folds", help="Number of folds."),
    seed: int = Seed("Fold assignment seed (also of --users and --test-per-user: the same seed, the same sample)."),
    users: int = typer.Option(None, "--users", help="Evaluate a seeded sample of this many users (models that cost a request per rating)."),
    test_per_user: int = typer.Option(None, "--test-per-user", help="At most this many of a user's test ratings per fold (seeded)."),
    k: int = typer.Option(10, "--k", help="Cut-off of the NDCG of each user's test items ranked by predicted rating."),
    json_out: Path = typer.Option(None, "--json", help="Write per-fold and mean RMSE/MAE/NDCG here."),
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
) -> None:
    """K-fold RMSE, MAE and NDCG@k (each user's test items ranked by predicted rating) of a rating model
    (each fold early-stops on 5% of its training part)."""
    from penchant.cli.specs import model_spec
    from penchant.data import load
    from penchant.experiment.rating_cv import cross_validate

    model, params = model_spec(model, param, "rating")  # a ranking model's name lists the rating models
    ds = load(data, **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating))
    fold = lambda n: f"fitting {model} fold {min(n + 1, folds)}/{folds}"  # noqa: E731
    with progress() as bar, training_status(bar, task := bar.add_task(fold(0), total=folds)):
        result = cross_validate(model, params, ds, k=folds, seed=seed, users=users, test_per_user=test_per_user,
                                ndcg_k=k, progress=lambda n: bar.update(task, completed=n, description=fold(n)))
    ndcg = f"ndcg@{k}"
    out.print(f"[bold]{model}[/bold] {folds}-fold: RMSE {result['rmse']:.4f} ± {result['rmse_std']:.4f}   "
              f"MAE {result['mae']:.4f} ± {result['mae_std']:.4f}   NDCG@{k} {result[ndcg]:.4f} ± {result[ndcg + '_std']:.4f}")
    sampled = f"a sample of {result['users_sampled']:,} of {result['users_total']:,} users" if users else "all users"
    capped = f", at most {test_per_user} test ratings per user per fold" if test_per_user else ""
    out.print(f"evaluated on {sampled}{capped}: {result['ratings_evaluated']:,} ratings")
    if json_out:
        write_json(json_out, result)


def tune_cmd(
    train: Path = typer.Option(..., "--train", help="Training interactions (comparisons for a preference model)."),
    valid: Path = typer.Option(..., "--valid", help="Validation data: the search is judged on these."),
    model: str = typer.Option(..., "--model", help="Registered model name, or NAME:key=value,... (see `penchant models`)."),
    test: Path = typer.Option(None, "--test", help="If given, the refitted best model is evaluated here once."),
    trials: int = typer.Option(20, "--trials", help="Number of trials."),
    timeout: float = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    param: list[str] = typer.Option([], "--param", help="Fixed parameter key=value, not searched (repeatable)."),
    metric: str = typer.Option("ndcg@10", "--metric", help="Validation metric for ranking models."),
    k: list[int] = Ks,
    seed: int = Seed("Seed of the search."),
    json_out: Path = typer.Option(None, "--json", help="Write every trial and the best parameters here."),
    min_rating: float = MinRating,
    user_col: str = UserCol, item_col: str = ItemCol, rating_col: str = RatingCol, time_col: str = TimeCol, sep: str = Sep,
    encoding: str = Encoding, blank_rating: BlankRating = BlankRatingOpt,
    backend: str = BackendOpt, ray_address: str = RayAddress,
) -> None:
    """Search a model's hyper-parameters on the validation split (Optuna TPE, median pruning), then refit the best."""
    from penchant.cli.specs import model_spec
    from penchant.experiment.tasks import FILE_FAMILIES, task_for
    from penchant.experiment.tune import tune

    model, fixed = model_spec(model, param, FILE_FAMILIES)
    job = task_for(model)
    parts = job.read(train, valid, test, seed=seed, min_rating=min_rating,
                     **columns(user_col, item_col, rating_col, time_col, sep, encoding, blank_rating))
    tr, va, te = parts.train, parts.valid, parts.test
    assert va is not None
    where = backend_of(backend, ray_address)
    with progress() as bar, training_status(bar, task := bar.add_task(f"tuning {model}", total=trials)):
        result = tune(model, tr, va, trials=trials, seed=seed, metric=metric, fixed=fixed, timeout=timeout, backend=where,
                      progress=lambda n, best: bar.update(task, completed=n, description=f"tuning {model}: best {best:.4f}"))
    pruned = sum(t["state"] == "pruned" for t in result.trials)
    out.print(f"[bold]{model}[/bold]: best {result.metric} on valid {result.best_value:.4f} with {result.best_params} "
              f"({len(result.trials)} trials, {pruned} pruned)")
    payload = result.to_json()
    if te is not None and result.best_model is not None:
        payload["test"], line = job.test(result.best_model, parts, ks=k, backend=where)
        out.print(f"test: {line}")
    if json_out:
        write_json(json_out, payload)
