"""Items in words and as sentence embeddings. A description is built from a dataset's item text
and item-file attributes: ``"Toy Story. release_year: 1995. class: Animation, Children's, Comedy"``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from penchant.data import Dataset
from penchant.embed.encoder import DEFAULT_MODEL, SentenceEncoder
from penchant.errors import ConfigError, DataError


def item_descriptions(ds: Dataset, attributes: Sequence[str] | None = None, *, max_values: int = 8) -> list[str]:
    """One string per item index: its text (title) then ``name: v1, v2`` for each attribute.

    Args:
        ds: the dataset whose items are described.
        attributes: attribute names to include; by default those read from the item file (not the
            knowledge-graph relations, whose values are opaque entity ids).
        max_values: at most this many values of one attribute per item.
    """
    names = [a for a in ds.item_attributes if not a.startswith("kg:")] if attributes is None else list(attributes)
    for a in names:
        if a not in ds.item_attributes:
            raise ConfigError(f"no item attribute {a!r}; the dataset has {', '.join(ds.item_attributes) or 'none'}")
    out = []
    for i in range(ds.n_items):
        parts = [str(ds.item_text[i])] if ds.item_text is not None and str(ds.item_text[i]) else [f"item {ds.item_ids[i]}"]
        for a in names:
            values = ds.item_attributes[a].of(i)[:max_values]
            if values:
                parts.append(f"{a}: {', '.join(values)}")
        out.append(". ".join(parts))
    return out


def require_item_words(ds: Dataset, attributes: Sequence[str] | None = None) -> None:
    """Refuse (:class:`DataError`) a dataset with neither item text nor (named) item attributes.

    Every description would be ``"item <id>"``: a model that reads items as words would pass for
    one while reading nothing but ids.
    """
    described = [a for a in ds.item_attributes if not a.startswith("kg:")] if attributes is None else list(attributes)
    if ds.item_text is None and not described:
        raise DataError(f"{ds.name} has no item text and no item attributes, so there is nothing to read about the items",
                        expected="item titles or descriptions (an item file with a title or text column) or item attributes")


def embed_items(ds: Dataset, model: str = DEFAULT_MODEL, attributes: Sequence[str] | None = None) -> np.ndarray:
    """Sentence embeddings of :func:`item_descriptions`; float32 (n_items, dim), unit norm, cached.
    A dataset with nothing to describe is refused (:func:`require_item_words`)."""
    require_item_words(ds, attributes)
    return SentenceEncoder(model).encode(item_descriptions(ds, attributes))
