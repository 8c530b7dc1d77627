"""Latent-factor models: score x_ui = p_u · q_i (+ b_i), with shared persistence and bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np

from penchant.models.base import Recommender


def _array(t: Any) -> np.ndarray:
    """A numpy copy of a torch tensor (on any device) or array."""
    return (t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)).astype(np.float32, copy=True)


class FactorModel(Recommender):
    """Base of models whose scores are dot products of user and item factors plus an item bias.

    Subclasses call :meth:`_set_factors` after (or during) training; ``best_epoch_``, when a
    subclass sets it, is reported by :meth:`selected`.
    """

    user_factors_: np.ndarray | None = None
    item_factors_: np.ndarray | None = None
    item_bias_: np.ndarray | None = None

    def _set_factors(self, users: Any, items: Any, bias: Any = None) -> None:
        self.user_factors_, self.item_factors_ = _array(users), _array(items)
        self.item_bias_ = None if bias is None else _array(bias)

    def _snapshot(self) -> tuple[np.ndarray | None, ...]:
        return self.user_factors_, self.item_factors_, self.item_bias_

    def _restore(self, state: tuple[np.ndarray | None, ...]) -> None:
        self.user_factors_, self.item_factors_, self.item_bias_ = state

    def selected(self) -> dict[str, int]:
        return {"epochs": self.best_epoch_} if getattr(self, "best_epoch_", None) else {}

    def item_vectors(self) -> np.ndarray:
        """Item factors, float32 (n_items, factors)."""
        self._check_fitted()
        assert self.item_factors_ is not None
        return self.item_factors_

    def key_vectors(self) -> np.ndarray:
        """Item keys ``[q_i, b_i]``, float32 (n_items, factors [+ 1]): with :meth:`query_vectors`, the
        inner product is the score."""
        self._check_fitted()
        assert self.item_factors_ is not None
        if self.item_bias_ is None:
            return self.item_factors_
        return np.hstack([self.item_factors_, self.item_bias_.reshape(-1, 1)]).astype(np.float32)

    def query_vectors(self, users: np.ndarray) -> np.ndarray:
        """User queries ``[p_u, 1]``, float32 (len(users), factors [+ 1])."""
        self._check_fitted()
        assert self.user_factors_ is not None
        p = self.user_factors_[np.asarray(users, dtype=np.int64)]
        return p if self.item_bias_ is None else np.hstack([p, np.ones((len(p), 1), np.float32)])

    def _score(self, users: np.ndarray) -> np.ndarray:
        assert self.user_factors_ is not None and self.item_factors_ is not None
        scores = self.user_factors_[users] @ self.item_factors_.T
        if self.item_bias_ is not None:
            scores += self.item_bias_
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        assert self.user_factors_ is not None and self.item_factors_ is not None
        out = {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
        if self.item_bias_ is not None:
            out["item_bias"] = self.item_bias_
        return out

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_, self.item_factors_ = arrays["user_factors"], arrays["item_factors"]
        self.item_bias_ = arrays.get("item_bias")
