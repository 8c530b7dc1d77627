"""Sentence embeddings of user summaries (:mod:`penchant.data.summaries`), for the models that read
them beside a user's history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from penchant.data import Dataset
from penchant.data.summaries import read_summaries


def embed_summaries(path: str | Path, ds: Dataset, text_model: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Sentence embeddings of the summaries in ``path`` for users of ``ds``.

    Returns float32 (m, t) embeddings, the int64 (m,) user indices they belong to (ascending), and
    how many users of the file ``ds`` does not have (they are counted, not used).
    """
    from penchant.embed.encoder import SentenceEncoder

    texts = read_summaries(path)
    rows = ds.user_index(list(texts)) if texts else np.zeros(0, np.int64)
    known = np.flatnonzero(rows >= 0)
    known = known[np.argsort(rows[known], kind="stable")]
    listed = list(texts.values())
    vectors = SentenceEncoder(text_model).encode([listed[i] for i in known]).astype(np.float32)
    return vectors, rows[known].astype(np.int64), int(len(rows) - len(known))
