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

from penchant.data.preferences import PreferencePairs

FEATURES = ("id", "text", "layers", "length", "bow")


def option_features(pairs: PreferencePairs, features: str, text_model: str = "all-MiniLM-L6-v2") -> np.ndarray | None:
    """float32 (n_options, f) for every kind but ``id`` (None)."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, not {features!r}")
    if features == "id":
        return None
    if pairs.option_text is None:
        raise ValueError(f"{pairs.name} has no option text; use features='id' or pairs with text")
    if features == "length":
        return np.log1p(np.array([len(str(t)) for t in pairs.option_text], dtype=np.float32))[:, None]
    if features == "bow":
        from sklearn.feature_extraction.text import TfidfVectorizer

        bag = TfidfVectorizer(ngram_range=(1, 2), max_features=5000, sublinear_tf=True)
        return bag.fit_transform(pairs.option_text.astype(str)).toarray().astype(np.float32)
    from penchant.embed import SentenceEncoder

    enc = SentenceEncoder(text_model)
    if features == "layers":
        return _standardised_blocks(enc.encode_layers(pairs.option_text.astype(str)), enc.dim)
    reply = enc.encode(pairs.option_text.astype(str))
    if pairs.option_context is None:
        return reply
    context = enc.encode(pairs.option_context.astype(str))
    return np.hstack([reply, context * reply]).astype(np.float32)


def _standardised_blocks(x: np.ndarray, width: int) -> np.ndarray:
    """Each ``width``-column block of x (n, blocks · width) centred, scaled to unit variance per
    column and divided by sqrt(width); constant columns become 0."""
    x = x.astype(np.float64)
    spread = x.std(0)
    z = (x - x.mean(0)) / np.where(spread > 0, spread, np.inf)
    return (z / np.sqrt(width)).astype(np.float32)
