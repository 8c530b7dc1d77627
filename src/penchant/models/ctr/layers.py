"""Building blocks the deep CTR networks share (DeepFM, DCN-V2, the mixtures of experts): the
feature embedding table with a zero padding row, and the ReLU tower. Torch is imported inside each
function, so importing the family stays cheap."""

from __future__ import annotations

from typing import Any

from penchant.errors import ConfigError


def feature_embedding(n_features: int, dims: int) -> Any:
    """``torch.nn.Embedding`` (n_features + 1, dims): one vector per feature id, N(0, 0.01²) at
    start, the padding id ``n_features`` a zero vector that gets no gradient."""
    import torch

    table = torch.nn.Embedding(n_features + 1, dims, padding_idx=n_features)
    torch.nn.init.normal_(table.weight, std=0.01)
    with torch.no_grad():
        table.weight[n_features].zero_()
    return table


def tower(n_in: int, hidden: tuple[int, ...], dropout: float, out: int | None = 1) -> Any:
    """Linear → ReLU → dropout per width in ``hidden``, then a linear layer to ``out`` outputs (None:
    no output layer; the last hidden activations are the output, width ``hidden[-1]`` or ``n_in``)."""
    import torch

    layers: list[Any] = []
    for width in hidden:
        layers += [torch.nn.Linear(n_in, width), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        n_in = width
    if out is not None:
        layers.append(torch.nn.Linear(n_in, out))
    return torch.nn.Sequential(*layers)


def parse_hidden(model: str, text: str) -> tuple[int, ...]:
    """Hidden widths from a parameter such as ``"256,128"`` (``""``: none); anything else is a ConfigError."""
    try:
        widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        widths = (0,)
    if any(w < 1 for w in widths):
        raise ConfigError(f"model {model!r}: hidden must be comma-separated positive widths such as '256,128', not {text!r}")
    return widths


def check_range(model: str, **values: tuple[float, float, float]) -> None:
    """Each ``name=(value, low, high)`` must have low <= value <= high; else a ConfigError naming it."""
    for name, (value, low, high) in values.items():
        if not low <= value <= high:
            raise ConfigError(f"model {model!r}: {name} must be in [{low}, {high}], not {value}")


def numpy_tower(seq: Any) -> list[tuple[Any, Any, bool]]:
    """A :func:`tower`'s inference weights as numpy: per ``Linear``, (W float32 (n_in, n_out)
    transposed and C-contiguous, b float32 (n_out,), whether a ReLU follows). Dropout is the
    identity at inference."""
    import numpy as np
    import torch

    linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
    return [(np.ascontiguousarray(m.weight.detach().cpu().numpy().T, dtype=np.float32),
             m.bias.detach().cpu().numpy().astype(np.float32), i < len(linears) - 1) for i, m in enumerate(linears)]


def tower_forward(h: Any, layers: list[tuple[Any, Any, bool]]) -> Any:
    """The numpy forward of :func:`numpy_tower`'s layers on ``h`` float32 (m, n_in): (m, n_out)."""
    import numpy as np

    for weight, bias, relu in layers:
        h = h @ weight
        h += bias
        if relu:
            np.maximum(h, 0.0, out=h)
    return h
