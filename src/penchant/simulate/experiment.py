"""Long-term experiments: worlds over disjoint user pools, registered policies, and results with intervals.

:func:`movielens_worlds` builds the documented world from a fitted model on real data; training
users, validation users and test users are drawn from disjoint thirds of the real users (60/20/20),
so a trained policy is judged on people it never met. :func:`fit_policies` makes and trains
policies of the registry's ``long-term`` family (:mod:`penchant.simulate.policies`),
:func:`run_policies` runs them on the same test world (same seed: common random numbers) and
:func:`summary` states each result with 95% intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from penchant.simulate.long_term import SIGNALS, LongTermWorld, WorldParams
from penchant.simulate.long_term_policies import Episode, floor_kept, run_episode

SPLITS = ("train", "valid", "test")
#: the registered policy every report's "fraction of the best" is against (an oracle: the myopic best)
BEST = "oracle"


@dataclass(frozen=True)
class Worlds:
    """Makes worlds over one catalogue for each split (see the module).

    Attributes:
        template: a world holding the catalogue (affinities, genres, quality, creators, vectors).
        scores: the fitted recommender's scores, real users × the world's items.
        pools: split -> the real users that split's simulated users are drawn from.
        sizes: split -> simulated users per world.
    """

    template: LongTermWorld
    scores: np.ndarray
    pools: dict[str, np.ndarray]
    sizes: dict[str, int]

    def __call__(self, split: str, seed: int) -> LongTermWorld:
        return self.template.population(self.sizes[split], self.pools[split], seed)


def movielens_worlds(dataset: Any, model: Any, *, params: WorldParams | None = None, n_items: int = 300,
                     n_creators: int = 40, sizes: dict[str, int] | None = None, seed: int = 0) -> Worlds:
    """:class:`Worlds` from a dataset and a model fitted on it (see :meth:`LongTermWorld.from_dataset`)."""
    template, items = LongTermWorld.from_dataset(dataset, model, n_items=n_items, n_creators=n_creators, seed=seed,
                                                 params=params)
    scores = np.asarray(model.score(np.arange(dataset.n_users)), dtype=np.float64)[:, items]
    perm = np.random.default_rng(seed).permutation(dataset.n_users)
    cut = [int(0.6 * len(perm)), int(0.8 * len(perm))]
    pools = dict(zip(SPLITS, np.split(perm, cut)))
    return Worlds(template, scores, pools, {"train": 100, "valid": 200, "test": 600} | (sizes or {}))


def world_params(pairs: dict[str, str]) -> WorldParams:
    """WorldParams with ``name=value`` overrides (numbers); an unknown name is a ValueError naming the known."""
    known = {f.name: f.type for f in fields(WorldParams)}
    values: dict[str, Any] = {}
    for name, value in pairs.items():
        if name not in known:
            raise ValueError(f"unknown world parameter {name!r}; known: {', '.join(known)}")
        try:
            values[name] = int(value) if known[name] in (int, "int") else float(value)
        except ValueError:
            raise ValueError(f"world parameter {name}={value!r} is not a number") from None
    return replace(WorldParams(), **values)


def fit_policies(worlds: Worlds, specs: dict[str, tuple[str, dict[str, Any]]], *,
                 progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Registered long-term policies by label, from ``label -> (name, params)``: each created for
    ``worlds`` (:func:`~penchant.models.registry.create`, family ``long-term``) and fitted, the
    learned ones on the training users' worlds, selected on validation users.

    A policy whose class ``starts_from`` another (``constrained`` from ``trained``) starts from that
    one's θ when it is among them (fitted first) and no ``init`` is given. ``progress(label,
    message)`` hears of each policy and its training rounds. An unknown name or parameter is a ConfigError.
    """
    from penchant.models.registry import entry
    from penchant.simulate.tasks import LONG_TERM as task

    classes = {label: entry(name, "long-term").cls for label, (name, _) in specs.items()}
    fitted: dict[str, Any] = {}
    for label in sorted(specs, key=lambda label: classes[label].starts_from is not None):  # starts first
        name, params = specs[label]
        start = next((fitted[other] for other in fitted if specs[other][0] == classes[label].starts_from), None)
        if start is not None and "init" not in params:
            params = {**params, "init": tuple(start.policy.theta.tolist())}
        if progress is not None:
            progress(label, "building")
        fitted[label] = task.fit(name, params, worlds,
                                 progress=None if progress is None else lambda message, label=label: progress(label, message))
    return {label: fitted[label] for label in specs}


def run_policies(worlds: Worlds, policies: dict[str, Any], steps: int, seed: int) -> dict[str, Episode]:
    """Each policy on the test world from the same seed; an oracle (``oracle`` true: it reads the
    world's hidden state) is bound to that world first."""
    episodes = {}
    for name, policy in policies.items():
        world = worlds("test", seed)
        acting = policy.bind(world) if getattr(policy, "oracle", False) else policy
        episodes[name] = run_episode(world, acting, steps, seed=seed)
    return episodes


def interval(x: np.ndarray) -> dict:
    """Mean with a normal 95% interval over users (NaNs left out)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return {"mean": float(x.mean()) if len(x) else None, "ci": [None, None]}
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    return {"mean": float(x.mean()), "ci": [float(x.mean() - half), float(x.mean() + half)]}


def summary(episode: Episode, best: Episode | None = None, floor: tuple[str, float] | None = None) -> dict:
    """The `penchant simulate run` JSON for one episode: return per signal, retention, share of steps
    in a session, novelty, creator survival (with a Wilson interval over creators), and the return as
    a fraction of ``best``'s (the oracle on the same world), all over test users with 95% intervals."""
    out: dict[str, Any] = {"users": int(len(episode.retained)),
                           "return": {name: interval(episode.returns[name]) for name in SIGNALS},
                           "retention": interval(episode.retained), "active_share": interval(episode.active_share),
                           "novelty": interval(episode.novelty),
                           "creator_survival": _wilson(episode.creator_survival, episode)}
    if best is not None:
        ratio = episode.returns["click"].mean() / max(best.returns["click"].mean(), 1e-12)
        out["fraction_of_best"] = {"click": float(ratio), "best": "oracle (myopic, knows the hidden state)"}
    if floor is not None:
        out["floor"] = {"signal": floor[0], "value": floor[1], "share_of_users_kept": floor_kept(episode, *floor)}
    return out


def _wilson(share: float, episode: Episode) -> dict:
    """A Wilson 95% interval for the share of ``episode.creators`` creators still active."""
    total, z, p = episode.creators, 1.96, share
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return {"mean": share, "ci": [float(centre - half), float(centre + half)]}
