"""Rendering for the terminal: tables, progress (a bar on a terminal, plain lines in a file or pipe) and
the one-line error format."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from penchant.eval.report import Leaderboard

out = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)

#: seconds between the plain progress lines written when stderr is not a terminal
LINE_EVERY = 5.0
#: a task of at most this many steps gets a line at every completed step (more: every LINE_EVERY)
LINE_EACH_STEP = 50
_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress at all, neither the bar nor plain lines."""
    global _quiet
    _quiet = quiet


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0
    status: Any = None  # the latest TrainingStatus of a model training by epochs, until the next phase
    start: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        """What the task is doing: ``fitting biasedmf fold 2/5: epoch 12/200 · valid … (best …)``."""
        return self.description + (f": {self.status.progress_text}" if self.status is not None else "")

    def eta(self) -> str | None:
        """Time left: from the steps done of the total, else (one model training) at most the rest of its epochs."""
        if self.total and 0 < self.completed < self.total:
            return duration((time.monotonic() - self.start) / self.completed * (self.total - self.completed))
        seconds = self.status.eta_seconds if self.status is not None else None
        return None if seconds is None else "≤ " + duration(seconds)

    def line(self) -> str:
        parts = [self.text()]
        if self.total and self.status is None:
            parts.append(f"{self.completed:,.0f}/{self.total:,.0f}")
        parts.append(f"{clock(time.monotonic() - self.start)} elapsed")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {eta}")
        return " · ".join(parts)


def clock(seconds: float) -> str:
    """Elapsed time as a clock: ``0:41``, ``12:03``, ``1:02:03``."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def duration(seconds: float) -> str:
    """A span of time in words short enough for a progress line: ``45s``, ``1m10s``, ``2h05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class Display:
    """The progress of a command's long work, on stderr: a transient rich bar on a terminal; plain
    lines when stderr is a file or a pipe (every :data:`LINE_EVERY` seconds, at each completed step
    of a task of few steps, and once when a task is done); nothing with ``--quiet``.

    The same calls as rich's ``Progress`` (``add_task``, ``update``, ``advance``), plus
    ``update(task, status=...)`` for a model's :class:`~penchant.models.training.TrainingStatus`;
    a new ``description`` (a new phase) clears the status.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "bar", "lines" or "quiet"
        self.tasks: list[_Task] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = time.monotonic()
        self._bar: Progress | None = None
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Display:
        if self.mode == "bar":
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), console=err, transient=True)
            self._bar.__enter__()
        elif self.mode == "lines":
            self._ticker = threading.Thread(target=self._tick, name="penchant-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.__exit__(kind, value, traceback)
        elif self.mode == "lines" and kind is None:
            with self._lock:
                for task in self.tasks:
                    done = f" · {task.completed:,.0f}/{task.total:,.0f}" if task.total else ""
                    self._write(f"{task.text()}{done} · done in {clock(time.monotonic() - task.start)}")

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        with self._lock:
            self.tasks.append(_Task(description, total))
        if self._bar is not None:
            self._bar.add_task(description, total=total, eta="")
        return len(self.tasks) - 1

    def update(self, task: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, advance: float | None = None, status: Any = None, **_: Any) -> None:
        with self._lock:
            t = self.tasks[task]
            before = t.completed
            if description is not None:
                t.description, t.status = description, status
            elif status is not None:
                t.status = status
            if total is not None:
                t.total = total
            if completed is not None:
                t.completed = completed
            if advance:
                t.completed += advance
            if self._bar is not None:
                eta = t.eta()
                self._bar.update(task, description=t.text(), completed=t.completed, total=t.total,
                                 eta="" if eta is None else f"ETA {eta}")
            elif self.mode == "lines" and before < t.completed < (t.total or 0) <= LINE_EACH_STEP:
                self._write(t.line())  # the last step's line is the one written when the task is done

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, LINE_EVERY)):
            with self._lock:
                if time.monotonic() - self._last >= LINE_EVERY:
                    for task in self.tasks:
                        if not task.total or task.completed < task.total:
                            self._write(task.line())

    def _write(self, line: str) -> None:
        self._last = time.monotonic()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def progress() -> Display:
    """The progress display of a command: ``with progress() as bar: task = bar.add_task(...)``."""
    return Display("quiet" if _quiet else "bar" if err.is_terminal else "lines")


@contextmanager
def training_status(bar: Display, task: int, label: str | None = None) -> Iterator[None]:
    """While a model trains by epochs, ``task`` shows its epoch, validation score and time left after
    its description: ``fitting biasedmf: epoch 12/200 · valid … (best …) · 0:41 elapsed · ETA ≤ 1m10s``
    (``label``, once the model's name, is not needed: the description says what is fitted)."""
    from penchant.models.training import training_progress

    with training_progress(lambda status: bar.update(task, status=status)):
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
