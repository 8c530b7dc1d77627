"""Figures as PNG files (matplotlib, imported only here and only when a figure is asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from penchant.errors import ConfigError


def line_plot(series: dict[str, np.ndarray], path: str | Path, *, title: str, xlabel: str, ylabel: str) -> Path:
    """One line per named series (float (T,) each) against 1..T, written to ``path`` (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'penchant[plots]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.6)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
