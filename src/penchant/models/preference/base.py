"""The protocol every pairwise preference model follows, and the registry of them by name.

``fit(train, valid=None)`` learns from :class:`~penchant.data.preferences.PreferencePairs`;
``margin(users, a, b)`` is the log-odds that each user prefers option ``a`` to option ``b``
(float64 (n,)), so ``prob = σ(margin)`` and ``margin(u, a, b) = −margin(u, b, a)``; ``score(users,
options)`` is a scalar utility where the model has one (Bradley–Terry-like models; GPM has none).
``users`` may hold -1 (nobody in particular: the population model). Options and users are the
indices of the pairs' vocabularies, so every split of one :class:`PreferencePairs` shares them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from penchant.data.preferences import PreferencePairs

PREFERENCE_MODELS: dict[str, type[PreferenceModel]] = {}
#: other names scripts may use
ALIASES = {"personal-bt": "pbt"}


def register_preference(cls: type[PreferenceModel]) -> type[PreferenceModel]:
    PREFERENCE_MODELS[cls.name] = cls
    return cls


def create_preference(name: str, **params: Any) -> PreferenceModel:
    """A preference model by registry name (``bt``, ``pbt``, ``gpm``, ``pal``, ``vpl``, ``dpa``, ...)."""
    from penchant.models.preference import bt, dpa, gpm, latent, pal, personal, vpl  # noqa: F401  (registers them)

    name = ALIASES.get(name, name)
    if name not in PREFERENCE_MODELS:
        raise KeyError(f"no preference model {name!r}; known: {', '.join(sorted(PREFERENCE_MODELS))}")
    return PREFERENCE_MODELS[name](**params)


def typed_params(name: str, raw: dict[str, str]) -> dict[str, Any]:
    """Cast ``key=value`` strings to the types of the model's constructor defaults; unknown keys
    are an error naming the model's parameters."""
    import inspect

    from penchant.errors import ConfigError

    name = create_preference(name).name  # an unknown model name fails here, with the known names
    defaults = {k: p.default for k, p in inspect.signature(PREFERENCE_MODELS[name].__init__).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in defaults:
            raise ConfigError(f"{name} has no parameter {key!r}; it has {', '.join(defaults) or 'none'}")
        kind = type(defaults[key])
        try:
            out[key] = kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
        except ValueError:
            raise ConfigError(f"{name} parameter {key}={value!r} is not a {kind.__name__}") from None
    return out


class PreferenceModel:
    """Base class: subclasses set ``name`` and implement ``_fit``, ``_margin`` and the state."""

    name: ClassVar[str] = ""
    has_score: ClassVar[bool] = True

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(self, train: PreferencePairs, valid: PreferencePairs | None = None) -> Self:
        """Learn from ``train``; ``valid`` (same vocabularies) drives early stopping where the model
        trains by gradient. With ``strength_heads`` = H > 0 an ensemble of H copies judges every
        training pair first and the model is fitted with each pair weighted by the ensemble's
        agreement with its label (:mod:`penchant.models.preference.strength`); ``strength_`` keeps
        that judgement."""
        self.n_users_, self.n_options_ = train.n_users, train.n_options
        weight = None
        heads = getattr(self, "strength_heads", 0)
        if heads:
            from penchant.models.preference.strength import preference_strength

            params = {**self.params(), "strength_heads": 0}
            seed = params.get("seed", 0)

            def head(h: int) -> PreferenceModel:
                return create_preference(self.name, **{**params, **({"seed": seed + 1 + h} if "seed" in params else {})})

            self.strength_ = preference_strength(head, train, valid, heads, seed)
            weight = self.strength_.agreement
        self._fit(train, valid, weight)
        return self

    def margin(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """log P(a ≻ b) − log P(b ≻ a) for each (user, a, b); float64 (n,)."""
        users, a, b = (np.asarray(x, dtype=np.int64) for x in (users, a, b))
        if not len(users) == len(a) == len(b):
            raise ValueError("users, a and b must have the same length")
        return np.asarray(self._margin(users, a, b), dtype=np.float64)

    def prob(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """P(a ≻ b) for each (user, a, b); float64 (n,)."""
        return np.exp(-np.logaddexp(0.0, -self.margin(users, a, b)))  # σ(m) without overflow at large |m|

    def score(self, users: np.ndarray, options: np.ndarray) -> np.ndarray:
        """Scalar utility of each (user, option); float64 (n,). Differences are margins."""
        if not self.has_score:
            raise NotImplementedError(f"{self.name} has no scalar score (its preferences need not be transitive)")
        return np.asarray(self._score(np.asarray(users, np.int64), np.asarray(options, np.int64)), dtype=np.float64)

    def _score(self, users: np.ndarray, options: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _margin(self, users: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._score(users, a) - self._score(users, b)

    def _fit(self, train: PreferencePairs, valid: PreferencePairs | None, weight: np.ndarray | None) -> None:
        """Fit to ``train``; ``weight`` (float64 (n,) or None) multiplies each pair's loss."""
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Parameters and learned state in one ``.npz`` (no pickle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "params": self.params(), "n_users": self.n_users_, "n_options": self.n_options_}
        with open(path, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **self._state())
        return path

    @staticmethod
    def load(path: str | Path) -> PreferenceModel:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        model = create_preference(meta["model"], **meta["params"])
        model.n_users_, model.n_options_ = meta["n_users"], meta["n_options"]
        model._load_state(arrays)
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"
