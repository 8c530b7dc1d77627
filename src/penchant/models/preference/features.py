"""What a preference model sees of an option: its id, frozen sentence embeddings of its text, or
one of the two text baselines.

``features="id"`` gives no feature matrix (models learn one vector per option); ``"text"`` embeds
each option with the packaged all-MiniLM-L6-v2 (cached by content hash). A reply to a prompt is
``[e(reply), e(prompt) ⊙ e(reply)]`` (768-d): the encoder truncates long inputs, so prompt and reply
are embedded apart, and the product lets a linear reward depend on how the reply fits the prompt.
An item is ``e(description)`` (384-d). ``"layers"`` reads the same frozen encoder deeper: each of
its 6 transformer layers' token states mean-pooled over the reply (or item text), each layer's block
standardised over the options (mean 0, variance 1/384 per dimension, so every layer weighs alike
under one L2 penalty), 2,304-d; its middle layers carry wording that the final sentence vector
averages away. Baselines: ``"length"`` is the one feature log(1 + characters
of the reply); ``"bow"`` is the TF-IDF bag of words of the reply (unigrams and bigrams, the 5,000
most frequent, fitted on the options' own text, which carries no labels).
"""

from __future__ import annotations

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError, DataError

FEATURES = ("id", "text", "layers", "length", "bow")


class TextFeatures:
    """The fitted feature pipeline of one preference model: what it learned from the training options'
    text (a TF-IDF vocabulary and idf weights for ``bow``, per-column centring and scale for
    ``layers``) so that replies it has never seen get the same features.

    ``fit_transform(pairs)`` fits on the options of ``pairs`` (their text carries no labels) and
    returns float32 (n_options, f); ``transform(texts, contexts)`` featurises new options; ``state``
    / ``from_state`` round-trip through a model artefact (JSON settings and arrays, no pickle).
    """

    def __init__(self, kind: str, text_model: str = "all-MiniLM-L6-v2") -> None:
        if kind not in FEATURES or kind == "id":
            raise ConfigError(f"features must be one of {', '.join(FEATURES[1:])} for a text pipeline, not {kind!r}")
        self.kind, self.text_model = kind, text_model
        self.with_context = False
        self.arrays: dict[str, np.ndarray] = {}

    def fit_transform(self, pairs: PreferencePairs) -> np.ndarray:
        if pairs.option_text is None:
            raise ConfigError(f"{pairs.name} has no option text; use features='id' or pairs with text")
        self.with_context = pairs.option_context is not None
        texts = pairs.option_text.astype(str)
        if self.kind == "bow":
            from sklearn.feature_extraction.text import TfidfVectorizer

            bag = TfidfVectorizer(ngram_range=(1, 2), max_features=5000, sublinear_tf=True).fit(texts)
            terms = sorted(bag.vocabulary_, key=bag.vocabulary_.__getitem__)
            self.arrays = {"terms": np.array(terms, dtype=str), "idf": bag.idf_.astype(np.float64)}
        elif self.kind == "layers":
            raw = self._encoder().encode_layers(texts).astype(np.float64)
            spread = raw.std(0)
            self.arrays = {"mean": raw.mean(0), "scale": np.where(spread > 0, spread, np.inf)}
            return self._standardise(raw)
        contexts = pairs.option_context.astype(str) if self.with_context else None
        return self.transform(texts, contexts)

    def transform(self, texts: np.ndarray | list[str], contexts: np.ndarray | list[str] | None = None) -> np.ndarray:
        """float32 (len(texts), f) for options given as reply text (and the prompt each answers)."""
        texts = np.asarray(texts, dtype=object).astype(str)
        if self.kind == "length":
            return np.log1p(np.array([len(t) for t in texts], dtype=np.float32))[:, None]
        if self.kind == "bow":
            from sklearn.feature_extraction.text import TfidfVectorizer

            terms = self.arrays["terms"]
            bag = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                  vocabulary={str(t): i for i, t in enumerate(terms)})
            bag.idf_ = self.arrays["idf"]
            return bag.transform(texts).toarray().astype(np.float32)
        enc = self._encoder()
        if self.kind == "layers":
            return self._standardise(enc.encode_layers(texts).astype(np.float64))
        reply = enc.encode(texts)
        if not self.with_context:
            return reply
        if contexts is None:
            raise DataError("this model reads replies with their prompts: give the prompt of each reply")
        context = enc.encode(np.asarray(contexts, dtype=object).astype(str))
        return np.hstack([reply, context * reply]).astype(np.float32)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"kind": self.kind, "text_model": self.text_model, "with_context": self.with_context}, dict(self.arrays)

    @classmethod
    def from_state(cls, settings: dict, arrays: dict[str, np.ndarray]) -> TextFeatures:
        pipeline = cls(settings["kind"], settings["text_model"])
        pipeline.with_context, pipeline.arrays = bool(settings["with_context"]), dict(arrays)
        return pipeline

    def _encoder(self):
        from penchant.embed import SentenceEncoder

        return SentenceEncoder(self.text_model)

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        """Each 384-column block centred, scaled to unit variance per column and divided by sqrt(384)."""
        width = self._encoder().dim
        return ((raw - self.arrays["mean"]) / self.arrays["scale"] / np.sqrt(width)).astype(np.float32)
