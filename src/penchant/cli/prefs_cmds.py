"""``penchant prefs fit|evaluate|compare|export``: pairwise preference models from the terminal.

``evaluate`` keeps the scripts' contract: ``--train F --test F --model NAME [--param key=value
...] --json OUT`` with OUT holding ``{"model", "params", "accuracy", "user_macro_accuracy",
"log_loss", "pairs_evaluated", "fit_seconds"}`` (and more figures beside them).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from penchant.cli.data_cmds import Seed
from penchant.cli.render import err, out, progress, training_status, write_json

SOURCES = ("text", "ids", "ratings")

TRAIN_HELP = "Training comparisons: id pairs (user?,winner,loser) or the TRL layout (prompt?,chosen,rejected,user?)."
VALID_HELP = "Validation comparisons (early stopping, temperature); default: 10% of --train's prompts/pairs."
PARAM_HELP = "key=value model parameter (repeat), e.g. loss=robust, epsilon=0.1, features=text."


def _params(model: str, raw: list[str]) -> tuple[str, dict]:
    """``--model NAME[:k=v,...]`` and ``--param k=v`` as a preference model's name and parameters,
    checked before any data is read (an unknown name lists the preference models only)."""
    from penchant.cli.specs import model_spec
    from penchant.models.registry import create

    name, params = model_spec(model, raw, "preference")
    create(name, **params)
    return name, params


def _read(train: Path, test: Path | None, valid: Path | None, seed: int):
    """(train, valid, test or None) over one vocabulary; valid carved from train when not given."""
    from penchant.data.pair_files import read_pair_files
    from penchant.data.preferences import split_pairs

    files = [train] + ([valid] if valid else []) + ([test] if test else [])
    _, parts = read_pair_files(files)
    tr = parts[0]
    if valid is None:
        by = "group" if tr.option_context is not None else "pair"
        inner = split_pairs(tr, (0.9, 0.1, 0.0), by=by, seed=seed)
        tr, va = inner.train, inner.valid
    else:
        va = parts[1]
    return tr, va, (parts[-1] if test else None)


def _read_and_fit(bar, model: str, params: dict, train: Path, test: Path | None, valid: Path | None, seed: int):
    """Read the files (one vocabulary) and fit ``model`` on the training part, with progress:
    (task, train, valid, test, fitted model, fit seconds)."""
    task = bar.add_task("reading comparisons", total=None)
    tr, va, te = _read(train, test, valid, seed)
    bar.update(task, description=f"fitting {model}")
    with training_status(bar, task, model):
        fitted, seconds = _fit(model, params, tr, va)
    return task, tr, va, te, fitted, seconds


def _baselines(text: bool) -> list[tuple[str, dict]]:
    """Always shown: the majority (win rate), global Bradley–Terry and, on text, reply length."""
    return [("winrate", {}), ("bt", {})] + ([("bt", {"features": "length"})] if text else [])


def _fit(name: str, params: dict, train, valid):
    from penchant.models.preference.base import create_preference

    start = time.perf_counter()
    model = create_preference(name, **params).fit(train, valid)
    return model, time.perf_counter() - start


def evaluate(
    train: Path = typer.Option(..., "--train", help=TRAIN_HELP),
    test: Path = typer.Option(..., "--test", help="Held-out comparisons, same layout as --train."),
    model: str = typer.Option(..., "--model", help="bt, pbt, gpm, pal, pal-latent, vpl, dpa or winrate."),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    valid: Path = typer.Option(None, "--valid", help=VALID_HELP),
    seed: int = Seed("Seed of the validation carve-out and the bootstrap."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Fit one model on --train and report held-out accuracy (ties count ½, and are counted),
    per-user macro accuracy, log-loss, Brier and calibration on --test, beside the baselines
    (majority win rate, global Bradley–Terry and, on text, reply length)."""
    model, params = _params(model, param)
    with progress() as bar:
        task, tr, va, te, fitted, seconds = _read_and_fit(bar, model, params, train, test, valid, seed)
        baselines = []
        for name, p in _baselines(tr.option_context is not None):
            bar.update(task, description=f"fitting baseline {name}")
            base, t = _fit(name, p, tr, va)
            baselines.append(_report(base, _label(name, p), te, va, seed, t))
    main = _report(fitted, _label(model, params), te, va, seed, seconds)
    _table([main] + baselines, f"{len(te):,} test pairs; trained on {len(tr):,} (+{len(va):,} valid)")
    if json_out:
        write_json(json_out, {"model": model, "params": params, "accuracy": main["accuracy"],
                              "user_macro_accuracy": main["user_macro"], "log_loss": main["log_loss"],
                              "pairs_evaluated": main["pairs"], "fit_seconds": main["fit_seconds"],
                              "ties": main["ties"], "accuracy_ci": [main["ci_low"], main["ci_high"]],
                              "brier": main["brier"], "ece": main["ece"], "ece_after_temperature": main["ece_scaled"],
                              "worst_decile_user_accuracy": main["worst_decile"],
                              "train_pairs": len(tr), "valid_pairs": len(va), "baselines": baselines})


def _label(name: str, params: dict) -> str:
    """A table row's name: the model and its settings, e.g. ``bt features=length``."""
    return name + "".join(f" {k}={v}" for k, v in params.items())


def _report(model, label: str, test, valid, seed: int, seconds: float) -> dict:
    from penchant.eval.prefs import evaluate_pairs

    resample = "users" if (test.user >= 0).any() and len(set(test.user[test.user >= 0])) > 10 else "pairs"
    row = evaluate_pairs(model, test, valid, label=label, seed=seed, resample=resample).row()
    return row | {"fit_seconds": round(seconds, 3)}


def _table(rows: list[dict], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("model", "accuracy", "95% CI", "ties", "log-loss", "Brier", "ECE", "ECE after T", "user macro",
                "worst 10%", "fit s"):
        table.add_column(col)

    def cell(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    for r in rows:
        table.add_row(r["model"], cell(r["accuracy"]), f"{cell(r['ci_low'])}–{cell(r['ci_high'])}", str(r["ties"]),
                      cell(r["log_loss"]), cell(r["brier"]), cell(r["ece"]), cell(r["ece_scaled"]), cell(r["user_macro"]),
                      cell(r["worst_decile"]), f"{r.get('fit_seconds', 0):.1f}")
    out.print(table)


def fit(
    train: Path = typer.Option(..., "--train", help=TRAIN_HELP),
    model: str = typer.Option(..., "--model", help="bt, pbt, gpm, pal, pal-latent, vpl, dpa or winrate."),
    param: list[str] = typer.Option([], "--param", help=PARAM_HELP),
    valid: Path = typer.Option(None, "--valid", help=VALID_HELP),
    out_path: Path = typer.Option(..., "--out", help="Where to save the fitted model (.npz)."),
    seed: int = Seed("Seed of the validation carve-out."),
) -> None:
    """Fit a model and save it (parameters and state in one .npz, no pickle)."""
    model, params = _params(model, param)
    with progress() as bar:
        _, tr, va, _, fitted, seconds = _read_and_fit(bar, model, params, train, None, valid, seed)
    fitted.save(out_path)
    accuracy = _report(fitted, model, va, None, seed, seconds)["accuracy"] if len(va) else None
    judged = (f"validation accuracy {accuracy:.4f} on {len(va):,} pairs" if accuracy is not None
              else "no validation pairs (too few to set any apart)")
    out.print(f"{model} fitted on {len(tr):,} pairs in {seconds:.1f} s; {judged}; saved to {out_path}")


def score(
    model_path: Path = typer.Option(..., "--model-path", help="A preference model written by `penchant prefs fit` or `penchant fit`."),
    pairs: Path = typer.Option(..., "--pairs", help="Comparisons to score: TRL text (prompt/chosen/rejected) or id pairs (user?/winner/loser)."),
    json_out: Path = typer.Option(..., "--json", help="Write P(first preferred) for every row, in file order, here."),
) -> None:
    """Score every row of a comparison file with a fitted model, replies never seen included."""
    from penchant.experiment.pair_scores import score_pair_file
    from penchant.models.preference.base import PreferenceModel

    fitted = PreferenceModel.load(model_path)
    scores = score_pair_file(fitted, pairs)
    write_json(json_out, scores.to_json(fitted.name))
    out.print(f"{fitted.name}: {len(scores.prob):,} pairs scored, accuracy {scores.accuracy:.4f}; written to {json_out}")
    if scores.unknown_options:
        err.print(f"{scores.unknown_options:,} rows name an option the model was not fitted on: scored P = 0.5")


def compare(
    path: Path = typer.Argument(None, help="Comparisons (TRL JSONL/CSV, or winner/loser id pairs) or a ratings log/folder.", show_default=False),
    data: Path = typer.Option(None, "--data", help="The same as the positional data set."),
    source: str = typer.Option(..., "--source", help="What the data set holds: text (prompt/chosen/rejected), ids (user?/winner/loser) or ratings."),
    model: list[str] = typer.Option([], "--model", help="NAME or NAME:key=value,... (repeat); baselines are always added."),
    split: str = typer.Option("pair", "--split", help="pair, group (prompt on one side) or user (whole users held out); ratings always split ratings per user first."),
    seed: int = Seed("Seed of the split and the bootstrap."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Split one comparison source 80/10/10, fit several models on the first part (early stopping
    and temperature on the second) and compare them on the last, baselines included."""
    from penchant.cli.specs import data_path
    from penchant.errors import ConfigError
    from penchant.experiment.run import parse_model_spec
    from penchant.models.registry import convert_params

    data = data_path(path, data)
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    specs = [parse_model_spec(m) for m in model]
    runs = _baselines(source == "text") + [(name, convert_params(name, raw)) for name, raw in specs]
    with progress() as bar:
        task = bar.add_task("reading comparisons", total=None)
        parts = _split(data, source, split, seed)
        rows = []
        for name, params in runs:
            label = _label(name, params)
            bar.update(task, description=f"fitting {label}")
            fitted, seconds = _fit(name, params, parts.train, parts.valid)
            rows.append(_report(fitted, label, parts.test, parts.valid, seed, seconds))
    _table(sorted(rows, key=lambda r: -r["accuracy"]), f"{len(parts.test):,} test pairs ({parts.protocol})")
    if json_out:
        write_json(json_out, {"data": str(data), "split": parts.protocol, "train": len(parts.train),
                              "valid": len(parts.valid), "test": len(parts.test), "results": rows})


def export(
    path: Path = typer.Argument(None, help="Comparisons or a ratings log/folder.", show_default=False),
    data: Path = typer.Option(None, "--data", help="The same as the positional data set."),
    source: str = typer.Option(..., "--source", help="text, ids (items need titles/text) or ratings."),
    out_path: Path = typer.Option(..., "--out", help="JSON lines in the TRL layout {prompt, chosen, rejected, user}."),
    pairs_per_rating: float = typer.Option(5.0, "--pairs-per-rating", help="Ratings: pairs drawn per rating."),
    seed: int = Seed("Ratings: seed of the pair draw."),
) -> None:
    """Write comparisons in the TRL layout, for reward-model or DPO training elsewhere (items by
    their text: title and attributes)."""
    from penchant.cli.specs import data_path
    from penchant.data import load
    from penchant.data.pair_files import read_pairs
    from penchant.data.preferences import pairs_from_ratings, write_trl
    from penchant.errors import ConfigError

    data = data_path(path, data)
    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "ratings":
        from penchant.embed.items import item_descriptions

        ds = load(data)
        pairs = pairs_from_ratings(ds, pairs_per_rating, seed, option_text=item_descriptions(ds))
    else:
        pairs = read_pairs(data)
    write_trl(pairs, out_path)
    for step in pairs.steps:
        out.print(f"  {step}")
    out.print(f"wrote {len(pairs):,} comparisons to {out_path}")


def _split(data: Path, source: str, split: str, seed: int):
    from penchant.data import load, read_id_comparisons, read_text_comparisons
    from penchant.data.preferences import rating_pair_split, split_pairs

    if source == "ratings":
        return rating_pair_split(load(data), seed=seed)
    pairs = read_text_comparisons(data) if source == "text" else read_id_comparisons(data)
    return split_pairs(pairs, (0.8, 0.1, 0.1), by=split, seed=seed)
