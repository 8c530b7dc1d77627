"""The one comparison object: :class:`PreferencePairs`, ``user`` preferred ``winner`` to ``loser``.

Every pairwise choice penchant reads is one of these, whatever it came from: id comparisons
(``user?, winner, loser`` files), text comparisons in the TRL layout (options are the distinct
(prompt, reply) pairs), choices implied by ratings, the service's stored comparisons, and
next-item choices after a history (``history``, for preference fine-tuning of sequential models).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from penchant.data.dataset import Step
from penchant.errors import DataError


@dataclass(frozen=True, eq=False)
class PreferencePairs:
    """``user[j]`` preferred ``winner[j]`` to ``loser[j]``.

    Attributes:
        user, winner, loser, group: int64 (n,); ``user`` is -1 where nobody is named, ``group``
            the context (prompt) index of the pair.
        user_ids: (n_users,) external user ids; option_ids: (n_options,) external option ids.
        option_text: (n_options,) option descriptions or replies, or None.
        option_context: (n_options,) the prompt each reply answers, or None.
        option_attributes: float32 (n_options, m) known attribute scores of each option (e.g. an
            item's genres, or a reply's rated helpfulness), or None; ``attribute_names`` (m,).
        history: int64 (n, L) what the user had consumed before each choice, right-aligned and
            padded with ``n_options`` (a next-item choice: which item should follow), or None.
        steps: what was counted or dropped on the way here.
    """

    user: np.ndarray
    winner: np.ndarray
    loser: np.ndarray
    group: np.ndarray
    user_ids: np.ndarray
    option_ids: np.ndarray
    option_text: np.ndarray | None = None
    option_context: np.ndarray | None = None
    steps: tuple[Step, ...] = ()
    name: str = "pairs"
    option_attributes: np.ndarray | None = None
    attribute_names: np.ndarray | None = None
    history: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.winner)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_options(self) -> int:
        return len(self.option_ids)

    def subset(self, mask: np.ndarray, step: Step | None = None, name: str | None = None) -> PreferencePairs:
        """The pairs where ``mask`` (bool (n,) or indices) holds; same users and options."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask, dtype=np.int64)
        return replace(self, user=self.user[idx], winner=self.winner[idx], loser=self.loser[idx], group=self.group[idx],
                       history=None if self.history is None else self.history[idx],
                       steps=self.steps + ((step,) if step else ()), name=name or self.name)

    @property
    def chosen_text(self) -> np.ndarray:
        """The text of each pair's winner, (n,) strings (pairs with option text only)."""
        return self._text(self.winner)

    @property
    def rejected_text(self) -> np.ndarray:
        """The text of each pair's loser, (n,) strings."""
        return self._text(self.loser)

    @property
    def prompt(self) -> np.ndarray:
        """The context (prompt) of each pair, (n,) strings; empty strings without contexts."""
        if self.option_context is None:
            return np.full(len(self), "", dtype=object)
        return self.option_context[self.winner]

    def _text(self, options: np.ndarray) -> np.ndarray:
        if self.option_text is None:
            raise DataError(f"{self.name} has no option text", expected="text comparisons or options with text")
        return self.option_text[options]

    def user_counts(self) -> np.ndarray:
        """Pairs per user, int64 (n_users,)."""
        return np.bincount(self.user[self.user >= 0], minlength=self.n_users)
