"""Zero-shot next-item ranking from item text alone: no interaction is learned from."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.models.base import Validator
from penchant.models.registry import register
from penchant.models.search import Float, Int
from penchant.models.sequential.base import SequentialRecommender


@register
class TextZeroShot(SequentialRecommender):
    """Ranks items by cosine similarity between their sentence embedding and a recency-weighted
    mean of the embeddings of the sequence's last ``max_len`` items (weight ``decay^age``, age 0
    for the latest). Nothing is trained, so new items rank as well as old ones; the items'
    descriptions come from :func:`penchant.embed.item_descriptions`.

    Args:
        max_len: recent items that form the profile.
        decay: weight ratio between consecutive items, in (0, 1].
        text_model: the sentence encoder (all-MiniLM-L6-v2, packaged).
    """

    name = "zeroshot"
    summary = "zero-shot: rank by text similarity to the recent items (frozen MiniLM; no training)"
    search_space = {"max_len": Int(1, 50, log=True), "decay": Float(0.3, 1.0)}

    def __init__(self, *, max_len: int = 5, decay: float = 0.7, text_model: str = "all-MiniLM-L6-v2") -> None:
        if max_len < 1 or not 0 < decay <= 1:
            raise ValueError("max_len must be ≥ 1 and decay in (0, 1]")
        self.max_len, self.decay, self.text_model = max_len, decay, text_model

    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        from penchant.embed import embed_items

        self.item_vectors_ = embed_items(train, self.text_model)
        super()._fit(train, valid)

    def _train(self, indptr: np.ndarray, items: np.ndarray, valid: Validator | None) -> None:
        pass  # zero-shot: the history is all it reads

    def _score_padded(self, seqs: np.ndarray) -> np.ndarray:
        table = np.vstack([self.item_vectors_, np.zeros((1, self.item_vectors_.shape[1]), np.float32)])
        weight = (self.decay ** np.arange(seqs.shape[1] - 1, -1, -1, dtype=np.float32))[None, :]
        weight = weight * (seqs != self.n_items_)
        profile = np.einsum("bl,bld->bd", weight, table[seqs])
        profile /= np.maximum(np.linalg.norm(profile, axis=1, keepdims=True), 1e-12)
        return (profile @ self.item_vectors_.T).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {**self._history_state(), "item_vectors": self.item_vectors_}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self._load_history(arrays)
        self.item_vectors_ = arrays["item_vectors"].astype(np.float32)
