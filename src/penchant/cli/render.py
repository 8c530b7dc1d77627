"""Rendering for the terminal: tables, progress bars and the one-line error format."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from penchant.eval.report import Leaderboard

out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """A transient progress display on stderr (silent when stderr is not a terminal)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        yield bar


@contextmanager
def training_status(bar: Progress, task, label: str) -> Iterator[None]:
    """While a model trains by epochs, the bar reads ``fitting NAME: epoch 12/200 · valid … · ETA``."""
    from penchant.models.training import training_progress

    with training_progress(lambda status: bar.update(task, description=f"fitting {label}: {status}")):
        yield


def write_json(path: str | Path, payload: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"{summary['name']}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key in ("users", "items", "interactions", "distinct_pairs", "users_with_interactions", "items_with_interactions"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}")
    table.add_row("density", f"{summary['density']:.4%}")
    for key in ("per_user", "per_item"):
        if key in summary:
            d = summary[key]
            table.add_row(f"interactions {key.replace('_', ' ')}",
                          f"min {d['min']:,}  median {d['median']:g}  mean {d['mean']:.1f}  max {d['max']:,}")
    if "ratings" in summary:
        r = summary["ratings"]
        dist = "  ".join(f"{k}: {v:,}" for k, v in r["distribution"].items())
        table.add_row("ratings", f"mean {r['mean']:.3f}  [{dist}]")
    if "time" in summary:
        from datetime import datetime, timezone

        t = summary["time"]
        fmt = lambda s: datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
        table.add_row("time span", f"{fmt(t['first'])} … {fmt(t['last'])}")
    for key in ("item_attributes", "user_attributes"):
        if summary.get(key):
            table.add_row(key.replace("_", " "), ", ".join(f"{k} ({v:,} values)" for k, v in summary[key].items()))
    if summary.get("comparisons"):
        table.add_row("comparisons", f"{summary['comparisons']:,}")
    table.add_row("item text", "yes" if summary.get("item_text") else "no")
    for step in summary.get("steps", []):
        table.add_row(f"step: {step['name']}", f"{step['count']:,} — {step['detail']}")
    return table


def leaderboard_table(board: Leaderboard) -> Table:
    cols = board.columns(brief=True)
    table = Table(title=f"Leaderboard by {board.metric} — {board.protocol}, {board.users:,} users",
                  title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("p vs best", justify="right")
    table.add_column("fit s", justify="right")
    for i, r in enumerate(board.rows, start=1):
        p = "—" if r["p_vs_best"] is None else f"{r['p_vs_best']:.2g}" + ("*" if r["p_vs_best"] < board.alpha else " n.s.")
        lo, hi = r["ci"]
        table.add_row(str(i), r["label"], *[f"{r['metrics'][c]:.4f}" for c in cols], f"{lo:.4f}–{hi:.4f}", p,
                      f"{r['fit_seconds']:.2f}")
    table.caption = "* significantly worse than the best (paired Wilcoxon, Holm-corrected)"
    return table
