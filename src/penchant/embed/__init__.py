"""Frozen sentence embeddings of text (item descriptions, prompts, replies), cached on disk by
content hash, for the models that read text."""

from penchant.embed.encoder import DEFAULT_MODEL, SentenceEncoder, encode
from penchant.embed.items import embed_items, item_descriptions

__all__ = ["DEFAULT_MODEL", "SentenceEncoder", "embed_items", "encode", "item_descriptions"]
