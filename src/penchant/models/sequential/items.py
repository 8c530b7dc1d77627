"""The item table a sequence network reads and scores with: learned id embeddings, a projection
of frozen text embeddings, or both (the text-aware variant, after EasyRec / ULMRec).

``mode``:

* ``off``: one learned vector per item (the classic table);
* ``fuse``: ``e_j = m_j · v_j + W t_j + b`` — an id vector ``v_j`` only for items seen in training
  (``m_j`` = 1), plus a shared projection of the item's sentence embedding ``t_j``. An item never
  seen in training (cold) is represented by its text alone, on the same scale as warm items
  because during training each warm item's id vector is dropped with probability
  ``id_dropout`` per step, so the text path must carry the signal by itself;
* ``text``: ``e_j = W t_j + b`` only: every item, warm or cold, through its text.

With item text, items absent from training are left out of the training softmax and never drawn as
negatives: they are new, not disliked, and would otherwise be pushed below every warm item.

The table is (n_items + 1, d); its last row is the all-zero padding vector. With user summaries
(texts describing a user's taste, e.g. written by ``penchant llm summarize``), their sentence
embeddings go through the same projection ``W s + b`` and follow as rows ``n_items + 1 + r``: a
summary is a virtual item the network reads before the user's oldest item.
"""

from __future__ import annotations

import numpy as np

ITEM_TEXT_MODES = ("off", "fuse", "text")


def item_table(n_items: int, d: int, mode: str, text: np.ndarray | None, warm: np.ndarray | None,
               id_dropout: float, summaries: np.ndarray | None = None):
    """A torch module whose ``forward()`` returns the float32 (n_items + 1 [+ n_summaries], d) item table.

    Args:
        text: float32 (n_items, t) sentence embeddings (modes ``fuse`` and ``text``).
        warm: bool (n_items,), items with training interactions (mode ``fuse``).
        summaries: float32 (n_summaries, t) sentence embeddings of user summaries (modes ``fuse``
            and ``text``: they go through the text projection), appended after the padding row.
    """
    import torch

    if mode not in ITEM_TEXT_MODES:
        raise ValueError(f"item_text must be one of {', '.join(ITEM_TEXT_MODES)}, not {mode!r}")

    class ItemTable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if mode != "text":
                self.ids = torch.nn.Parameter(torch.randn(n_items, d) * d ** -0.5)
            if mode != "off":
                self.register_buffer("text", torch.as_tensor(np.asarray(text, dtype=np.float32)))
                self.proj = torch.nn.Linear(self.text.shape[1], d)
            if mode == "fuse":
                self.register_buffer("warm", torch.as_tensor(np.asarray(warm, dtype=np.float32)))
            if summaries is not None:
                self.register_buffer("summaries", torch.as_tensor(np.asarray(summaries, dtype=np.float32)))

        def forward(self):
            if mode == "off":
                table = self.ids
            else:
                table = self.proj(self.text)
                if mode == "fuse":
                    keep = self.warm
                    if self.training and id_dropout > 0:
                        keep = keep * (torch.rand(n_items, device=keep.device) >= id_dropout)
                    table = table + self.ids * keep[:, None]
            parts = [table, table.new_zeros(1, d)]
            if summaries is not None:
                parts.append(self.proj(self.summaries))
            return torch.cat(parts)

    return ItemTable()
