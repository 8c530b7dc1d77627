"""``penchant prefs fit|evaluate|compare|export|score|explain``: pairwise preference models from the terminal.

``evaluate`` keeps the scripts' contract: ``--train F --test F --model NAME [--param key=value
...] --json OUT`` with OUT holding ``{"model", "params", "accuracy", "user_macro_accuracy",
"log_loss", "pairs_evaluated", "fit_seconds"}`` (and more figures beside them).
"""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.data_cmds import Seed
from penchant.cli.render import err, out, progress, training_status, write_json
from penchant.experiment.tasks import PAIR_SOURCES as SOURCES

TRAIN_HELP = ("Training comparisons: id pairs (user?,winner,loser), the TRL layout (prompt?,chosen,rejected,user?), "
              "UltraFeedback (instruction, completions: a pair per aspect) or PRISM (conversation_history).")
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


def _experiment(job, runs: list[tuple[str, dict]], parts, seed: int) -> list[dict]:
    """The task's pair experiment over ``runs`` with progress: a row per run, in order."""
    with progress() as bar, training_status(bar, task := bar.add_task("fitting", total=len(runs))):
        return job.compare(runs, parts, seed=seed,
                           progress=lambda done, label: bar.update(task, completed=done, description=label))


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
    from penchant.experiment.tasks import baselines, task_for

    model, params = _params(model, param)
    job = task_for(model, ("preference",))
    parts = job.read(train, valid, test, seed=seed)
    tr, va, te = parts.train, parts.valid, parts.test
    main, *others = _experiment(job, [(model, params)] + baselines(tr.option_context is not None), parts, seed)
    _table([main] + others, f"{len(te):,} test pairs; trained on {len(tr):,} (+{len(va):,} valid)")
    if json_out:
        write_json(json_out, {"model": model, "params": params, "accuracy": main["accuracy"],
                              "user_macro_accuracy": main["user_macro"], "log_loss": main["log_loss"],
                              "pairs_evaluated": main["pairs"], "fit_seconds": main["fit_seconds"],
                              "ties": main["ties"], "accuracy_ci": [main["ci_low"], main["ci_high"]],
                              "brier": main["brier"], "ece": main["ece"], "ece_after_temperature": main["ece_scaled"],
                              "worst_decile_user_accuracy": main["worst_decile"],
                              "train_pairs": len(tr), "valid_pairs": len(va), "baselines": others})


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
    from penchant.cli.model_cmds import fit_and_save
    from penchant.experiment.tasks import task_for

    model, params = _params(model, param)
    job = task_for(model, ("preference",))
    fit_and_save(job, model, params, out_path, job.read(train, valid, seed=seed))


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
    path: Path = typer.Argument(None, help="Comparisons (TRL JSONL/CSV, UltraFeedback, PRISM, or winner/loser id pairs) or a ratings log/folder.", show_default=False),
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
    from penchant.experiment.run import parse_model_spec
    from penchant.experiment.tasks import PreferenceTask, baselines
    from penchant.models.registry import convert_params

    data = data_path(path, data)
    job = PreferenceTask()
    specs = [parse_model_spec(m) for m in model]
    runs = baselines(source == "text") + [(name, convert_params(name, raw)) for name, raw in specs]
    parts = job.split_source(data, source, split=split, seed=seed)
    rows = _experiment(job, runs, parts, seed)
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


def explain(
    path: Path = typer.Argument(None, help="Text comparisons: the TRL layout (prompt?, chosen, rejected), HH-RLHF dialogues, UltraFeedback or PRISM.", show_default=False),
    data: Path = typer.Option(None, "--data", help="The same as the positional comparison file."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap refits over pairs for the intervals."),
    folds: int = typer.Option(5, "--folds", help="Folds of prompts for the held-out accuracy."),
    seed: int = Seed("Seed of the bootstrap and the folds."),
    json_out: Path = typer.Option(None, "--json", help="Write the features, effects, intervals and accuracy as JSON here."),
) -> None:
    """Which properties of a reply the choices follow: a logistic model of the choice on the
    differences (chosen − rejected) of interpretable reply features (length, readability, lexical
    diversity, nouns and proper-noun runs, brackets, lists, questions, politeness, refusal, overlap
    with the prompt), each effect per standard deviation with a 95% bootstrap interval, and the
    model's held-out accuracy beside the length-only model's."""
    from penchant.cli.specs import data_path
    from penchant.data.pair_files import comparison_layout, read_pairs
    from penchant.errors import DataError
    from penchant.eval.explain import explain_pairs

    data = data_path(path, data)
    if comparison_layout(data) == "ids":
        raise DataError("id comparisons carry no reply text to explain", file=data,
                        expected="text comparisons: chosen/rejected (TRL layout), responses/label, UltraFeedback or PRISM")
    result = explain_pairs(read_pairs(data), n_boot=n_boot, folds=folds, seed=seed)
    _explain_table(result)
    if json_out:
        write_json(json_out, {"data": str(data), "seed": seed, **result.to_json()})


def _explain_table(result) -> None:
    import numpy as np
    from rich.table import Table

    from penchant.eval.reply_features import FEATURES

    def cell(x: float, digits: int = 3) -> str:
        return "—" if np.isnan(x) else f"{x:.{digits}f}"

    table = Table(title=f"{result.n_pairs:,} pairs; effect = log-odds of being chosen per SD of the difference "
                        f"(chosen − rejected), {result.level:.0%} bootstrap interval ({result.n_boot} refits)",
                  title_justify="left")
    for col in ("feature", "unit", "effect", "interval", "odds ratio", "chosen mean", "rejected mean", "SD of diff"):
        table.add_column(col)
    for k in np.argsort(-np.abs(np.nan_to_num(result.effect))):
        low, high = result.interval[k]
        table.add_row(result.features[k], FEATURES[result.features[k]][1], cell(result.effect[k]),
                      f"{cell(low)} – {cell(high)}" + (" *" if low > 0 or high < 0 else ""),
                      cell(float(np.exp(result.effect[k]))), cell(result.chosen_mean[k]),
                      cell(result.rejected_mean[k]), cell(result.sd_difference[k]))
    out.print(table)
    out.print(f"held-out accuracy ({result.folds} folds of prompts): features {result.accuracy:.4f}, "
              f"length only {result.length_accuracy:.4f}; * interval excludes 0; {result.seconds:.1f} s")
