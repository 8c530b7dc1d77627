"""Figures as PNG files (matplotlib, imported only here and only when a figure is asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from penchant.errors import ConfigError


def line_plot(series: dict[str, np.ndarray], path: str | Path, *, title: str, xlabel: str, ylabel: str) -> Path:
    """One line per named series (float (T,) each) against 1..T, written to ``path`` (PNG)."""
    plt, fig, ax, path = new_figure(path)
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.6)
    return save_figure(plt, fig, ax, path, title, xlabel, ylabel)


def xy_plot(series: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str, xlabel: str,
            ylabel: str, annotate: dict[str, list[str]] | None = None) -> Path:
    """One line with markers per named series of (x, y) points (float (n,) each), e.g. a trade-off
    curve; ``annotate`` labels each point of a series (e.g. with the knob value). Written to ``path`` (PNG)."""
    plt, fig, ax, path = new_figure(path)
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o", label=name, linewidth=1.6)
        for label, xi, yi in zip((annotate or {}).get(name, []), x, y):
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    return save_figure(plt, fig, ax, path, title, xlabel, ylabel)


def new_figure(path: str | Path, size: tuple[float, float] = (7, 4.2)):
    """pyplot (Agg), a new figure of ``size`` inches and its axes, and ``path`` with its folder made."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'penchant[plots]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=size, dpi=110)
    return plt, fig, ax, path


def save_figure(plt, fig, ax, path: Path, title: str, xlabel: str, ylabel: str, **legend) -> Path:
    """Title, labels, grid and legend; the figure written to ``path`` and closed."""
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
