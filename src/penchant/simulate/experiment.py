"""Long-term experiments: worlds over disjoint user pools, named policies, and results with intervals.

:func:`movielens_worlds` builds the documented world from a fitted model on real data; training
users, validation users and test users are drawn from disjoint thirds of the real users (60/20/20),
so a trained policy is judged on people it never met. :func:`run_policies` runs named policies on
the same test world (same seed: common random numbers) and :func:`summary` states each result with
95% intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from penchant.simulate.long_term import SIGNALS, LongTermWorld, WorldParams
from penchant.simulate.long_term_policies import (
    Episode,
    HistoryGreedy,
    Oracle,
    Rerank,
    floor_kept,
    run_episode,
    train_rerank,
)

POLICIES = ("greedy", "trained", "constrained", "actor-critic", "tscac", "hierarchical", "decision-transformer",
            "oracle")
SPLITS = ("train", "valid", "test")


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


def make_policy(name: str, worlds: Worlds, *, floor: tuple[str, float] | None = None, train_steps: int = 200,
                iterations: int = 5, population: int = 8, seed: int = 0,
                progress: Callable[[str], None] | None = None, trained: np.ndarray | None = None,
                ac_iterations: int = 30, kl_weight: float = 0.3, dt_steps: int = 600) -> tuple[Any, dict]:
    """A named policy for the test world and what its training recorded (empty for untrained ones).

    ``trained`` policies are fitted by :func:`~penchant.simulate.long_term_policies.train_rerank` on the
    training users (selected on validation users); ``constrained`` needs ``floor`` and starts from
    ``trained`` θ when given. ``actor-critic`` is :func:`~penchant.simulate.actor_critic.train_actor_critic`
    for the click return (``ac_iterations``); ``tscac`` the two-stage constrained actor-critic with the
    floor's signal as its auxiliary signal (KL weight ``kl_weight``), selected among validation
    iterations that keep the floor; ``hierarchical`` the novelty-intent policy of
    :func:`~penchant.simulate.hierarchical.train_hierarchical`; ``decision-transformer`` is trained
    offline (``dt_steps`` Adam steps) on behaviour runs over the training users, the checkpoint chosen
    by validation users' clicks, and asks for the runs' 90th-percentile return.
    """
    template = worlds.template
    if name == "greedy":
        return HistoryGreedy(worlds.scores), {}
    if name == "oracle":
        return Oracle(None), {}  # bound to the test world in run_policies: it reads that world's hidden state
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    if name in ("constrained", "tscac") and floor is None:
        raise ValueError(f"the {name} policy needs a floor (signal and value)")
    if name == "decision-transformer":
        from penchant.simulate.actor_critic import VALID_SEED
        from penchant.simulate.decision_transformer import (
            DTRerank,
            collect,
            train_decision_transformer,
            validation_clicks,
        )

        data = collect(worlds, worlds.scores, steps=train_steps, seed=seed)
        target = np.percentile(data.initial_returns(), 90, axis=0)
        select = validation_clicks(worlds("valid", VALID_SEED), worlds.scores, target, train_steps)
        model, history = train_decision_transformer(data, steps=dt_steps, seed=seed, select=select, progress=progress)
        return DTRerank(worlds.scores, template, model, target, steps=train_steps), {
            "target": target.tolist(), "steps": history, "sequences": int(len(data.lengths))}
    if name == "hierarchical":
        from penchant.simulate.hierarchical import train_hierarchical

        policy, history = train_hierarchical(worlds, worlds.scores, iterations=ac_iterations, steps=train_steps,
                                             seed=seed, progress=progress)
        return policy, {"iterations": history}
    if name in ("actor-critic", "tscac"):
        from penchant.simulate.actor_critic import ActorRerank, train_actor_critic, train_two_stage

        options = {"iterations": ac_iterations, "steps": train_steps, "seed": seed, "progress": progress}
        if name == "actor-critic":
            actor, history = train_actor_critic(worlds, worlds.scores, **options)
            records = {"iterations": history}
        else:
            assert floor is not None
            actor, records = train_two_stage(worlds, worlds.scores, auxiliary={floor[0]: kl_weight}, floor=floor,
                                             **options)
        return ActorRerank(worlds.scores, template, actor, steps=train_steps), {"actor": actor.weight.detach().tolist(), "records": records}
    theta, history = train_rerank(worlds, worlds.scores, floor=floor if name == "constrained" else None,
                                  steps=train_steps, iterations=iterations, population=population,
                                  elite=max(2, population // 4), init=trained if name == "constrained" else None,
                                  seed=seed, progress=progress)
    policy = Rerank(worlds.scores, theta, template.similarity, template.genres, template.creators, template.quality)
    return policy, {"theta": theta.tolist(), "rounds": history}


def run_policies(worlds: Worlds, policies: dict[str, Any], steps: int, seed: int) -> dict[str, Episode]:
    """Each policy on the test world from the same seed (an :class:`Oracle` reads that world)."""
    episodes = {}
    for name, policy in policies.items():
        world = worlds("test", seed)
        episodes[name] = run_episode(world, Oracle(world) if isinstance(policy, Oracle) else policy, steps, seed=seed)
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
