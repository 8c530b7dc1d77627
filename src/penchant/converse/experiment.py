"""One conversational-recommendation experiment: split, scorer, episodes, policy training and
evaluation, with nothing of the test interactions reaching the scorer or the policies.

Three settings (``setting=``), each drawing the same seeded episodes for every policy:

* ``warm`` (today's): interactions are split per user at random 80/10/10 (seeded); validation
  episodes are (user, validation item), test episodes (user, test item).
* ``cold``: a seeded share of the users (20%) are new to the platform: their whole history is held
  out of the scorer's training data, half of them (validation users) giving the validation
  episodes and the other half (test users, disjoint) the test episodes, each (user, one of their
  items). Everyone else's 80% trains the scorer (their 10%/10% are unused). A cold user's row of
  the scorer is the popularity prior log(1 + training interactions of the item), and nothing of
  theirs is excluded or known at the start (their ``history`` is empty).
* ``drift``: a returning user whose intent today is unlike their history: each user's held-out
  items are those whose attribute profile is least like the rest of their history (the rule is
  :func:`drift_split`'s), split at random between validation and test; the rest trains the scorer.

The scorer's model is fitted on the training part only. Policies are trained and selected on
validation episodes, which never show the user's training items; test episodes never show training
or validation items. Validation and test episodes never share a (user, item) pair (and in the cold
setting never share a user).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.converse.policies import create_policy
from penchant.converse.simulator import episodes_from, run_episode, seen_items
from penchant.converse.state import Scorer
from penchant.converse.training import PolicyTrainer
from penchant.data.attribute_graph import AttributeGraph, attribute_graph
from penchant.data.dataset import Dataset, Step
from penchant.data.split import Split, random_holdout, rank_within_user
from penchant.errors import ConfigError, DataError
from penchant.eval.conversation import conversation_metrics
from penchant.experiment.tasks import Task, register_task

#: who the test users are: ``warm`` (the scorer knows them), ``cold`` (new users), ``drift`` (a target unlike their history)
SETTINGS = ("warm", "cold", "drift")


def check_setting(setting: str) -> str:
    """``setting`` if it is one of :data:`SETTINGS`, else a ConfigError."""
    if setting not in SETTINGS:
        raise ConfigError(f"unknown setting {setting!r}; settings: {', '.join(SETTINGS)}")
    return setting


@dataclass
class ConversationSetup:
    """Everything a policy is trained and tested with.

    Attributes:
        base: float32 (n_users, n_items) the fitted model's scores (training part only).
        popularity: float64 (n_items,) training interactions per item.
        test, valid: (users, targets) int64 arrays of episodes.
        test_exclude, valid_exclude: CSR users × items never shown in those episodes (and known
            as the user's history at the start).
        setting: ``warm``, ``cold`` or ``drift`` (see the module).
        cold_users: int64 the users held out of the scorer entirely (cold setting; else empty).
    """

    dataset: Dataset
    graph: AttributeGraph
    split: Split
    model_name: str
    base: np.ndarray
    popularity: np.ndarray
    test: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test_exclude: sp.csr_matrix
    valid_exclude: sp.csr_matrix
    seed: int
    setting: str = "warm"
    cold_users: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def train(self) -> sp.csr_matrix:
        """CSR float32 (n_users, n_items): the scorer's training interactions (binary; a cold user's row empty)."""
        return self.split.train.csr

    def trainer(self, **kwargs) -> PolicyTrainer:
        return PolicyTrainer(self.graph, self.base, *self.valid, self.valid_exclude, self.popularity,
                             seed=self.seed, train=self.train, setting=self.setting, **kwargs)


def cold_split(ds: Dataset, split: Split, share: float = 0.2, seed: int = DEFAULT_SEED) -> tuple[Split, np.ndarray]:
    """The cold setting's parts: a seeded ``share`` of the users with interactions (rounded; at
    least 2) is held out of ``split``'s training part entirely; the first half of them (by a seeded
    permutation, rounded down) are validation users, whose every interaction is the validation part,
    the rest test users, whose every interaction is the test part. The training part is ``split``'s
    (everyone else's share of a per-user holdout). Returns the split and the cold users, int64
    (n_cold,) sorted."""
    if not 0 < share < 1:
        raise ConfigError(f"the share of cold users must be between 0 and 1, not {share}")
    active = np.flatnonzero(ds.user_counts > 0)
    n = max(2, round(share * len(active)))
    if n > len(active):
        raise ConfigError(f"{ds.name} has {len(active)} users with interactions, too few for cold validation and test users")
    cold = np.random.default_rng([seed, 35]).permutation(active)[:n]
    valid_users, test_users = np.zeros(ds.n_users, bool), np.zeros(ds.n_users, bool)
    valid_users[cold[: n // 2]] = True
    test_users[cold[n // 2:]] = True
    is_cold = valid_users | test_users
    note = f"{n // 2} validation and {n - n // 2} test users held out of training whole (share {share:g}, seed {seed})"
    train = split.train.subset(~is_cold[split.train.users], Step("cold users", int(is_cold.sum()), note),
                               name=f"{ds.name}/train")
    valid = ds.subset(valid_users[ds.users], Step("cold validation users", n // 2, note), name=f"{ds.name}/valid")
    test = ds.subset(test_users[ds.users], Step("cold test users", n - n // 2, note), name=f"{ds.name}/test")
    return Split(train, valid, test, f"cold users: {note}; the others' {split.protocol}"), np.sort(cold).astype(np.int64)


def history_similarity(ds: Dataset, graph: AttributeGraph) -> np.ndarray:
    """float64 (n_interactions,): for each interaction (u, i), the cosine between item i's
    attribute profile and the sum of the unit profiles of u's other items,
    cos(a_i, Σ_{j ∈ I_u \\ {i}} a_j / ‖a_j‖) (a = the rows of ``graph.items``, binary); NaN where
    either side is zero (an item with no values, or a user with nothing else)."""
    a = graph.items.astype(np.float64).tocsr()
    norms = np.sqrt(np.asarray(a.multiply(a).sum(1)).ravel())
    unit = (sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0.0)) @ a).tocsr()  # (n_items, V)
    s = (ds.csr.astype(np.float64) @ unit).tocsr()  # (n_users, V): the sum of each user's unit profiles
    s_sq = np.asarray(s.multiply(s).sum(1)).ravel()
    users, items = ds.users.astype(np.int64), ds.items.astype(np.int64)
    dot_us = np.empty(len(users))  # unit_i · s_u per interaction
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(0, ds.n_users + 1))
    block = max(1, 20_000_000 // max(1, ds.n_items))  # users per block: (n_items, block) dense floats
    for lo in range(0, ds.n_users, block):
        hi = min(ds.n_users, lo + block)
        pick = order[bounds[lo]:bounds[hi]]
        g = np.asarray((unit @ s[lo:hi].T).todense())  # (n_items, hi − lo)
        dot_us[pick] = g[items[pick], users[pick] - lo]
    has = (norms[items] > 0).astype(np.float64)
    dot = dot_us - has  # unit_i · (s_u − unit_i); unit_i · unit_i = 1 where i has values
    rest_sq = s_sq[users] - 2 * dot_us + has  # ‖s_u − unit_i‖²
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dot / np.sqrt(np.maximum(rest_sq, 0.0))
    out[(has == 0) | (rest_sq <= 1e-9)] = np.nan
    return out


def drift_split(ds: Dataset, graph: AttributeGraph, share: float = 0.2, seed: int = DEFAULT_SEED,
                min_items: int = 5) -> Split:
    """The drift setting's parts. The rule, exactly: for each interaction (u, i), its similarity
    to the rest of u's history is :func:`history_similarity` (the cosine between item i's
    attribute profile and the summed unit profiles of u's other items). Each user with at least
    ``min_items`` interactions holds out their k = max(1, round(``share`` · n_u)) least similar
    items (ties broken by a seeded random order; items with no attribute value, and NaN
    similarities, are never held out); each held-out item goes to the validation or the test part
    by a seeded fair coin. Every other interaction is training. With share 0.2 that is about 10%
    validation and 10% test, as in the warm setting, but from the part of the catalogue the user
    has chosen least."""
    if not 0 < share < 1:
        raise ConfigError(f"the share of drifting targets must be between 0 and 1, not {share}")
    if ds.has_repeated_pairs():
        raise DataError(f"{ds.name} repeats (user, item) pairs, so one pair could be both trained on and a target",
                        expected="data read with dedupe='last' or 'first'")
    sim = history_similarity(ds, graph)
    rng = np.random.default_rng([seed, 36])
    users = ds.users.astype(np.int64)
    eligible = ~np.isnan(sim)
    order = np.lexsort((rng.random(len(sim)), np.where(eligible, sim, np.inf), users))
    rank, count = rank_within_user(users, order, ds.n_users)
    k = np.where(count >= min_items, np.maximum(1, np.round(share * count)), 0)
    held = (rank < k) & eligible
    coin = rng.random(len(sim)) < 0.5
    protocol = (f"drift: per user (≥ {min_items} interactions) the {share:g} least attribute-like items held out, "
                f"valid/test by coin, seed {seed}")
    parts = np.where(held, np.where(coin, 1, 2), 0)
    names = ("train", "valid", "test")
    sets = [ds.subset(parts == p, Step("split", int((parts == p).sum()), f"{names[p]} part of {protocol}"),
                      name=f"{ds.name}/{names[p]}") for p in range(3)]
    return Split(sets[0], sets[1], sets[2], protocol)


def prepare(ds: Dataset, level: str = "coarse", *, setting: str = "warm", episodes: int = 2000,
            valid_episodes: int = 1000, model: str = "ease", model_params: dict | None = None,
            seed: int = DEFAULT_SEED, graph: AttributeGraph | None = None, cold_share: float = 0.2,
            drift_share: float = 0.2) -> ConversationSetup:
    """Split ``ds`` for ``setting`` (warm, cold or drift: see the module), fit the scorer's model on
    the training part and draw seeded episodes: the same test episodes for every policy given
    (``setting``, ``seed``, ``level``), validation episodes disjoint from them. ``cold_share``: the
    share of users held out whole (cold); ``drift_share``: the share of each user's items held out
    as drifting targets (drift)."""
    from penchant.models.registry import create

    check_setting(setting)
    graph = graph or attribute_graph(ds, level)
    cold = np.zeros(0, dtype=np.int64)
    if setting == "drift":
        split = drift_split(ds, graph, drift_share, seed)
    else:
        split = random_holdout(ds, (0.8, 0.1, 0.1), seed=seed)
        if setting == "cold":
            split, cold = cold_split(ds, split, cold_share, seed)
    fitted = create(model, **(model_params or {})).fit(split.train)
    base = fitted.score(np.arange(ds.n_users)).astype(np.float32)
    popularity = np.asarray(split.train.csr.sum(0)).ravel().astype(np.float64)
    base[cold] = np.log1p(popularity).astype(np.float32)  # the scorer has never seen them: the prior
    return ConversationSetup(ds, graph, split, model, base, popularity,
                             episodes_from(split.test, episodes, seed, graph),
                             episodes_from(split.valid, valid_episodes, seed + 1, graph),
                             seen_items(split.train, split.valid), seen_items(split.train), seed, setting, cold)


class ConversationTask(Task):
    """The ``conversation`` family's task (:mod:`penchant.experiment.tasks`): ``read`` a data set
    into a :class:`ConversationSetup`, ``fit`` a policy on its validation episodes (when it learns),
    ``test`` it on the held-out episodes."""

    families = ("conversation",)
    default_metric = "hdcg"

    def read(self, train: str | Path, valid=None, test=None, *, seed: int = DEFAULT_SEED, level: str | None = None,
             attributes: Sequence[str] | None = None, noun: str | None = None, episodes: int = 2000,
             valid_episodes: int = 1000, model: str = "ease", model_params: dict | None = None,
             dataset: Dataset | None = None, setting: str = "warm") -> ConversationSetup:
        """The setup of ``train`` (a data set with item attributes; ``dataset`` when already read):
        its attribute graph (MovieLens's ``level``, or the named ``attributes`` columns, worded with
        ``noun``), the ``setting``'s split (warm, cold or drift), the scorer fitted on its training
        part and the seeded episodes."""
        from penchant.data import load
        from penchant.data.attribute_graph import item_numbers

        check_setting(setting)
        if valid is not None or test is not None:
            raise ConfigError("a conversation experiment splits one data set itself (by its --setting)")
        if attributes is not None and level is not None:
            raise ConfigError("--level chooses among MovieLens's attributes; with --attributes leave it out")
        if noun is not None and not noun.strip():
            raise ConfigError("--noun must not be empty")
        ds = load(train) if dataset is None else dataset
        graph = attribute_graph(ds, level or "coarse", attributes=None if attributes is None else list(attributes),
                                numbers=item_numbers(train, ds), noun=None if noun is None else noun.strip())
        return prepare(ds, graph=graph, setting=setting, episodes=episodes, valid_episodes=valid_episodes,
                       model=model, model_params=model_params, seed=seed)

    def create(self, name: str, params: dict[str, Any], graph: AttributeGraph | None = None) -> Any:
        return create_policy(name, graph, **params)

    def fit(self, name: str, params: dict[str, Any], train: ConversationSetup, valid=None, *, metric=None,
            report=None, epochs: int = 12, policy: Any = None) -> Any:
        """Policy ``name`` over the setup's graph, trained by policy gradient on its validation
        episodes when it learns (selected on their hDCG); ``policy``: an unfitted one to train."""
        policy = self.create(name, params, train.graph) if policy is None else policy
        start = time.perf_counter()
        if policy.learned:
            policy.fit(train.trainer(epochs=epochs))
        policy.train_seconds_ = time.perf_counter() - start
        return policy

    def test(self, model: Any, parts: ConversationSetup, *, ks=(), backend=None, seed: int | None = None,
             progress=None, simulated_user=None) -> tuple[dict, str]:
        """The held-out episodes played: the metrics of :func:`~penchant.eval.conversation.conversation_metrics`
        (with the transcripts of a user who answers in words) and one line."""
        result = play(parts, model, seed=seed, progress=progress, simulated_user=simulated_user)
        return result, f"hDCG {result['hdcg']:.4f}  SR@15 {result['sr@15']:.4f}  turns {result['avg_turns']:.2f}"


def play(setup: ConversationSetup, policy: Any, *, seed: int | None = None, progress=None,
         simulated_user=None) -> dict:
    """Play the test episodes with a (trained) ``policy``; metrics plus timing and settings."""
    seed = setup.seed if seed is None else seed
    history = policy.history_
    scorer = Scorer(setup.graph, setup.base)
    rng = np.random.default_rng(seed)
    users, targets = setup.test
    results = []
    ex = setup.test_exclude
    start = time.perf_counter()
    for k, (u, t) in enumerate(zip(users, targets)):
        results.append(run_episode(policy, scorer, setup.graph, int(u), int(t),
                                   exclude=ex.indices[ex.indptr[u]:ex.indptr[u + 1]], rng=rng,
                                   simulated_user=simulated_user))
        if progress is not None:
            progress(k + 1, len(users))
    metrics = conversation_metrics(results, setup.graph, seed=seed)
    if results and results[0].user_model.transcript is not None:  # a user that answered in words
        understood = [ok for r in results for ok in r.user_model.understood]
        metrics |= {"answers_read": len(understood),
                    "understood": float(np.mean(understood)) if understood else None,
                    "transcripts": [r.user_model.transcript for r in results]}
    return {"policy": policy.name} | metrics | {
        "params": policy.params(), "train_seconds": round(getattr(policy, "train_seconds_", 0.0), 2),
        "ms_per_episode": round(1000 * (time.perf_counter() - start) / max(1, len(users)), 2),
        "selection_hdcg_by_epoch": None if history is None else [round(h, 4) for h in history],
        "attributes": setup.graph.n_values, "model": setup.model_name, "setting": setup.setting}


TASK = register_task(ConversationTask())


def evaluate_policy(setup: ConversationSetup, name: str, *, multi_choice: int = 0, epochs: int = 12,
                    seed: int | None = None, progress=None, simulated_user=None, policy=None) -> dict:
    """Train ``name`` on the validation episodes (if it learns) and play the test episodes through
    the task: the metrics of :func:`penchant.eval.conversation.conversation_metrics` plus timing and
    settings. ``simulated_user`` makes the test episodes' user (see
    :func:`penchant.converse.simulator.run_episode`); training always uses the attribute user.
    ``policy``: the (untrained) policy object to train and play, for a caller that keeps it (the
    service saves its decision); by default a new one."""
    params = {"multi_choice": multi_choice} if multi_choice else {}
    fitted = TASK.fit(name, params, setup, epochs=epochs, policy=policy)
    return TASK.test(fitted, setup, seed=seed, progress=progress, simulated_user=simulated_user)[0]
