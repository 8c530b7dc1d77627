"""``penchant prefs evaluate``: held-out accuracy and calibration of pairwise preference models."""

from __future__ import annotations

from pathlib import Path

import typer

from penchant.cli.render import out, progress, write_json

SOURCES = ("text", "ids", "ratings")


def evaluate(
    data: Path = typer.Option(..., "--data", help="Comparisons (TRL JSONL/CSV, or winner/loser id pairs) or a ratings log/folder."),
    source: str = typer.Option(..., "--source", help="What --data holds: text (prompt/chosen/rejected), ids (user?/winner/loser) or ratings."),
    model: list[str] = typer.Option([], "--model", help="NAME or NAME:key=value,... (repeat); baselines are always added."),
    split: str = typer.Option("pair", "--split", help="pair, group (prompt on one side) or user (whole users held out); ratings always split ratings per user first."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the bootstrap."),
    json_out: Path = typer.Option(None, "--json", help="Write the results as JSON here."),
) -> None:
    """Fit each model on 80% of the pairs (early stopping and temperature on 10%) and report
    accuracy (ties as half, 95% bootstrap interval), log-loss, Brier, ECE before and after
    temperature scaling, per-user macro accuracy and the worst tenth of users on the last 10%."""
    from penchant.errors import ConfigError
    from penchant.eval.experiment import parse_model_spec
    from penchant.eval.prefs import evaluate_pairs
    from penchant.models.preference.base import create_preference, typed_params

    if source not in SOURCES:
        raise ConfigError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    specs = [parse_model_spec(m) for m in model]
    runs = [("winrate", {}), ("bt", {})] + ([("bt", {"features": "length"})] if source == "text" else [])
    runs += [(name, typed_params(name, raw)) for name, raw in specs]
    with progress() as bar:
        task = bar.add_task("reading comparisons", total=None)
        parts = _split(data, source, split, seed)
        rows = []
        for name, params in runs:
            label = name + "".join(f" {k}={v}" for k, v in params.items())
            bar.update(task, description=f"fitting {label}")
            fitted = create_preference(name, **params).fit(parts.train, parts.valid)
            resample = "users" if (parts.test.user >= 0).sum() and parts.test.n_users > 10 else "pairs"
            rows.append(evaluate_pairs(fitted, parts.test, parts.valid, label=label, seed=seed, resample=resample).row())
    from rich.table import Table

    table = Table(title=f"{len(parts.test):,} test pairs ({parts.protocol})", title_justify="left")
    for col in ("model", "accuracy", "95% CI", "log-loss", "Brier", "ECE", "ECE after T", "user macro", "worst 10%"):
        table.add_column(col)
    def cell(x: float | None) -> str:
        return "—" if x is None else f"{x:.4f}"

    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        table.add_row(r["model"], cell(r["accuracy"]), f"{cell(r['ci_low'])}–{cell(r['ci_high'])}", cell(r["log_loss"]),
                      cell(r["brier"]), cell(r["ece"]), cell(r["ece_scaled"]), cell(r["user_macro"]),
                      cell(r["worst_decile"]))
    out.print(table)
    if json_out:
        write_json(json_out, {"data": str(data), "split": parts.protocol, "train": len(parts.train),
                              "valid": len(parts.valid), "test": len(parts.test), "results": rows})


def _split(data: Path, source: str, split: str, seed: int):
    from penchant.data import load, read_id_comparisons, read_text_comparisons
    from penchant.data.preferences import pairs_from_dataset, pairs_from_text, rating_pair_split, split_pairs

    if source == "ratings":
        return rating_pair_split(load(data), seed=seed)
    pairs = pairs_from_text(read_text_comparisons(data)) if source == "text" else pairs_from_dataset(read_id_comparisons(data))
    return split_pairs(pairs, (0.8, 0.1, 0.1), by=split, seed=seed)
