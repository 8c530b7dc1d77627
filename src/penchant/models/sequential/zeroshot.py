"""Zero-shot next-item ranking from item text alone: no interaction is learned from."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Validator
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.sequential.base import SequentialRecommender, pad_left


@register
class TextZeroShot(SequentialRecommender):
    """Ranks items by cosine similarity between their sentence embedding and a recency-weighted
    mean of the embeddings of the sequence's last ``max_len`` items (weight ``decay^age``, age 0
    for the latest). Nothing is trained, so new items rank as well as old ones; the items'
    descriptions come from :func:`penchant.embed.item_descriptions`.

    With ``summaries`` (a file of user id -> a text describing the user's taste, e.g. written by
    ``penchant llm summarize``), a known user's profile is ``(1 − w)·p + w·s`` of the unit-normalised
    recency profile ``p`` and the summary's embedding ``s`` (``w = summary_weight``); users without a
    summary keep ``p``.

    Args:
        max_len: recent items that form the profile.
        decay: weight ratio between consecutive items, in (0, 1].
        text_model: the sentence encoder (all-MiniLM-L6-v2, packaged).
        summaries: a JSON file of user summaries ("" for none).
        summary_weight: the summary's share of a profile, in [0, 1].
    """

    name = "zeroshot"
    summary = "zero-shot: rank by text similarity to the recent items (frozen MiniLM; no training)"
    search_space = {"max_len": Int(1, 50, log=True), "decay": Float(0.3, 1.0)}

    def __init__(self, *, max_len: int = 5, decay: float = 0.7, text_model: str = "all-MiniLM-L6-v2",
                 summaries: str = "", summary_weight: float = 0.5) -> None:
        if max_len < 1 or not 0 < decay <= 1:
            raise ConfigError("max_len must be ≥ 1 and decay in (0, 1]")
        if not 0 <= summary_weight <= 1:
            raise ConfigError("summary_weight must be in [0, 1]")
        self.max_len, self.decay, self.text_model = max_len, decay, text_model
        self.summaries, self.summary_weight = summaries, summary_weight
        self.summary_vectors_: np.ndarray | None = None

    def check_data(self, train: Dataset) -> None:
        from penchant.embed.items import require_item_words

        require_item_words(train)

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        from penchant.embed import embed_items

        self.item_vectors_ = embed_items(train, self.text_model)
        self.summary_vectors_ = None
        if self.summaries:
            from penchant.embed.summaries import embed_summaries

            vectors, rows, self.summaries_unknown_ = embed_summaries(self.summaries, train, self.text_model)
            self.summary_vectors_ = np.zeros((train.n_users, self.item_vectors_.shape[1]), np.float32)
            self.summary_vectors_[rows] = vectors
        super()._fit(train, valid)

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        pass  # zero-shot: the history is all it reads

    def _profile(self, seqs: np.ndarray) -> np.ndarray:
        """Unit recency-weighted mean of the window's item vectors, float32 (n, dim)."""
        table = np.vstack([self.item_vectors_, np.zeros((1, self.item_vectors_.shape[1]), np.float32)])
        weight = (self.decay ** np.arange(seqs.shape[1] - 1, -1, -1, dtype=np.float32))[None, :]
        weight = weight * (seqs != self.n_items_)
        profile = np.einsum("bl,bld->bd", weight, table[seqs])
        return profile / np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        return (self._profile(seqs) @ self.item_vectors_.T).astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        seqs = pad_left(self.hist_ptr_, self.hist_items_, users, self.context_len, self.n_items_)
        profile = self._profile(seqs)
        if self.summary_vectors_ is not None:
            s = np.zeros_like(profile)
            inside = users < len(self.summary_vectors_)  # users added after fit have no summary
            s[inside] = self.summary_vectors_[users[inside]]
            has = np.linalg.norm(s, axis=1) > 0
            profile[has] = (1 - self.summary_weight) * profile[has] + self.summary_weight * s[has]
        return (profile @ self.item_vectors_.T).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        state = {**self._history_state(), "item_vectors": self.item_vectors_}
        if self.summary_vectors_ is not None:
            state["summary_vectors"] = self.summary_vectors_
        return state

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_history(arrays)
        self.item_vectors_ = arrays["item_vectors"].astype(np.float32)
        self.summary_vectors_ = arrays["summary_vectors"].astype(np.float32) if "summary_vectors" in arrays else None
