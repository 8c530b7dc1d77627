"""P(first ≻ second) for every row of a comparison file, from a fitted preference model.

Text comparisons (TRL layout) are scored through the model's fitted text pipeline and its own
option map, so replies it has never seen are scored by any text-feature model, personal ones
included (:class:`~penchant.models.protocols.TextScorer`). Id comparisons are mapped onto the
model's option and user vocabularies; a row naming an option the model does not know gets P = 1/2
and is counted. A user the model does not know is scored as the population and counted. Rows keep
the file's order; none is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penchant.data.build import index_of
from penchant.errors import ConfigError
from penchant.models.preference.base import PreferenceModel
from penchant.models.protocols import TextScorer


@dataclass
class PairScores:
    """``prob[j]`` = P(row j's first (chosen/winner) ≻ its second), in file order, float64 (n,)."""

    prob: np.ndarray
    unknown_options: int = 0
    unknown_users: int = 0

    @property
    def accuracy(self) -> float:
        """Share of rows where the first option gets P > 1/2, a tie (P = 1/2) counted as 1/2."""
        if not len(self.prob):
            return float("nan")
        from penchant.eval.prefs import pair_accuracy

        return float(pair_accuracy(self.prob).mean())

    def to_json(self, model: str) -> dict:
        """The ``penchant prefs score`` contract, plus the count of rows with unknown options."""
        return {"model": model, "pairs_scored": int(len(self.prob)), "prob": [float(p) for p in self.prob],
                "accuracy": self.accuracy, "unknown_options": self.unknown_options, "unknown_users": self.unknown_users}


def score_pair_file(model: PreferenceModel, path: str | Path) -> PairScores:
    """Score every row of the comparison file ``path`` (either layout) with ``model``."""
    from penchant.data.comparisons import read_id_comparisons, read_text_comparisons
    from penchant.data.pair_files import comparison_layout

    layout = comparison_layout(path)
    if layout in ("ultrafeedback", "prism"):
        raise ConfigError(f"{path} holds rated replies ({layout}), not one comparison a row: write its pairs with "
                          f"`penchant prefs export {path} --source text --out pairs.jsonl` and score those")
    if layout == "text":
        if not isinstance(model, TextScorer):
            raise ConfigError(f"{model.name} cannot score new text; fit a text reward model (e.g. bt with "
                              "features=layers) or give an id comparison file")
        rows = read_text_comparisons(path, drop_identical=False)
        users = np.full(len(rows), -1, dtype=np.int64)
        named = rows.user >= 0
        if named.any():  # a user the model knows is scored as that user; others as the population
            users[named] = index_of(model.user_ids_, rows.user_ids)[rows.user[named]]
        prob = model.prob_text(rows.chosen_text, rows.rejected_text, rows.prompt, users)
        return PairScores(prob, unknown_users=int((named & (users < 0)).sum()))
    c = read_id_comparisons(path)
    options = index_of(model.option_ids_, c.option_ids)
    users = np.where(c.user >= 0, index_of(model.user_ids_, c.user_ids)[np.maximum(c.user, 0)] if c.n_users else -1, -1)
    a, b = options[c.winner], options[c.loser]
    known = (a >= 0) & (b >= 0)
    prob = np.full(len(a), 0.5)
    if known.any():
        prob[known] = model.prob(users[known], a[known], b[known])
    named = c.user >= 0
    return PairScores(prob, int((~known).sum()), int((named & (users < 0)).sum()))


