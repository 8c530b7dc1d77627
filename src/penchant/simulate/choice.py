"""The conditional logit with a no-click option, shared by the simulated worlds."""

from __future__ import annotations

import numpy as np


def logit_probabilities(logits: np.ndarray, no_click: float) -> np.ndarray:
    """float (n, k): each slot's choice probability given its logit (n, k) and the no-click option's."""
    top = np.maximum(logits.max(axis=1, keepdims=True), no_click)
    e = np.exp(logits - top)
    return e / (np.exp(no_click - top) + e.sum(axis=1, keepdims=True))


def draw_choice(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One choice per row of ``probs`` (n, k; the rest is no click): ``clicked`` bool (n,) and the
    chosen ``slot`` int (n,) (meaningful where clicked)."""
    cumulative = np.cumsum(probs, axis=1)
    draw = rng.random((len(probs), 1))
    return draw[:, 0] < cumulative[:, -1], (draw < cumulative).argmax(axis=1)
