"""What a preference model sees of an option: its id, or frozen sentence embeddings of its text.

``features="id"`` gives no feature matrix (models learn one vector per option); ``"text"`` embeds
each option with the packaged all-MiniLM-L6-v2 (cached by content hash). A reply to a prompt is
``[e(reply), e(prompt) ⊙ e(reply)]`` (768-d): the encoder truncates long inputs, so prompt and reply
are embedded apart, and the product lets a linear reward depend on how the reply fits the prompt.
An item is ``e(description)`` (384-d).
"""

from __future__ import annotations

import numpy as np

from penchant.data.preferences import PreferencePairs

FEATURES = ("id", "text")


def option_features(pairs: PreferencePairs, features: str, text_model: str = "all-MiniLM-L6-v2") -> np.ndarray | None:
    """float32 (n_options, f) for ``text``; None for ``id``."""
    if features not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, not {features!r}")
    if features == "id":
        return None
    if pairs.option_text is None:
        raise ValueError(f"{pairs.name} has no option text; use features='id' or pairs with text")
    from penchant.embed import SentenceEncoder

    enc = SentenceEncoder(text_model)
    reply = enc.encode(pairs.option_text.astype(str))
    if pairs.option_context is None:
        return reply
    context = enc.encode(pairs.option_context.astype(str))
    return np.hstack([reply, context * reply]).astype(np.float32)
