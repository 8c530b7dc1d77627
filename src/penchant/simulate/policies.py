"""The simulators' policies in the one registry: families ``slate`` and ``long-term``.

Each registered policy is built for the world it will act in, passed first to
:func:`~penchant.models.registry.create` (``create("linucb", world)``, ``create("trained", worlds,
population=6)``), and its settings are keyword-only constructor arguments, listed by
``penchant models --family slate|long-term``.

* ``slate``: policies for a :class:`~penchant.simulate.slate_world.SlateWorld`; each answers
  ``act(users, k, rng)`` and, when it learns online, ``update(users, slates, clicks)``
  (:func:`~penchant.simulate.loop.run_policy` serves and updates).
* ``long-term``: policies for the :class:`~penchant.simulate.experiment.Worlds` of the long-term
  world; :meth:`LongTermPolicy.fit` trains a learned one on the training users' worlds (selected on
  validation users), then it ``observe``\\ s and ``act``\\ s (:func:`~penchant.simulate.experiment.run_policies`).

Simulators keep their secrets: a policy acts on what a platform could log. The ones that read the
world's hidden state (the true utilities) are references, not policies a platform could run; they
say so with ``oracle = True`` (``best``, ``oracle``), which ``penchant models`` shows. A learned
long-term policy is trained in the simulator (its returns are its reward), but acts on observations only.

The implementations live in :mod:`penchant.simulate.bandits`, :mod:`~penchant.simulate.slate_gru`,
:mod:`~penchant.simulate.long_term_policies`, :mod:`~penchant.simulate.actor_critic`,
:mod:`~penchant.simulate.hierarchical` and :mod:`~penchant.simulate.decision_transformer`; this
module imports them when a policy is built (torch among them), so listing the registry stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import numpy as np

from penchant import DEFAULT_SEED
from penchant.models.registry import entry, register
from penchant.simulate.experiment import Worlds
from penchant.simulate.long_term import LongTermWorld
from penchant.simulate.slate_world import SlateWorld


def policy_params(name: str, shared: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The parameters for policy ``name``: ``given`` over those of ``shared`` (a run's common settings,
    e.g. its seed and horizon; None values left out) that the policy takes."""
    takes = {p.name for p in entry(name).params()}
    return {k: v for k, v in shared.items() if k in takes and v is not None} | given


def missing_params(name: str, params: dict[str, Any]) -> list[str]:
    """The parameters policy ``name`` requires (its class's ``requires``) that ``params`` lacks."""
    return [p for p in getattr(entry(name).cls, "requires", ()) if params.get(p) is None]


# --- slate policies -------------------------------------------------------------------------------

class SlatePolicyBase:
    """Base of the registered slate policies: ``act`` answers from the policy built for the world.

    ``policy`` is the implementation (e.g. a :class:`~penchant.simulate.bandits.LinUCB`). Subclasses
    that learn online add ``update``; those with exact slot distributions add ``slot_probabilities``.
    """

    name = ""
    family = "slate"
    #: reads the world's hidden state (the true utilities): a reference, not a policy a platform could run
    oracle = False

    def __init__(self, world: SlateWorld) -> None:
        self.policy = self._build(world)

    def _build(self, world: SlateWorld) -> Any:
        raise NotImplementedError

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(slates int64 (n, k), propensity float64 (n, k))`` for ``users`` (n,): see
        :class:`~penchant.models.protocols.SlatePolicy`."""
        return self.policy.act(users, k, rng)


class _Learning:
    policy: Any

    def update(self, users: np.ndarray, slates: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from what the shown ``slates`` (n, k) earned (``rewards`` (n, k) clicks)."""
        self.policy.update(users, slates, rewards)


class _Exact:
    policy: Any

    def slot_probabilities(self, users: np.ndarray, k: int) -> np.ndarray:
        """float64 (n, k, n_items): the chance of each item at each slot."""
        return self.policy.slot_probabilities(users, k)


def _item_vectors(world: SlateWorld, name: str) -> np.ndarray:
    if world.item_features is None:
        raise ValueError(f"{name} needs the world's item vectors (item_features)")
    return world.item_features


@register
class UniformSlate(_Exact, SlatePolicyBase):
    """Each slot a uniformly random item of the catalogue (ε-greedy with ε = 1): no learning, the floor to beat."""

    name = "uniform"

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.bandits import EpsilonGreedy

        return EpsilonGreedy(np.zeros((world.n_users, world.n_items)), 1.0)


@register
class BetaThompsonSlate(_Learning, SlatePolicyBase):
    """Beta–Bernoulli Thompson sampling per (user, item): the top-k of a draw from each pair's click posterior.

    Args:
        propensity_draws: posterior draws for each shown item's propensity (0: none, NaN).
    """

    name = "beta-thompson"

    def __init__(self, world: SlateWorld, *, propensity_draws: int = 0) -> None:
        self.propensity_draws = propensity_draws
        super().__init__(world)

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.bandits import BetaThompson

        return BetaThompson(world.n_users, world.n_items, propensity_draws=self.propensity_draws)


@register
class LinearThompsonSlate(_Learning, SlatePolicyBase):
    """Linear Thompson sampling per user over the world's item vectors (a ridge posterior of the click).

    Args:
        ridge: the posterior's prior precision λ (A = λI + Σ x xᵀ).
        noise: the scale v of the posterior draws, θ ~ N(θ̂, v² A⁻¹).
        propensity_draws: posterior draws for each shown item's propensity (0: none, NaN).
    """

    name = "linear-thompson"

    def __init__(self, world: SlateWorld, *, ridge: float = 1.0, noise: float = 0.5, propensity_draws: int = 0) -> None:
        self.ridge, self.noise, self.propensity_draws = ridge, noise, propensity_draws
        super().__init__(world)

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.bandits import LinearThompson

        return LinearThompson(_item_vectors(world, self.name), world.n_users, ridge=self.ridge, noise=self.noise,
                              propensity_draws=self.propensity_draws)


@register
class LinUCBSlate(_Learning, SlatePolicyBase):
    """LinUCB per user over the world's item vectors: the top-k of x·θ̂ + α √(xᵀ A⁻¹ x); deterministic.

    Args:
        ridge: the posterior's prior precision λ (A = λI + Σ x xᵀ).
        alpha: the width α of the upper confidence bound.
    """

    name = "linucb"

    def __init__(self, world: SlateWorld, *, ridge: float = 1.0, alpha: float = 1.0) -> None:
        self.ridge, self.alpha = ridge, alpha
        super().__init__(world)

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.bandits import LinUCB

        return LinUCB(_item_vectors(world, self.name), world.n_users, ridge=self.ridge, alpha=self.alpha)


class _SlateGRUPolicy(_Learning, SlatePolicyBase):
    """The slate GRU of :mod:`penchant.simulate.slate_gru`, learning from clicks alone.

    Args:
        dim: size of the item vectors and of the user state.
        refit_every: lists served before the first refit; later refits come when the log has grown
            by ``growth`` (a share) since the last one, and at least ``refit_every`` lists.
        growth: the log's growth (a share) that brings the next refit.
        epochs: Adam steps per refit, over every logged step.
        lr: Adam's learning rate.
        prior_scale: the item parameters' prior standard deviation.
        propensity_draws: posterior draws for each shown item's propensity (0: none, NaN; Thompson only).
        seed: seeds the network's initial values and the training draws.
    """

    thompson = True

    def __init__(self, world: SlateWorld, *, dim: int = 8, refit_every: int = 500, growth: float = 0.25,
                 epochs: int = 100, lr: float = 0.02, prior_scale: float = 1.0, propensity_draws: int = 0,
                 seed: int = DEFAULT_SEED) -> None:
        self.options = {"dim": dim, "refit_every": refit_every, "growth": growth, "epochs": epochs, "lr": lr,
                        "prior_scale": prior_scale, "propensity_draws": propensity_draws, "seed": seed}
        super().__init__(world)

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.slate_gru import SlateGRU

        return SlateGRU(world.n_users, world.n_items, world.slate_size, thompson=self.thompson, **self.options)


@register
class GRUThompsonSlate(_SlateGRUPolicy):
    # the parameters' descriptions are the base class's docstring (inspect.getdoc inherits it)
    name = "gru-thompson"
    summary = ("A recurrent user state and item vectors learned from clicks alone, explored by Thompson "
               "sampling (Eide et al. 2021).")


@register
class GRUGreedySlate(_SlateGRUPolicy):
    name = "gru-greedy"
    summary = "The same slate GRU used greedily (its posterior mean): the paper's baseline."
    thompson = False


@register
class BestSlate(_Exact, SlatePolicyBase):
    """Oracle: the top-k of the world's true utilities, zero regret (the reference, not a policy a platform could run)."""

    name = "best"
    oracle = True

    def _build(self, world: SlateWorld) -> Any:
        from penchant.simulate.bandits import Greedy

        return Greedy(world.utility)


# --- long-term policies ---------------------------------------------------------------------------

class LongTermPolicy:
    """Base of the registered long-term policies: built for :class:`~penchant.simulate.experiment.Worlds`,
    :meth:`fit`, then ``observe`` and ``act`` in a world (see the module).

    After :meth:`fit`, ``policy`` is the acting policy (e.g. a
    :class:`~penchant.simulate.long_term_policies.Rerank`) and ``training`` what its training
    recorded (empty for untrained ones).
    """

    name = ""
    family = "long-term"
    #: reads the world's hidden state: a reference, bound to the world it acts in by :meth:`bind`
    oracle = False
    #: trained by :meth:`fit` (on the training users' worlds, selected on validation users)
    learned = False
    #: parameters without a sensible default: they must be given
    requires: tuple[str, ...] = ()
    #: the registered policy whose fitted θ this one starts from when both are fitted together
    #: (:func:`~penchant.simulate.experiment.fit_policies`), through its ``init`` parameter
    starts_from: str | None = None

    def __init__(self, worlds: Worlds) -> None:
        self.worlds = worlds
        self.policy: Any = None
        self.training: dict = {}
        missing = [p for p in self.requires if getattr(self, p, None) is None]
        if missing:
            raise ValueError(f"the {self.name} policy needs {', '.join(missing)}")

    def fit(self, progress: Callable[[str], None] | None = None) -> Self:
        """Train (learned policies; ``progress`` is told each round) and make the acting policy."""
        self.policy, self.training = self._fit(progress)
        return self

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        raise NotImplementedError

    def _acting(self) -> Any:
        if self.policy is None:
            raise RuntimeError(f"fit() the {self.name} policy first")
        return self.policy

    def observe(self, obs: dict) -> None:
        """Take in the world's observation (what a platform logs) before acting."""
        self._acting().observe(obs)

    def act(self, users: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(slates int64 (n, k), propensity float64 (n, k))`` for ``users`` (n,) in a session."""
        return self._acting().act(users, k, rng)


def parse_floor(value: Any) -> tuple[str, float] | None:
    """A floor ``(signal, value)`` from a pair or ``"SIGNAL:VALUE"`` text (e.g. ``novelty:0.3``); None stays None.
    A signal that is not one of :data:`~penchant.simulate.actor_critic.REWARDS` is a ValueError."""
    if value is None:
        return None
    from penchant.simulate.actor_critic import REWARDS

    if isinstance(value, str):
        signal, _, number = value.partition(":")
        try:
            parsed = (signal.strip(), float(number))
        except ValueError:
            raise ValueError(f"{value!r} is not SIGNAL:VALUE (e.g. novelty:0.3)") from None
    else:
        signal, number = value
        parsed = (str(signal), float(number))
    if parsed[0] not in REWARDS:
        raise ValueError(f"{value if isinstance(value, str) else ':'.join(map(str, value))!r}: "
                         f"the signal must be one of {', '.join(REWARDS)}")
    return parsed


def _theta(value: Any) -> np.ndarray | None:
    """Ranking weights from an array, a sequence or comma-separated text; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [float(v) for v in value.split(",") if v.strip()]
    return np.asarray(value, dtype=np.float64)


@register
class GreedyRecommender(LongTermPolicy):
    """The greedy use of the fitted recommender: its top-k of the available items the user has not consumed."""

    name = "greedy-recommender"

    def __init__(self, worlds: Worlds) -> None:
        super().__init__(worlds)
        self.policy, _ = self._fit(None)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.long_term_policies import HistoryGreedy

        return HistoryGreedy(self.worlds.scores), {}


@register
class OraclePolicy(LongTermPolicy):
    """Oracle: the myopic best, the top-k of the true current utility (reads the world's hidden state; the reference for "fraction of the best")."""

    name = "oracle"
    oracle = True

    def __init__(self, worlds: Worlds) -> None:
        super().__init__(worlds)
        self.policy, _ = self._fit(None)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.long_term_policies import Oracle

        return Oracle(None), {}

    def bind(self, world: LongTermWorld) -> Any:
        """The oracle acting in ``world`` (reading its hidden state)."""
        return self.policy.bind(world)


class _RerankSearch(LongTermPolicy):
    learned = True

    def __init__(self, worlds: Worlds, *, train_steps: int = 200, iterations: int = 5, population: int = 8,
                 floor: Any = None, init: Any = None, seed: int = DEFAULT_SEED) -> None:
        self.train_steps, self.iterations, self.population, self.seed = train_steps, iterations, population, seed
        self.floor, self.init = parse_floor(floor), _theta(init)
        super().__init__(worlds)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.long_term_policies import Rerank, train_rerank

        worlds, template = self.worlds, self.worlds.template
        theta, history = train_rerank(worlds, worlds.scores, floor=self.floor, steps=self.train_steps,
                                      iterations=self.iterations, population=self.population,
                                      elite=max(2, self.population // 4), init=self.init, seed=self.seed,
                                      progress=progress)
        policy = Rerank(worlds.scores, theta, template.catalogue)
        return policy, {"theta": theta.tolist(), "rounds": history}


@register
class TrainedRerank(_RerankSearch):
    """The recommender's score plus θ · observable features, θ trained for the long-run clicks (cross-entropy method).

    Args:
        train_steps: the horizon trained for (steps of each training run).
        iterations: cross-entropy rounds (early-stopped on validation users).
        population: candidate θ per round (the best quarter, at least 2, are kept).
        seed: seeds the search and its worlds' draws.
    """

    name = "trained"

    def __init__(self, worlds: Worlds, *, train_steps: int = 200, iterations: int = 5, population: int = 8,
                 seed: int = DEFAULT_SEED) -> None:
        super().__init__(worlds, train_steps=train_steps, iterations=iterations, population=population, seed=seed)


@register
class ConstrainedRerank(_RerankSearch):
    """The trained re-ranker under a floor: θ keeps each user's mean of a signal per click at or above a value.

    Args:
        floor: SIGNAL:VALUE (click, watch, like, share per click, or novelty) kept for at least 97%
            of validation users; required.
        init: the search's starting θ (six weights, e.g. the trained policy's; fitted together
            with it, it starts from its θ); default zeros, the greedy recommender.
        train_steps: the horizon trained for (steps of each training run).
        iterations: cross-entropy rounds (early-stopped on validation users).
        population: candidate θ per round (the best quarter, at least 2, are kept).
        seed: seeds the search and its worlds' draws.
    """

    name = "constrained"
    requires = ("floor",)
    starts_from = "trained"

    def __init__(self, worlds: Worlds, *, floor: str | tuple[str, float] | None = None,
                 init: str | tuple[float, ...] | None = None, train_steps: int = 200,
                 iterations: int = 5, population: int = 8, seed: int = DEFAULT_SEED) -> None:
        super().__init__(worlds, train_steps=train_steps, iterations=iterations, population=population, floor=floor,
                         init=init, seed=seed)


class _ActorPolicy(LongTermPolicy):
    learned = True

    def _rerank(self, actor: Any) -> Any:
        from penchant.simulate.actor_critic import ActorRerank

        return ActorRerank(self.worlds.scores, self.worlds.template.catalogue, actor, steps=self.train_steps)


@register
class ActorCritic(_ActorPolicy):
    """A Gaussian actor choosing the ranking weights θ per user and step from observable state, trained for the long-run clicks.

    Args:
        ac_iterations: actor-critic iterations (early-stopped on validation users).
        train_steps: the horizon trained for (steps of each training run).
        seed: seeds the actor, the critic and the worlds' draws.
    """

    name = "actor-critic"

    def __init__(self, worlds: Worlds, *, ac_iterations: int = 30, train_steps: int = 200,
                 seed: int = DEFAULT_SEED) -> None:
        self.ac_iterations, self.train_steps, self.seed = ac_iterations, train_steps, seed
        super().__init__(worlds)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.actor_critic import train_actor_critic

        actor, history = train_actor_critic(self.worlds, self.worlds.scores, iterations=self.ac_iterations,
                                            steps=self.train_steps, seed=self.seed, progress=progress)
        return self._rerank(actor), {"actor": actor.weight.detach().tolist(), "records": {"iterations": history}}


@register
class TwoStageActorCritic(_ActorPolicy):
    """The two-stage constrained actor-critic (Cai et al. 2023): clicks, kept near an actor trained for the floor's signal.

    Args:
        floor: SIGNAL:VALUE (click, watch, like, share per click, or novelty): stage one trains an
            actor for that signal, and only iterations whose validation users keep the floor are
            selected; required.
        kl_weight: stage two's KL weight λ towards the floor signal's stage-one actor.
        ac_iterations: actor-critic iterations of each stage (early-stopped on validation users).
        train_steps: the horizon trained for (steps of each training run).
        seed: seeds the actors, the critics and the worlds' draws.
    """

    name = "tscac"
    requires = ("floor",)

    def __init__(self, worlds: Worlds, *, floor: str | tuple[str, float] | None = None, kl_weight: float = 0.3, ac_iterations: int = 30,
                 train_steps: int = 200, seed: int = DEFAULT_SEED) -> None:
        self.floor, self.kl_weight = parse_floor(floor), kl_weight
        self.ac_iterations, self.train_steps, self.seed = ac_iterations, train_steps, seed
        super().__init__(worlds)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.actor_critic import train_two_stage

        assert self.floor is not None
        actor, records = train_two_stage(self.worlds, self.worlds.scores, auxiliary={self.floor[0]: self.kl_weight},
                                         floor=self.floor, iterations=self.ac_iterations, steps=self.train_steps,
                                         seed=self.seed, progress=progress)
        return self._rerank(actor), {"actor": actor.weight.detach().tolist(), "records": records}


@register
class Hierarchical(_ActorPolicy):
    """A high-level policy sets a familiar or novel intent per user, a low-level actor ranks for it (Li et al. 2023).

    Args:
        ac_iterations: iterations of both levels' actor-critic training (early-stopped on validation users).
        train_steps: the horizon trained for (steps of each training run).
        seed: seeds both levels and the worlds' draws.
    """

    name = "hierarchical"

    def __init__(self, worlds: Worlds, *, ac_iterations: int = 30, train_steps: int = 200,
                 seed: int = DEFAULT_SEED) -> None:
        self.ac_iterations, self.train_steps, self.seed = ac_iterations, train_steps, seed
        super().__init__(worlds)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.hierarchical import train_hierarchical

        policy, history = train_hierarchical(self.worlds, self.worlds.scores, iterations=self.ac_iterations,
                                             steps=self.train_steps, seed=self.seed, progress=progress)
        return policy, {"iterations": history}

    def report(self, worlds: Worlds, steps: int, seed: int) -> dict:
        """``{"intent": ...}``: on the test users' world of ``seed``, the high level's agreement with each
        session's hidden mode against chance and the majority mode, and the clicks the same low level earns
        with the inferred intent and with one intent for every list
        (:func:`~penchant.simulate.hierarchical.intent_report`)."""
        from penchant.simulate.hierarchical import intent_report

        return {"intent": intent_report(worlds, self._acting(), steps, seed=seed)}


@register
class DecisionTransformerPolicy(_ActorPolicy):
    """A return-conditioned decision transformer trained offline on behaviour runs, asking for their 90th-percentile return.

    Args:
        dt_steps: training steps (batches of ``batch`` windows); the checkpoint (every 100 steps) is
            chosen by validation users' clicks.
        batch: windows of a user's lists per training step.
        action_tokens: the action served (θ) as a token of its own beside the return-to-go and the state
            (off by default: measured over 3 seeds, the model earns fewer clicks with them; docs/loop.md).
        reward_weighting: DT4IER's network from the user's logged state statistics to per-user
            weights of the two returns (clicks, lists) the model is conditioned on.
        contrastive: weight of DT4IER's contrastive action loss (0: none).
        ablations: when above 0, also train the full model and each part removed on that many seeds
            (from ``seed``) and report them against greedy (``ablations`` in the results).
        train_steps: the horizon of the behaviour runs and of acting.
        seed: seeds the behaviour runs and the training.
    """

    name = "decision-transformer"

    def __init__(self, worlds: Worlds, *, dt_steps: int = 600, batch: int = 256, action_tokens: bool = False,
                 reward_weighting: bool = True, contrastive: float = 0.1, ablations: int = 0,
                 train_steps: int = 200, seed: int = DEFAULT_SEED) -> None:
        self.dt_steps, self.batch, self.train_steps, self.seed = dt_steps, batch, train_steps, seed
        self.action_tokens, self.reward_weighting, self.contrastive = action_tokens, reward_weighting, contrastive
        self.ablations, self._progress = ablations, None
        super().__init__(worlds)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.actor_critic import VALID_SEED
        from penchant.simulate.decision_transformer import (
            DTRerank,
            collect,
            train_decision_transformer,
            validation_clicks,
        )

        worlds, steps = self.worlds, self.train_steps
        data = collect(worlds, worlds.scores, steps=steps, seed=self.seed)
        target = np.percentile(data.initial_returns(), 90, axis=0)
        select = validation_clicks(worlds("valid", VALID_SEED), worlds.scores, target, steps)
        model, history = train_decision_transformer(data, steps=self.dt_steps, batch=self.batch, seed=self.seed,
                                                    action_tokens=self.action_tokens,
                                                    reward_weighting=self.reward_weighting,
                                                    contrastive=self.contrastive, select=select, progress=progress)
        self._progress = progress
        policy = DTRerank(worlds.scores, worlds.template.catalogue, model, target, steps=steps)
        return policy, {"target": target.tolist(), "steps": history, "sequences": len(data.lengths)}

    def report(self, worlds: Worlds, steps: int, seed: int) -> dict:
        """``{"ablations": ...}`` with ``ablations`` above 0: DT4IER whole and each part removed against
        greedy over that many seeds, on the test users' worlds from ``seed``
        (:func:`~penchant.simulate.decision_transformer.ablations`)."""
        from penchant.simulate.decision_transformer import ablations

        if self.ablations <= 0:
            return {}
        return {"ablations": ablations(worlds, range(self.seed, self.seed + self.ablations), steps=steps,
                                       dt_steps=self.dt_steps, batch=self.batch, contrastive=self.contrastive,
                                       test_seed=seed, progress=self._progress)}


@register
class Sim2Rec(_ActorPolicy):
    """Sim2Rec (Chen et al. 2023): trained across a family of worlds with an extractor that infers the world from each user's own lists.

    The family draws the choice temperature, boredom weight, novelty weight and leaving rate from
    ranges around the run's world (:mod:`penchant.simulate.sim2rec`); the actor reads the extractor's estimate.

    Args:
        ac_iterations: training iterations (each: rollouts in ``worlds_per_iteration`` worlds of the
            family, one actor-critic update, extractor steps; early-stopped on validation worlds).
        worlds_per_iteration: worlds of the family drawn per iteration.
        extractor: with the environment-parameter extractor (false: the family-trained ablation).
        train_steps: the horizon trained for (steps of each training run).
        seed: seeds the actor, the critic, the extractor and the worlds' draws.
    """

    name = "sim2rec"

    def __init__(self, worlds: Worlds, *, ac_iterations: int = 30, worlds_per_iteration: int = 2, extractor: bool = True,
                 train_steps: int = 200, seed: int = DEFAULT_SEED) -> None:
        self.ac_iterations, self.worlds_per_iteration, self.extractor = ac_iterations, worlds_per_iteration, extractor
        self.train_steps, self.seed = train_steps, seed
        super().__init__(worlds)

    def world_family(self) -> Any:
        """The :class:`~penchant.simulate.sim2rec.WorldFamily` around the run's world."""
        from penchant.simulate.sim2rec import WorldFamily

        return WorldFamily(base=self.worlds.template.params)

    def _fit(self, progress: Callable[[str], None] | None) -> tuple[Any, dict]:
        from penchant.simulate.sim2rec import train_sim2rec

        policy, history = train_sim2rec(self.worlds, self.worlds.scores, family=self.world_family(), extractor=self.extractor,
                                        iterations=self.ac_iterations, worlds_per_iteration=self.worlds_per_iteration,
                                        steps=self.train_steps, seed=self.seed, progress=progress)
        return policy, {"iterations": history}

    def report(self, worlds: Worlds, steps: int, seed: int) -> dict:
        """``{"extractor": ...}``: on the test users' world of ``seed``, how well the extractor recovers
        the world's parameters (:func:`~penchant.simulate.sim2rec.recovery`; a report, it reads them)."""
        from penchant.simulate.sim2rec import recovery

        if not self.extractor:
            return {}
        found = recovery(self._acting(), worlds("test", seed), self.world_family(), steps=steps, seed=seed)
        found.pop("episode")
        return {"extractor": found}
