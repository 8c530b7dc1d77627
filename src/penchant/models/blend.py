"""A validation-chosen blend: a weighted sum of several registered ranking models' scores.

Each member is fitted on the training log with the same validator (so it makes its own selection
on validation data first). A user's scores from member m are standardised over the items the user
can be recommended (those not in their training history): ``z_m = (s_m − mean) / std`` (a zero
spread counts as 1; seen items get 0, as they are never recommended), and the blend scores

    s(u) = Σ_m w_m · z_m(u),   w_m ≥ 0.

The weights maximise the validator's score (NDCG@10 on the validation part, as every other
selection here) by coordinate search (:func:`coordinate_search`): start from the best single
member (weight 1, the others 0); then, for ``rounds`` passes, each member's weight in turn is set
to the best value of ``WEIGHT_GRID`` with the others held (a change is kept only if it scores
strictly higher). Since the scale of the sum does not change a ranking, the weights are the
ratios; the start guarantees the blend scores at least the best member on validation. Without
validation data every member weighs 1.

During fit, the members' standardised scores for every user are computed once and reused by each
trial when they fit in ``CACHE_BYTES``; otherwise every trial scores the members again (the same
numbers, more time). One artefact holds the weights and every member's whole artefact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.errors import ConfigError
from penchant.models.base import Recommender, Validator
from penchant.models.registry import create, entry, register
from penchant.models.two_stage import _embedded, _unembedded

#: the values each weight is tried at in one coordinate step
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
#: members' standardised scores for all users are kept during fit when they fit this budget
CACHE_BYTES = 1 << 30


def coordinate_search(objective: Callable[[np.ndarray], float], start: np.ndarray, grid: tuple[float, ...],
                      rounds: int) -> tuple[np.ndarray, float, list[tuple[np.ndarray, float]]]:
    """Maximise ``objective(w)`` over non-negative weights, one coordinate at a time on ``grid``.

    Args:
        objective: the score of a weight vector, float64 (n,); higher is better.
        start: the first weight vector (n,).
        grid: the values each coordinate is tried at.
        rounds: passes over every coordinate.

    Returns:
        ``(best weights, best score, every (weights, score) tried)``; an all-zero vector is never tried.
    """
    best_w = np.asarray(start, dtype=np.float64).copy()
    best = objective(best_w)
    tried = [(best_w.copy(), best)]
    for _ in range(rounds):
        improved = False
        for m in range(len(best_w)):
            for value in grid:
                if value == best_w[m]:
                    continue
                w = best_w.copy()
                w[m] = value
                if not w.any():
                    continue
                score = objective(w)
                tried.append((w, score))
                if score > best:
                    best, best_w, improved = score, w, True
        if not improved:
            break
    return best_w, best, tried


def standardised(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Scores (n, n_items) standardised per row over the items not in ``seen`` (CSR (n, n_items));
    seen items and non-finite scores get 0. float32 (n, n_items), a new array."""
    mask = seen.toarray().astype(bool) | ~np.isfinite(scores)
    free = (~mask).sum(axis=1, keepdims=True)
    s = np.where(mask, 0.0, scores).astype(np.float64)
    mean = s.sum(axis=1, keepdims=True) / np.maximum(free, 1)
    centred = np.where(mask, 0.0, s - mean)
    std = np.sqrt((centred ** 2).sum(axis=1, keepdims=True) / np.maximum(free, 1))
    return (centred / np.where(std > 0, std, 1.0)).astype(np.float32)


def _member_params(text: str, members: list[str]) -> dict[str, dict[str, str]]:
    """``name.key=value;name.key=value`` as per-member parameter dicts (strings; the registry converts)."""
    out: dict[str, dict[str, str]] = {m: {} for m in members}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, value = part.partition("=")
        name, dot, param = key.strip().partition(".")
        if not eq or not dot or not param:
            raise ConfigError(f"model 'blend': member_params {part!r} is not member.key=value (pairs separated by ';')")
        if name not in out:
            raise ConfigError(f"model 'blend': member_params names {name!r}, which is not a member ({', '.join(members)})")
        out[name][param] = value.strip()
    return out


@register
class Blend(Recommender):
    """A learned linear blend of registered ranking models' per-user standardised scores, its
    weights chosen on validation data (coordinate search on NDCG@10); one artefact.

    Args:
        members: the member models' registry names, comma-separated (at least two, each once).
        member_params: their parameters as ``member.key=value`` pairs separated by ``;``
            (e.g. ``als.factors=128;rp3beta.k=100``); empty: every member's defaults (members
            that choose their own settings on validation data do so).
        rounds: passes of the coordinate search over every member's weight.
        seed: given to every member that has a seed parameter (unless member_params sets it).
    """

    name = "blend"
    summary = "validation-chosen linear blend of several ranking models' standardised scores (one artefact)"

    def __init__(self, *, members: str = "ease,rp3beta,als", member_params: str = "", rounds: int = 2,
                 seed: int = DEFAULT_SEED) -> None:
        names = [m.strip() for m in members.split(",") if m.strip()]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"model 'blend': members must name at least two different models, not {members!r}")
        if self.name in names:
            raise ConfigError("model 'blend': a blend cannot be its own member")
        if rounds < 0:
            raise ConfigError("model 'blend': rounds must be non-negative")
        self.members, self.member_params, self.rounds, self.seed = members, member_params, rounds, seed
        self._names = names
        self._params = _member_params(member_params, names)

    # ----- fit -------------------------------------------------------------------------------------
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        for name in self._names:
            entry(name, "ranking")  # a one-line error before any member is fitted
        self.members_: list[Recommender] = []
        for name in self._names:
            args = dict(self._params[name])
            if any(p.name == "seed" for p in entry(name).params()) and "seed" not in args:
                args["seed"] = str(self.seed)
            self.members_.append(create(name, family="ranking", **args).fit(train, valid))
        n = len(self.members_)
        self.weights_ = np.ones(n)
        if valid is None:
            return
        self._cache = None
        if train.n_users * train.n_items * n * 4 <= CACHE_BYTES:
            self._cache = np.stack([self._member_block(m, np.arange(train.n_users)) for m in range(n)])
        singles = []
        for m in range(n):
            self.weights_ = np.eye(n)[m]
            singles.append(valid(self))

        def objective(w: np.ndarray) -> float:
            self.weights_ = w
            return valid(self)

        start = np.eye(n)[int(np.argmax(singles))]
        self.weights_, _, tried = coordinate_search(objective, start, WEIGHT_GRID, self.rounds)
        self._cache = None
        self.member_valid_ = dict(zip(self._names, singles, strict=True))
        self.selection_ = [{**dict(zip(self._names, w.tolist(), strict=True)), "valid": s} for w, s in tried]

    def _member_block(self, m: int, users: np.ndarray) -> np.ndarray:
        return standardised(self.members_[m].score(users), self.train_[users])  # type: ignore[index]

    # ----- scores ----------------------------------------------------------------------------------
    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items_), dtype=np.float32)
        cache = getattr(self, "_cache", None)
        for m, w in enumerate(self.weights_):
            if w:
                out += np.float32(w) * (cache[m][users] if cache is not None else self._member_block(m, users))
        return out

    def selected(self) -> dict[str, float]:
        total = float(np.sum(self.weights_)) or 1.0
        return {f"w_{name}": round(float(w) / total, 4) for name, w in zip(self._names, self.weights_, strict=True)}

    def fit_note(self) -> str:
        return "weights " + ", ".join(f"{k[2:]} {v:.2f}" for k, v in self.selected().items())

    # ----- persistence: every member's artefact inside this one ------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        arrays = {"weights": np.asarray(self.weights_, dtype=np.float64)}
        for m, model in enumerate(self.members_):
            arrays.update(_embedded(f"member{m}", model))
        return arrays

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.asarray(arrays["weights"], dtype=np.float64)
        self.members_ = [_unembedded(f"member{m}", arrays) for m in range(len(self._names))]
