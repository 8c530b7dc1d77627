"""The protocol every pairwise preference model follows, and the registry of them by name.

``fit(train, valid=None)`` learns from :class:`~penchant.data.preferences.PreferencePairs`;
``margin(users, a, b)`` is the log-odds that each user prefers option ``a`` to option ``b``
(float64 (n,)), so ``prob = σ(margin)`` and ``margin(u, a, b) = −margin(u, b, a)``; ``score(users,
options)`` is a scalar utility where the model has one (Bradley–Terry-like models; GPM has none).
``users`` may hold -1 (nobody in particular: the population model). Options and users are the
indices of the pairs' vocabularies, so every split of one :class:`PreferencePairs` shares them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from penchant.data.pairs import PreferencePairs
from penchant.errors import ConfigError
from penchant.models.artefact import Artefact
from penchant.models.preference.features import FEATURES, TextFeatures


def create_preference(name: str, **params: Any) -> PreferenceModel:
    """A preference model by registry name (``bt``, ``pbt``, ``gpm``, ``pal``, ``vpl``, ``dpa``, ...),
    through the one registry (:func:`penchant.models.registry.create`)."""
    from penchant.models.registry import create

    return create(name, family="preference", **params)


class PreferenceModel:
    """Base class: subclasses set ``name`` and implement ``_fit``, ``_margin`` and the state."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = "preference"
    aliases: ClassVar[tuple[str, ...]] = ()
    has_score: ClassVar[bool] = True
    #: external ids (str arrays), position = index; set by fit, kept by save/load
    user_ids_: np.ndarray
    option_ids_: np.ndarray
    #: the fitted text pipeline of models that read option text (kept in the artefact), else None
    features_: TextFeatures | None = None

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(self, train: PreferencePairs, valid: PreferencePairs | None = None) -> Self:
        """Learn from ``train``; ``valid`` (same vocabularies) drives early stopping where the model
        trains by gradient. With ``strength_heads`` = H > 0 an ensemble of H copies judges every
        training pair first and the model is fitted with each pair weighted by the ensemble's
        agreement with its label (:mod:`penchant.models.preference.strength`); ``strength_`` keeps
        that judgement."""
        self.n_users_, self.n_options_ = train.n_users, train.n_options
        self.user_ids_, self.option_ids_ = train.user_ids.astype(str), train.option_ids.astype(str)
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

    def prob_text(self, first: Any, second: Any, contexts: Any = None, users: Any = None) -> np.ndarray:
        """P(first[j] ≻ second[j]) for options given as text, seen in training or not: float64 (n,).

        ``contexts`` (n,) is the prompt both replies answer (None: none); ``users`` (n,) user
        indices, −1 (or None for all) for the population. The texts go through the fitted feature
        pipeline and the model's own option map, so every text-feature model scores new replies.
        """
        if self.features_ is None:
            raise ConfigError(f"this {self.name} model was fitted on option ids (features=id); "
                              "fit it with features=text, layers, bow or length to score new text")
        first, second = (np.asarray(t, dtype=object).astype(str) for t in (first, second))
        if len(first) != len(second):
            raise ValueError("first and second must have the same length")
        m = len(first)
        ctx = None if contexts is None else np.concatenate([np.asarray(contexts, dtype=object)] * 2).astype(str)
        x = self.features_.transform(np.concatenate([first, second]), ctx)
        who = np.full(m, -1, np.int64) if users is None else np.asarray(users, np.int64)
        with self._options_added(x) as start:
            return self.prob(who, start + np.arange(m), start + m + np.arange(m))

    def _fit_features(self, train: PreferencePairs) -> np.ndarray | None:
        """Fit the text pipeline of ``features`` on ``train``'s options and keep it (``features_``,
        saved with the model); float32 (n_options, f), or None for ``features="id"``."""
        kind = getattr(self, "features", "id")
        # checked here, before any text is read, for every model that takes the parameter: a value
        # no pipeline knows (features=words) or text features for pairs that have no text
        if kind not in FEATURES:
            raise ConfigError(f"model {self.name!r}: features={kind!r} is not a feature pipeline; "
                              f"choose one of {', '.join(FEATURES)}")
        if kind != "id" and train.option_text is None:
            raise ConfigError(f"model {self.name!r}: features={kind} reads the options' text, but {train.name} "
                              "compares option ids and has none; use features=id, or comparisons in the text "
                              "layout (prompt, chosen, rejected)")
        self.features_ = None if kind == "id" else TextFeatures(kind, self.text_model)
        return None if self.features_ is None else self.features_.fit_transform(train)

    @contextmanager
    def _options_added(self, x: np.ndarray) -> Iterator[int]:
        """Within the block the model also knows options with features ``x`` (m, f), as indices
        from the yielded start on; afterwards it is as it was."""
        raise ConfigError(f"{self.name} cannot take options it was not fitted on")
        yield 0  # pragma: no cover

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
        """One self-describing artefact (:mod:`penchant.models.artefact`): parameters, the user and
        option vocabularies and the learned state; no pickle."""
        arrays, extra = dict(self._state()), {}
        if self.features_ is not None:
            extra["features"], pipeline = self.features_.state()
            arrays.update({f"features.{k}": v for k, v in pipeline.items()})
        return Artefact(self.family, self.name, self.params(), arrays,
                        {"users": self.user_ids_, "options": self.option_ids_}, extra).write(path)

    @staticmethod
    def load(path: str | Path) -> PreferenceModel:
        from penchant.models.artefact import ArtefactError, load

        model = load(path)
        if not isinstance(model, PreferenceModel):
            raise ArtefactError(f"holds a {model.family} model ({model.name}), not a preference model", file=path)
        return model

    @classmethod
    def from_artefact(cls, art: Artefact) -> PreferenceModel:
        model = cls(**art.params)
        model.user_ids_, model.option_ids_ = art.vocab["users"], art.vocab["options"]
        model.n_users_, model.n_options_ = len(model.user_ids_), len(model.option_ids_)
        if "features" in art.extra:
            pipeline = {k[len("features."):]: v for k, v in art.arrays.items() if k.startswith("features.")}
            model.features_ = TextFeatures.from_state(art.extra["features"], pipeline)
        model._load_state({k: v for k, v in art.arrays.items() if not k.startswith("features.")})
        return model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"
