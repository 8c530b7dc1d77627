"""Conversation policies in the service: which ones a person can talk to, and the learned ones,
trained from the store (or trained offline and imported) for the deployed model version, kept as
policy artefacts (:mod:`penchant.converse.artefact`) beside it and loaded by every worker.

* **Served**: every registered conversation policy but the oracles (``oracle = True``: they are told
  the target, which a person keeps to themselves).
* **Learned**: a served policy with ``learned = True`` (``cpr``, ``ear``, the trees, ``unicorn``,
  whatever the registry holds). One that cannot act untrained (``ready_untrained = False``) is
  refused (409) until trained for the deployed version; one that can (a popularity tree) acts
  untrained until it is.

Training (``POST /v1/conversation-policies/{name}/train``) runs in a background thread, one job at a
time with the process's model training (its status is ``training`` while it waits). Its episodes
come from the store as the library's come from a data set (:func:`penchant.converse.experiment.prepare`):
the stored positive feedback on the deployed version's items, in that version's item order, is split
80/10/10 at random; the version's model (same name and parameters) is fitted on the 80%; the policy
is trained on episodes of the 10% validation part (its own way: policy gradient, a DQN, trees;
:class:`~penchant.converse.training.PolicyTrainer`) and measured on episodes of the held-out 10%. The
graph it learns over is the one conversations use (the stored items' categories and attributes over
the deployed version's items), so what it learns about items and values serves as it is.

The trained policy is saved with :func:`~penchant.converse.artefact.save_policy` as
``policies/<name>-v<version>.npz`` in the data folder (a temporary name, synced, then renamed), with
its selection and test metrics; ``POST /v1/conversation-policies/import`` installs one trained
offline (``penchant converse evaluate ... --save FILE``) for the deployed version, after checking it
was trained over that version's graph. A policy serves the version it was trained for only; after an
activation it must be trained (or imported) again (409 until then), and so after the stored items'
attributes change the graph (409 naming what differs).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from penchant.converse.artefact import GraphMismatchError, load_policy, policy_info, save_policy
from penchant.converse.policies import create_policy, policy_names
from penchant.data.attribute_graph import AttributeGraph
from penchant.data.dataset import Dataset, Step
from penchant.errors import ConfigError, ConflictError, DataError


def _policy_class(name: str) -> type:
    from penchant.models.registry import entry

    return entry(name, "conversation").cls


def served_names() -> tuple[str, ...]:
    """The registered conversation policies a person can talk to: all but the oracles, registry order."""
    return tuple(n for n in policy_names() if not getattr(_policy_class(n), "oracle", False))


def learned_names() -> tuple[str, ...]:
    """Served policies that learn: trained from the store, or imported as an artefact."""
    return tuple(n for n in served_names() if _policy_class(n).learned)


def ready_untrained(name: str) -> bool:
    """Whether ``name`` acts sensibly before it is trained (it is then served untrained)."""
    return bool(_policy_class(name).ready_untrained)


def over_items(ds: Dataset, item_ids: np.ndarray) -> Dataset:
    """``ds`` re-indexed to the items ``item_ids`` in their order (a deployed version's); interactions
    with other items are left out (counted in ``steps``)."""
    index = {str(i): k for k, i in enumerate(item_ids)}
    to = np.array([index.get(str(i), -1) for i in ds.item_ids], dtype=np.int64)
    moved = to[ds.items] if len(ds.items) else np.zeros(0, dtype=np.int64)
    keep = moved >= 0
    out = ds.subset(keep, Step("events on items the deployed version lacks", int((~keep).sum()),
                               "left out: a policy learns over the deployed version's items"))
    return dataclasses.replace(out, item_ids=np.asarray(item_ids, dtype=object), items=moved[keep].astype(np.int32))


class Served:
    """A loaded policy shared by the requests of one process: it acts for one request at a time
    (a policy may keep scratch state while it acts); everything else is the policy's."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def act(self, state, scorer):
        with self._lock:
            return self.policy.act(state, scorer)


@dataclasses.dataclass
class _Loaded:
    stamp: tuple  # the file's (mtime ns, size, inode) when loaded
    graph: AttributeGraph  # the graph object it was checked against
    served: Served


class LearnedPolicies:
    """Training jobs and loaded artefacts of one service process (the files are shared)."""

    def __init__(self, store, host, folder: Path) -> None:
        self.store, self.host, self.folder = store, host, Path(folder)
        self._jobs: dict[tuple[str, int], dict] = {}  # (name, version) -> status of a job of this process
        self._loaded: dict[tuple[str, int], _Loaded] = {}
        self._lock = threading.Lock()

    def path(self, name: str, version: int) -> Path:
        return self.folder / f"{name}-v{version}.npz"

    def has(self, name: str, version: int) -> bool:
        """Whether an artefact of ``name`` exists for ``version``."""
        return self.path(name, version).is_file()

    def check(self, name: str) -> None:
        if name not in learned_names():
            raise DataError(f"policy: {name!r} learns nothing, so there is nothing to train; the learned policies: "
                            f"{', '.join(learned_names())}")

    def status(self, name: str, version: int) -> dict:
        """``{"policy", "version", "status": untrained|training|ready|failed, "trained", ...}``: the
        artefact's metrics once trained; a policy that acts untrained is ``ready`` before."""
        head = {"policy": name, "version": version}
        path = self.path(name, version)
        if path.is_file():
            try:
                meta = policy_info(path)["meta"]
            except DataError as e:
                return head | {"status": "failed", "trained": False, "error": e.message}
            return head | {"status": "ready", "trained": True} | {k: v for k, v in meta.items() if k not in head}
        job = self._jobs.get((name, version))
        if job is not None and job["status"] != "ready":
            return head | {"trained": False} | job
        return head | {"status": "ready" if ready_untrained(name) else "untrained", "trained": False}

    def statuses(self) -> list[dict]:
        """Every served policy's status for the deployed version."""
        d = self.host.deployed
        if d is None:
            return [{"policy": n, "version": None, "status": "ready" if ready_untrained(n) else "untrained",
                     "trained": False} for n in served_names()]
        return [self.status(n, d.version) for n in served_names()]

    def start(self, name: str, graph_for, *, epochs: int = 12, episodes: int = 2000, params: dict | None = None,
              seed: int = 0) -> dict:
        """Train ``name`` for the deployed version in a background thread; the job's status.
        ``graph_for(item_ids)``: the conversation graph over those items; ``params``: the policy's."""
        from penchant.models.registry import convert_params

        self.check(name)
        try:
            params = convert_params(name, dict(params or {}))
        except ConfigError as e:
            raise DataError(f"params: {e}") from None
        d = self.host.deployed
        if d is None:
            raise ConflictError("no model is deployed yet; a policy is trained for the deployed version")
        key = (name, d.version)
        with self._lock:
            if self._jobs.get(key, {}).get("status") == "training":
                return self.status(name, d.version)
            self._jobs[key] = {"status": "training", "started_at": time.time()}
        threading.Thread(target=self._run, args=(key, d.item_ids, graph_for, epochs, episodes, params, seed),
                         daemon=True).start()
        return self.status(name, d.version)

    def _run(self, key: tuple[str, int], *args) -> None:
        try:
            # one training job at a time in a process, models and policies alike: two at once race in
            # torch's lazy imports ("cannot import name ... from partially initialized module
            # torch._inductor.utils", seen with two policies started together) and share the cores anyway
            with self.host._train_lock:
                self._train(key, *args)
            self._jobs[key] = {"status": "ready"}
        except Exception as e:  # the job's failure is its status, named
            self._jobs[key] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}

    def _train(self, key: tuple[str, int], item_ids: np.ndarray, graph_for, epochs: int, episodes: int,
               params: dict, seed: int) -> None:
        from penchant.converse.experiment import evaluate_policy, prepare
        from penchant.serve.host import events_dataset

        name, version = key
        v = self.store.version(version)
        ds = over_items(events_dataset(self.store.all_feedback(), self.host.settings), item_ids)
        graph: AttributeGraph = graph_for(item_ids)
        setup = prepare(ds, episodes=episodes, valid_episodes=episodes, model=v["model"], model_params=v["params"],
                        seed=seed, graph=graph)
        if len(setup.valid[0]) < 10:
            raise ValueError(f"{len(setup.valid[0])} validation episodes from the store; at least 10 are needed")
        policy = create_policy(name, graph, **params)
        result = evaluate_policy(setup, name, epochs=epochs, seed=seed, policy=policy)
        meta = {"policy": name, "version": version, "model": v["model"], "epochs": epochs, "params": policy.params(),
                "trained_at": time.time(), "train_episodes": len(setup.valid[0]),
                "test_episodes": len(setup.test[0]),
                **{k: result[k] for k in ("sr@5", "sr@10", "sr@15", "avg_turns", "hdcg", "selection_hdcg_by_epoch",
                                          "train_seconds") if k in result}}
        save_policy(policy, self.path(name, version), graph=graph, meta=meta)

    def install(self, source: Path, graph: AttributeGraph, version: int) -> dict:
        """Serve the policy artefact ``source`` (trained offline over ``graph``) for ``version``; its
        status. A file that is not a servable learned policy's artefact over ``graph`` is a DataError."""
        info = policy_info(source)
        name = info["policy"]
        if name not in served_names():
            raise DataError(f"the artefact holds {name!r}, which the service does not serve; "
                            + ("it is an oracle (it is told the target)" if name in policy_names() else
                               "this penchant does not have it") + f"; the learned policies: {', '.join(learned_names())}")
        self.check(name)
        try:
            policy = load_policy(source, graph)
        except GraphMismatchError as e:
            raise DataError(f"{name} was not trained over the deployed version's attribute graph (model v{version}: "
                            f"{graph.n_items} items, {graph.n_values} values from the stored items' categories and "
                            f"attributes): {e.differs}") from None
        meta = dict(info["meta"]) | {"policy": name, "version": version, "imported": True, "imported_at": time.time()}
        save_policy(policy, self.path(name, version), graph=graph, meta=meta)
        return self.status(name, version)

    def policy(self, name: str, graph: AttributeGraph, version: int) -> Served:
        """The ``name`` policy trained for ``version``, over ``graph`` (the deployed version's whole
        conversation graph); 409 when there is none or it was trained over another graph. Loaded once
        per process and file (a file replaced by another worker's training or an import is read again)."""
        path = self.path(name, version)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ConflictError(f"policy {name} is not trained for model v{version}: "
                                f"POST /v1/conversation-policies/{name}/train (admin) first") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        key = (name, version)
        loaded = self._loaded.get(key)
        if loaded is not None and loaded.stamp == stamp and loaded.graph is graph:
            return loaded.served
        try:
            served = Served(load_policy(path, graph))
        except GraphMismatchError as e:
            raise ConflictError(f"policy {name} for model v{version} was trained over other item attributes than the "
                                f"stored items have now ({e.differs}): POST /v1/conversation-policies/{name}/train "
                                "(admin) again") from None
        except DataError as e:
            raise ConflictError(f"policy {name} for model v{version} does not load ({e.message}): train it again "
                                f"(POST /v1/conversation-policies/{name}/train) or import it") from None
        with self._lock:
            self._loaded[key] = _Loaded(stamp, graph, served)
        return served
