"""The learned conversation policies (``cpr``, ``ear``) in the service: trained from the store for
the deployed model version, saved beside it, loaded by every worker that starts a conversation.

A policy learns when to recommend rather than ask (a small network over the conversation's state,
trained by policy gradient on the simulator; :mod:`penchant.converse.training`). Its episodes come
from the store as the library's come from a data set (:func:`penchant.converse.experiment.prepare`):
the stored positive feedback is split 80/10/10 at random, the deployed version's model (same name
and parameters) is fitted on the 80%, the policy is trained on episodes of the 10% validation part
(half to train, half to pick the epoch) and measured on episodes of the held-out 10%. What it
learns reads only the conversation's state (candidates, turn, the preference mass of the top list,
…), not item indices, so the decision trained on the refit serves the deployed model's scores.

The trained decision is saved as ``policies/<name>-v<version>.npz`` in the data folder (written to
a temporary name, then renamed), with its selection and test metrics; a policy is served for the
version it was trained for only, so after an activation it must be trained again (409 until then).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from penchant.converse.policies import create_policy, ready_policies
from penchant.data.attribute_graph import AttributeGraph
from penchant.errors import ConflictError, DataError


def learned_names() -> tuple[str, ...]:
    """Registered conversation policies that must be trained before they are served."""
    from penchant.models.registry import model_names

    return tuple(n for n in model_names("conversation") if n not in ready_policies())


class LearnedPolicies:
    """Training jobs and trained decisions of one service process (the files are shared)."""

    def __init__(self, store, host, folder: Path) -> None:
        self.store, self.host, self.folder = store, host, Path(folder)
        self._jobs: dict[tuple[str, int], dict] = {}  # (name, version) -> status of a job of this process
        self._loaded: dict[tuple[str, int], dict] = {}
        self._lock = threading.Lock()

    def path(self, name: str, version: int) -> Path:
        return self.folder / f"{name}-v{version}.npz"

    def check(self, name: str) -> None:
        if name not in learned_names():
            raise DataError(f"policy: {name!r} is not a learned policy; one of {', '.join(learned_names())}")

    def status(self, name: str, version: int) -> dict:
        """``{"policy", "version", "status": untrained|training|ready|failed, ...}`` (metrics once ready)."""
        path = self.path(name, version)
        if path.exists():
            return {"policy": name, "version": version, "status": "ready", **self._meta(path)}
        job = self._jobs.get((name, version))
        return {"policy": name, "version": version, **(job or {"status": "untrained"})}

    def statuses(self) -> list[dict]:
        d = self.host.deployed
        ready = [{"policy": n, "version": d.version if d else None, "status": "ready", "trained": False}
                 for n in ready_policies()]
        return ready + ([self.status(n, d.version) for n in learned_names()] if d is not None else
                        [{"policy": n, "version": None, "status": "untrained"} for n in learned_names()])

    def start(self, name: str, graph_for, *, epochs: int = 12, episodes: int = 2000, seed: int = 0) -> dict:
        """Train ``name`` for the deployed version in a background thread; the job's status."""
        self.check(name)
        d = self.host.deployed
        if d is None:
            raise ConflictError("no model is deployed yet; a policy is trained for the deployed version")
        key = (name, d.version)
        with self._lock:
            if self._jobs.get(key, {}).get("status") == "training":
                return self.status(name, d.version)
            self._jobs[key] = {"status": "training", "started_at": time.time()}
        threading.Thread(target=self._run, args=(key, graph_for, epochs, episodes, seed), daemon=True).start()
        return self.status(name, d.version)

    def _run(self, key: tuple[str, int], graph_for, epochs: int, episodes: int, seed: int) -> None:
        try:
            self._train(key, graph_for, epochs, episodes, seed)
            self._jobs[key] = {"status": "ready"}
        except Exception as e:  # the job's failure is its status, named
            self._jobs[key] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}

    def _train(self, key: tuple[str, int], graph_for, epochs: int, episodes: int, seed: int) -> None:
        from penchant.converse.experiment import evaluate_policy, prepare
        from penchant.serve.host import events_dataset

        name, version = key
        v = self.store.version(version)
        ds = events_dataset(self.store.all_feedback(), self.host.settings)
        graph: AttributeGraph = graph_for(ds.item_ids)
        setup = prepare(ds, episodes=episodes, valid_episodes=episodes, model=v["model"], model_params=v["params"],
                        seed=seed, graph=graph)
        if len(setup.valid[0]) < 10:
            raise ValueError(f"{len(setup.valid[0])} validation episodes from the store; at least 10 are needed")
        policy = create_policy(name, graph)
        result = evaluate_policy(setup, name, epochs=epochs, seed=seed, policy=policy)
        meta = {"policy": name, "version": version, "model": v["model"], "epochs": epochs, "trained_at": time.time(),
                "train_episodes": int(len(setup.valid[0])), "test_episodes": int(len(setup.test[0])),
                **{k: result[k] for k in ("sr@5", "sr@10", "sr@15", "avg_turns", "hdcg", "selection_hdcg_by_epoch",
                                          "train_seconds") if k in result}}
        state = {k: v.detach().cpu().numpy() for k, v in policy.decision.state_dict().items()}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(name, version)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **{f"decision.{k}": a for k, a in state.items()})
        os.replace(tmp, path)

    @staticmethod
    def _meta(path: Path) -> dict:
        with np.load(path) as f:
            return json.loads(str(f["meta"]))

    def policy(self, name: str, graph: AttributeGraph, version: int):
        """A fresh ``name`` policy over ``graph`` with the decision trained for ``version``; 409 when
        there is none."""
        path = self.path(name, version)
        key = (name, version)
        state = self._loaded.get(key)
        if state is None:
            if not path.exists():
                raise ConflictError(f"policy {name} is not trained for model v{version}: "
                                    f"POST /v1/conversation-policies/{name}/train (admin) first")
            with np.load(path) as f:
                state = {k[len("decision."):]: f[k] for k in f.files if k.startswith("decision.")}
            self._loaded[key] = state
        import torch

        pol = create_policy(name, graph)
        pol.decision.load_state_dict({k: torch.from_numpy(np.array(a)) for k, a in state.items()})
        return pol
