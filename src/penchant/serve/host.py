"""The deployed model and its versions: train from the store in the background, record the
offline evaluation next to the version, activate atomically, roll back, and answer
recommendations that reflect events at once.

Activation swaps one reference (``self.deployed``); a request reads that reference once, so
requests in flight finish on the version they started with.

A crash at any step leaves a version that serves (the fault suite, tests/serve/test_serve_faults.py,
kills the process at each): a version's artefact is written and synced to disk before anything says
it exists; "ready" and "active" are one transaction (:meth:`Store.mark_ready`), so the previous
version stays active until the new one is whole; a version left "training" by a process that died
is marked failed at the next start, naming the process; and a start that cannot load the active
version serves the newest ready one that loads, saying so in its start-up lines and in /readyz.

Training data: for every (user, item) the latest event with a positive or negative meaning
decides; pairs whose latest is positive are the interactions (exposure events are not used for
training; they, like every event, make an item "seen"). The offline evaluation holds out 10% of
each user's interactions (seed 0), fits, and scores NDCG@10 and Recall@10 over the full
catalogue; the deployed model is then refitted on everything.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penchant.data.events import interactions_from_events, pairs_from_rows
from penchant.errors import ConflictError, DataError, NotFoundError, StoreUnavailableError
from penchant.experiment.answers import APPROXIMATE, FOLD_IN, MODEL, AnswerCore, rank_options
from penchant.models.ann import ItemIndex
from penchant.models.posterior import UserPosterior, thompson_lists
from penchant.models.protocols import DotProduct
from penchant.models.ranking import top_k
from penchant.serve.config import Settings
from penchant.serve.failpoints import failpoint
from penchant.serve.fleet import VersionFiles
from penchant.serve.impressions import ImpressionLog, explore, thompson
from penchant.serve.leases import JobLeases, JobWatch, Lease
from penchant.serve.runner import process_running
from penchant.serve.store import Store

#: at most this many users' Thompson lists are kept (each N × k indices and scores: 80 kB at N = 1,000, k = 10)
THOMPSON_CACHE_ENTRIES = 1000


@dataclass
class Loaded:
    """A model version in memory: its id, registry name, the fitted model and its users."""

    version: int
    model_name: str
    model: object
    user_index: dict[str, int]

    @property
    def label(self) -> str:
        return f"{self.model_name}:v{self.version}"


@dataclass
class Deployed(Loaded):
    """A recommender version and the answer core over it (:class:`~penchant.experiment.answers.AnswerCore`:
    its vocabularies, seen items, popularity and, for large catalogues, the approximate index)."""

    core: AnswerCore

    @property
    def item_ids(self) -> np.ndarray:
        return self.core.item_ids

    @property
    def item_index(self) -> dict[str, int]:
        return self.core.items

    @property
    def popularity(self) -> np.ndarray:
        return self.core.popularity

    def source(self, source: str) -> str:
        """How an answer names its source: ``als:v3``, ``als:v3+fold-in``, ``als:v3+ann`` or ``popular``."""
        return {MODEL: self.label, FOLD_IN: self.label + "+fold-in", APPROXIMATE: self.label + "+ann"}.get(source, source)


def events_dataset(events: list[tuple], settings: Settings):
    """The training interactions from stored events, by the settings' feedback meanings and weights
    (:func:`penchant.data.events.interactions_from_events`)."""
    return interactions_from_events(events, settings.feedback_types, settings.feedback_weights)


@dataclass
class DeployedPreference(Loaded):
    """A pairwise preference model version and its option vocabulary."""

    option_ids: np.ndarray
    option_index: dict[str, int]


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if it is not running
    or there is no /proc. With the pid, it names one process: a pid used again is another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_owner() -> str:
    """This process, as a version's ``owner`` while it trains it: ``host:pid:start ticks``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid()) or ''}"


def owner_alive(owner: str | None, embedded: bool) -> bool:
    """Whether the process that wrote ``owner`` may still be running. A process on another host
    counts as alive (its own server answers for it); a version with no owner (written before owners
    were kept) is dead only in an ``embedded`` store (SQLite, reached through this data folder alone)."""
    if not owner:
        return not embedded
    host, pid, ticks = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    if ticks or os.path.isdir("/proc"):
        return _started(int(pid)) == ticks
    return process_running(int(pid))


def _durable(folder: Path) -> None:
    """fsync every file under ``folder``, the folders, and ``folder``'s entry in its parent: what the
    store will say is there survives a power cut, not only a crash of the process."""
    for path in [*sorted(folder.rglob("*"), key=lambda p: -len(p.parts)), folder, folder.parent]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _listed(ids: np.ndarray, ranked) -> list[dict]:
    """A :class:`~penchant.experiment.answers.Ranked` as ``[{"id", "score"}, ...]``."""
    return [{"id": str(ids[i]), "score": float(v)} for i, v in zip(ranked.items, ranked.scores)]


class ModelHost:
    """The deployed versions of one server process.

    With several worker processes, ``generation`` is a counter they share (a
    ``multiprocessing.RawValue``): a worker that activates a version or changes items bumps it, and
    every worker, on its next read of :attr:`deployed` or :attr:`preference`, sees the new count,
    loads the store's active versions and clears its item caches before answering. A request still
    reads the reference once, so no answer mixes versions.

    With a shared store (PostgreSQL: replicas on several hosts, :mod:`penchant.serve.fleet`), the
    count is the store's (``fleet_state``, bumped in the transaction of each change, on any
    replica), read by every answer; versions' files come from the store through :attr:`files`.
    """

    def __init__(self, store: Store, settings: Settings, generation=None, generation_lock=None,
                 user_events=None) -> None:
        from penchant.serve.answers import AnswerCache, counters

        self.store, self.settings = store, settings
        self.answers = AnswerCache(settings.answer_cache_entries, counters(user_events))
        self.impressions = ImpressionLog(store, settings.log_impressions)
        self._explore_rng = np.random.default_rng()
        # a user's Thompson lists (N × k indices and scores), valid as long as their answers are
        self.thompson_lists = AnswerCache(min(settings.answer_cache_entries, THOMPSON_CACHE_ENTRIES), self.answers.events)
        self._changes = 0  # this process's count of changes when no generation is shared
        self._deployed: Deployed | None = None
        self._preference: DeployedPreference | None = None
        self.models_dir = Path(settings.data_dir) / "models"
        self.files = VersionFiles(store, self.models_dir)
        self._train_lock = threading.Lock()
        self._categories: dict[str, set[str]] | None = None
        self._category_masks: dict[tuple[int, str], np.ndarray] = {}
        self.generation, self.generation_lock = generation, generation_lock
        self._seen_generation = generation.value if generation is not None else 0
        self._sync_lock = threading.Lock()
        self.on_items_changed: list = []  # callbacks of other per-process caches (conversations)
        self.owner = process_owner()
        # training jobs leased through the store: one replica runs each; a dead one's job is taken over or failed
        self.jobs = JobLeases(store.engine, self.owner, settings.job_lease_s, settings.job_heartbeat_s,
                              settings.job_attempts)
        self.watch = JobWatch(self.jobs, lambda: not self._train_lock.locked(), self._run_claimed,
                              lambda lines: self.warnings.extend(lines))
        self._deploy_lock = threading.Lock()  # one activation at a time: a swap undone is the one made
        self.warnings: list[str] = []  # what the start refused or fell back from (start-up lines, /readyz)
        self.ann_counts = {"approximate": 0, "exact": 0}  # answers of the index, and of exact scoring in its place

    # --- sharing between worker processes --------------------------------------------------------

    @property
    def deployed(self) -> Deployed | None:
        self._sync()
        return self._deployed

    @property
    def preference(self) -> DeployedPreference | None:
        self._sync()
        return self._preference

    def _bump(self) -> None:
        """Tell the other workers (and the answer cache) that versions or items changed."""
        self._changes += 1
        if self.generation is not None:
            with self.generation_lock:
                self.generation.value += 1

    def changes(self) -> int:
        """A count that moves whenever versions or items change, in any worker (any replica of a
        shared store: read from it)."""
        if self.store.shared:
            return self.store.fleet_read()[0]
        return self.generation.value if self.generation is not None else self._changes

    def refresh(self) -> None:
        """Catch up now (the fleet listener calls it when another replica changed something)."""
        self._sync()

    def _current(self, user_id: str, counts: tuple[int, int, int] | None = None) -> tuple[Deployed | None, int, int]:
        """The recommender to answer ``user_id`` with, the change count and the user's event count
        its cached answers are stamped with (:class:`~penchant.serve.answers.AnswerCache`). A shared
        store's counts are read in one SELECT (the check that keeps replicas from answering from an
        old version or an answer older than the user's last event); ``counts``: that read, made for
        this request after it arrived (the hot path's key check shares it), else made here."""
        if self.store.shared:
            generation, _, events = self.store.fleet_read(user_id) if counts is None else counts
            self._sync(generation)
            return self._deployed, generation, events
        d = self.deployed
        return d, self.changes(), self.answers.user_events(user_id)

    def _sync(self, now: int | None = None) -> None:
        """Catch up with the other workers (replicas): reload the active versions that differ from
        ours. ``now``: the change count just read (else read here)."""
        if self.store.shared:
            now = self.store.fleet_read()[0] if now is None else now
        elif self.generation is None:
            return
        else:
            now = self.generation.value
        if now == self._seen_generation:
            return
        from penchant.models.artefact import ArtefactError

        with self._sync_lock:
            seen = now
            if seen == self._seen_generation:
                return
            for v in self.store.versions():
                if not (v["active"] and v["status"] == "ready"):
                    continue
                current = self._preference if v["kind"] == "preference" else self._deployed
                if current is not None and current.version == v["id"]:
                    continue
                try:
                    loaded = self._load(v)
                except ArtefactError as e:
                    if self.store.shared:  # a replica never answers from the version the fleet left: this answer fails
                        raise StoreUnavailableError(
                            f"model version {v['id']} is active but could not be loaded on this replica ({e}); "
                            "nothing was answered; it is tried again at the next request") from None
                    traceback.print_exc()  # the version stays as it was here; the activating worker answered
                    continue
                if v["kind"] == "preference":
                    self._preference = loaded
                else:
                    self._deployed = loaded
            self._clear_item_caches()
            self._seen_generation = seen

    # --- versions --------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark failed every version left "training" by a process that is no longer running (its
        job died with it: SIGKILL, power cut, a stop during training); its error names the process.
        Versions another live process is training are left alone. One line per version marked."""
        embedded = self.store.engine.dialect.name == "sqlite"
        lines = []
        for v in self.store.versions():
            if v["status"] != "training" or owner_alive(v["owner"], embedded):
                continue
            who = "pid {1} on {0}".format(*v["owner"].rsplit(":", 2)) if v["owner"] else "of an earlier penchant"
            if v["owner"] and self.jobs.release(v["id"], v["owner"]):  # claims left (job_attempts): run it again
                lines.append(f"model version {v['id']} ({v['model']}): the process training it ({who}) ended; "
                             "its job is released for another replica (or this one) to run again")
                continue
            error = (f"interrupted: the process training it ({who}) ended before the version was ready; "
                     "nothing of it is served; train it again")
            if self.store.fail_training(v["id"], error):
                lines.append(f"model version {v['id']} ({v['model']}) {error}")
        self.warnings += lines
        return lines

    def load_active(self) -> list[str]:
        """Load the active version of each kind. A version whose artefact is missing or damaged is
        never served: it is marked failed (its error says why); the newest ready version of its kind
        that loads becomes the active one and serves instead (the same when no version of a kind is
        active though ready ones exist: an activation was interrupted), else nothing of its kind is
        deployed. Returns one line per version refused or fallen back to (also kept in
        :attr:`warnings`, which /readyz shows)."""
        from penchant.models.artefact import ArtefactError

        lines = []
        versions = self.store.versions()
        for kind in ("recommender", "preference"):
            ready = [v for v in versions if v["kind"] == kind and v["status"] == "ready"]
            active = [v for v in ready if v["active"]]
            candidates = active + [v for v in reversed(ready) if not v["active"]]  # the active first, then newest
            refused: list[tuple[dict, str]] = []
            for v in candidates:
                try:
                    loaded = self._load(v)
                except ArtefactError as e:
                    refused.append((v, str(e)))
                    continue
                self._swap(kind, loaded)
                break
            else:
                v = loaded = None
            for bad, why in refused:
                self.store.update_version(bad["id"], status="failed", active=False, error=f"refused at start: {why}")
                lines.append(f"model version {bad['id']} ({bad['model']}) refused, not served: {why}")
            if loaded is not None and not v["active"]:
                self.store.set_active(v["id"])
                was = (f"version {refused[0][0]['id']} could not be loaded" if refused and refused[0][0]["active"]
                       else "no version of its kind was active")
                lines.append(f"serving model version {v['id']} ({v['model']}), the newest ready {kind} version that "
                             f"loads, because {was}; it is now the active one")
        self.warnings += lines
        return lines

    def _load(self, v: dict):
        """A stored version in memory: the model and its vocabularies, all read from its artefact."""
        from penchant.models.artefact import load

        folder = self.files.local(v)  # a shared store's copy, fetched and checked
        model = load(folder / "model.npz", mapped=folder / "arrays")  # workers share its pages
        users = {str(u): k for k, u in enumerate(model.user_ids_)}
        if v["kind"] == "preference":
            options = np.asarray(model.option_ids_, dtype=object)
            return DeployedPreference(v["id"], v["model"], model, users, options, {o: k for k, o in enumerate(options)})
        core = AnswerCore(model, self._index(folder, model))
        from penchant.models.two_stage import TwoStage

        if isinstance(model, TwoStage):  # its served lists record which ranker ordered them
            self.impressions.rankers[v["id"]] = model.ranker_identity()
        return Deployed(v["id"], v["model"], model, core.users, core)

    def _index(self, folder: Path, model) -> ItemIndex | None:
        """The version's approximate index (``items.usearch`` beside its artefact, memory-mapped),
        built and saved first if missing, when its catalogue reaches ``ann_min_items`` and its
        scores are inner products; else None (exact scoring)."""
        wanted = self.settings.ann_min_items
        if not wanted or not isinstance(model, DotProduct) or model.n_items_ < wanted:
            return None
        path = folder / "items.usearch"
        if not path.exists():
            ItemIndex.build(model.key_vectors()).save(path)
        return ItemIndex.load(path)

    def import_model(self, source: Path, activate: bool = False) -> int:
        """A model fitted elsewhere (an artefact file) as a new ready version, served without
        retraining; activated when asked or when nothing of its kind is live. Returns its id."""
        import shutil

        from penchant.models.artefact import Artefact, ArtefactError, build

        from penchant.experiment.tasks import TASKS

        art = Artefact.read(source)
        kind = TASKS[art.family].service_kind if art.family in TASKS else None
        if kind is None:
            raise ArtefactError(f"a {art.family} model is not a servable model version", file=source)
        model = build(art, source)  # the whole model rebuilds before anything is recorded
        version = self.store.new_version(art.model, art.params, kind=kind, owner=self.owner)
        try:
            folder = self.models_dir / f"v{version}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / "model.npz")
            if kind == "recommender":
                self._index(folder, model)  # a large catalogue's index, before it can go live
            live = activate or (self.preference if kind == "preference" else self.deployed) is None
            self._go_live(version, art.model, kind, folder, live,
                          metrics={"imported": True, "penchant_version": art.penchant_version})
        except Exception as e:
            self.store.fail_training(version, f"{type(e).__name__}: {e}")
            raise
        return version

    def start_training(self, model: str | None = None, params: dict | None = None, activate: bool = False) -> int:
        """Queue a training run in a background thread through the model's task; returns the new version's id."""
        from penchant.experiment.tasks import task_for
        from penchant.models.registry import convert_params, entry

        name, params = model or self.settings.model, dict(params if params is not None else self.settings.model_params)
        task = task_for(name)  # any servable registered name
        name = entry(name).name
        params = convert_params(name, params)
        task.create(name, params)  # bad parameters fail here, in the request
        # the version and its lease in one transaction; renewed until the job ends (penchant.serve.leases)
        version, lease = self.jobs.create_job(name, params, task.service_kind, activate)
        threading.Thread(target=self._job, args=(version, lambda: self._train(version, task, name, params, activate),
                                                 lease), daemon=True).start()
        return version

    def _run_claimed(self, row: dict) -> None:
        """Run a job this replica claimed after its owner's lease ran out (:class:`~penchant.serve.leases.JobWatch`),
        from the start, with the model, parameters and ``activate`` its version row keeps."""
        from penchant.experiment.tasks import task_for

        version, name, params, activate = row["id"], row["model"], dict(row["params"]), bool(row["job"]["activate"])
        task = task_for(name)
        threading.Thread(target=self._job, args=(version, lambda: self._train(version, task, name, params, activate),
                                                 Lease(self.jobs, version)), daemon=True).start()

    def _job(self, version: int, work, lease: Lease) -> None:
        """Run one training job under the training lock, its ``lease`` renewed until it ends; a
        failure is recorded on the version while this replica still owns it (the service keeps
        running). It trains with penchant's thread count for BLAS (answers use one thread, set
        where the app starts)."""
        from threadpoolctl import threadpool_limits

        from penchant.threads import threads

        try:
            with self._train_lock, threadpool_limits(threads(), user_api="blas"):
                try:
                    work()
                except Exception as e:
                    self.jobs.fail(version, f"{type(e).__name__}: {e}")
                    traceback.print_exc()
        finally:
            lease.stop()

    def _publish(self, version: int, name: str, kind: str, model, metrics: dict, activate: bool) -> None:
        """Save the model's artefact (its vocabularies inside) under ``models/v<version>/``, then
        record it ready with its metrics, live when asked (or when nothing of its kind is live)."""
        folder = self.models_dir / f"v{version}"
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "model.npz")
        self._index(folder, model)  # a large catalogue's index, built before the version can go live
        live = activate or (self.preference if kind == "preference" else self.deployed) is None
        self._go_live(version, name, kind, folder, live, metrics=metrics)

    def _go_live(self, version: int, name: str, kind: str, folder: Path, live: bool, **values) -> None:
        """The last step of a new version, whose artefact is in ``folder``: sync it to disk, then
        record the version ready (with ``values``) and, if ``live``, active, in one transaction.
        A live version is loaded first (a damaged artefact fails here, recorded as nothing) and
        swapped in just before that commit, so whoever waits for "ready" finds it live; if the
        commit fails, the swap is undone."""
        v = {"id": version, "model": name, "kind": kind, "path": str(folder)}
        loaded = self._load(v) if live else None  # its mapped arrays are written here, before the sync
        _durable(folder)
        failpoint("train.after_save")
        with self._deploy_lock:
            previous = self._swap(kind, loaded) if live else None
            failpoint("version.before_ready")
            try:
                self.store.mark_ready(version, activate=live, files=folder, owner=self.owner, path=str(folder),
                                      **values)
            except BaseException:
                if live:
                    self._swap(kind, previous)
                raise
        if live:
            self._bump()

    def _swap(self, kind: str, loaded):
        """Make ``loaded`` this process's version of ``kind`` (one reference: requests in flight keep
        the one they read); returns the one it replaced."""
        if kind == "preference":
            previous, self._preference = self._preference, loaded
        else:
            previous, self._deployed = self._deployed, loaded
        return previous

    def _train(self, version: int, task, name: str, params: dict, activate: bool) -> None:
        """The task's holdout run on what the store holds for the version's kind (events for a
        recommender, comparisons for a preference model), then publish the kept model."""
        data, count = self._training_data[task.service_kind]()
        self.store.update_version(version, progress=0.1, events=count)
        model, metrics = task.holdout(name, params, data)
        failpoint("train.after_fit")
        self.store.update_version(version, progress=0.7)
        self._publish(version, name, task.service_kind, model, metrics, activate)

    @property
    def _training_data(self) -> dict:
        """What a version of each kind is trained on, read from the store: (data, rows read)."""
        def events():
            rows = self.store.all_feedback()
            return events_dataset(rows, self.settings), len(rows)

        def comparisons():
            rows = self.store.all_comparisons()
            return pairs_from_rows(rows), len(rows)

        return {"recommender": events, "preference": comparisons}

    def schedule(self, every_s: float) -> threading.Thread:
        """Retrain (and activate) every ``every_s`` seconds when events arrived since the last run."""
        def loop() -> None:
            last = None
            while True:
                time.sleep(every_s)
                try:
                    events = self.store.counts()["events"]
                    if events and events != last and not self._train_lock.locked():
                        last = events
                        self.start_training(activate=True)
                except Exception:  # a failed check is retried at the next tick
                    traceback.print_exc()

        thread = threading.Thread(target=loop, daemon=True, name="penchant-retrain")
        thread.start()
        return thread

    def wait(self, version: int, timeout: float = 300.0) -> dict:
        """Block until ``version`` is no longer training (tests, CLI)."""
        end = time.time() + timeout
        while time.time() < end:
            v = self.store.version(version)
            if v and v["status"] != "training":
                return v
            time.sleep(0.05)
        raise TimeoutError(f"version {version} still training after {timeout} s")

    def activate(self, version: int) -> Deployed:
        v = self.store.version(version)
        if v is None or v["status"] != "ready":
            raise NotFoundError(f"version {version} is not a ready model version")
        return self._deploy(v)

    def _deploy(self, v: dict):
        """Load the ready version ``v`` and make it the active one of its kind, here and in the store
        (the swap undone if the store refuses); then tell the other workers."""
        deployed = self._load(v)
        with self._deploy_lock:
            previous = self._swap(v["kind"], deployed)
            try:
                self.store.set_active(v["id"])
            except BaseException:
                self._swap(v["kind"], previous)
                raise
        self._bump()
        return deployed

    def rollback(self) -> Deployed:
        ready = [v for v in self.store.versions() if v["status"] == "ready" and v["kind"] == "recommender"]
        current = self.deployed.version if self.deployed else None
        before = [v for v in ready if current is None or v["id"] < current]
        if not before:
            raise ConflictError("no earlier ready version to roll back to")
        return self.activate(before[-1]["id"])

    # --- answers ---------------------------------------------------------------------------------

    def items_changed(self) -> None:
        self._clear_item_caches()
        self._bump()

    def _clear_item_caches(self) -> None:
        self._categories = None
        self._category_masks = {}
        for callback in self.on_items_changed:
            callback()

    def categories(self) -> dict[str, set[str]]:
        cache = self._categories
        if cache is None:
            cache = self._categories = {r["id"]: set(r["categories"] or []) for r in self.store.get_items()}
        return cache

    def history(self, d: Deployed, events: list[tuple[str, str]]):
        """A user's stored positive events on ``d``'s items as a CSR row (1, n_items) of summed
        feedback weights: the fold-in history of a user the model does not rank."""
        kinds = {k for k, m in self.settings.feedback_types.items() if m == "positive"}
        positive = [(d.item_index[i], self.settings.weight(kind)) for i, kind in events
                    if kind in kinds and i in d.item_index]
        return d.core.history(np.array([p[0] for p in positive], dtype=np.int64),
                              np.array([p[1] for p in positive], dtype=np.float32))

    def user_scores(self, d: Deployed, user_id: str, events: list[tuple[str, str]]) -> tuple[np.ndarray, str]:
        """float64 (n_items,) scores of ``d``'s items for a user and which source gave them (the
        answer core's rule: the model for a user it ranks, a fold-in from their positive events,
        else popularity)."""
        scores, source = d.core.scores(user_id, self.history(d, events))
        return scores.astype(np.float64), d.source(source)

    def recommend(self, user_id: str, k: int, *, category: str | None = None, exclude: list[str] | None = None,
                  exclude_seen: bool = True, epsilon: float | None = None, explore: str | None = None,
                  counts: tuple[int, int, int] | None = None) -> dict:
        """Top ``k`` items for a user: the model's scores for a known user, a fold-in from their
        events for a user the model has not seen (where the model can), else popularity. Each
        served list gets a ``list_id`` and each item its ``propensity``; with ``epsilon`` (default:
        the ``exploration_epsilon`` setting) above 0, slots explore (:mod:`penchant.serve.impressions`);
        ``explore="thompson"`` serves a Thompson list instead (:meth:`_thompson`)."""
        if explore == "thompson":
            if epsilon is not None:
                raise DataError("explore: thompson takes no epsilon (the rate of explore=epsilon-greedy); "
                                "leave epsilon out or ask for explore=epsilon-greedy")
            return self._thompson(user_id, k, category, exclude, exclude_seen, counts)
        eps = self.settings.exploration_epsilon if epsilon is None else float(epsilon)
        d, changes, events = self._current(user_id, counts)
        if d is not None and eps > 0:
            return self._explore(d, user_id, k, category, exclude, exclude_seen, eps)
        if d is not None:  # an answer cached since nothing it depends on changed (see penchant.serve.answers)
            key = (user_id, k, category, tuple(exclude or ()), exclude_seen)
            stamp = (d.version, changes, events)
            cached = self.answers.get(key, stamp)
            if cached is None:
                cached = self._recommend(d, user_id, self.store.user_items(user_id), k, category, exclude, exclude_seen)
                self.answers.put(key, stamp, cached)
            return self.impressions.served(cached, user_id, d.version, "greedy")
        answer = self._popular_from_store(k, self.store.user_items(user_id), category, exclude, exclude_seen)
        return self.impressions.served(answer, user_id, None, "popular")

    def _banned(self, d: Deployed, events: list[tuple[str, str]], category: str | None, exclude: list[str] | None,
                exclude_seen: bool) -> np.ndarray | None:
        """bool (n_items,) of what the request bans beyond the answer core's own rule: the ids in
        ``exclude``, every stored event's item (any meaning) while ``exclude_seen``, items outside
        ``category``; None when nothing."""
        banned = set(exclude or []) | ({i for i, _ in events} if exclude_seen else set())
        if not banned and category is None:
            return None
        mask = np.zeros(len(d.item_ids), dtype=bool)
        mask[[d.item_index[i] for i in banned if i in d.item_index]] = True
        if category is not None:
            mask |= self._outside(d, category)
        return mask

    def _recommend(self, d: Deployed, user_id: str, events: list[tuple[str, str]], k: int, category: str | None,
                   exclude: list[str] | None, exclude_seen: bool) -> dict:
        # a user the model ranks needs no history row: their stored events are banned below, and fold-in is not used
        history = None if d.core.known(user_id) >= 0 else self.history(d, events)
        ranked = d.core.rank([user_id], k, history=history,
                             banned=self._banned(d, events, category, exclude, exclude_seen), exclude_seen=exclude_seen)[0]
        if d.core.index is not None and ranked.source in (MODEL, APPROXIMATE):
            self.ann_counts["approximate" if ranked.source == APPROXIMATE else "exact"] += 1
        return {"user": user_id, "model": d.source(ranked.source), "items": _listed(d.item_ids, ranked)}

    def _explore(self, d: Deployed, user_id: str, k: int, category: str | None, exclude: list[str] | None,
                 exclude_seen: bool, epsilon: float) -> dict:
        """An ε-greedy list (never cached: each request draws afresh)."""
        events = self.store.user_items(user_id)
        history = self.history(d, events)
        scores, source = d.core.scores(user_id, history)
        banned = self._banned(d, events, category, exclude, exclude_seen)
        mask = d.core.mask(np.array([d.core.known(user_id)]), history, banned, exclude_seen)[0]
        items, values = top_k(np.where(mask, -np.inf, scores)[None, :], k)  # the scores above, not a second scoring
        greedy = items[0][np.isfinite(values[0])].astype(np.int64)
        mask[greedy] = True
        shown, propensity, slate = explore(np.flatnonzero(~mask), greedy, epsilon, self._explore_rng)
        answer = {"user": user_id, "model": d.source(source),
                  "items": [{"id": str(d.item_ids[i]), "score": float(scores[i])} for i in shown]}
        return self.impressions.served(answer, user_id, d.version, f"epsilon-greedy:{epsilon:g}", propensity, slate)

    def _thompson(self, user_id: str, k: int, category: str | None, exclude: list[str] | None,
                  exclude_seen: bool, counts: tuple[int, int, int] | None = None) -> dict:
        """A Thompson list: one of ``thompson_draws`` lists, each ranked by one draw of the user's
        vector from the deployed model's posterior (ALS: N(x̂_u, σ²(YᵀC_uY + λI)⁻¹), σ² the
        ``thompson_noise`` setting; :meth:`penchant.models.als.ALS.sample_user_vectors`), chosen
        uniformly, with the shares of the N lists as propensities (:func:`penchant.serve.impressions.thompson`).
        The N lists are kept per user and request (:attr:`thompson_lists`) while the user's answers
        stay valid (same version, no change, no new event of theirs). Scored exactly (never
        through the approximate index); the request's bans apply to every draw. A user the model
        neither ranks nor has events for draws from the posterior of an empty history (mean 0)."""
        d, changes, events = self._current(user_id, counts)
        if d is None:
            raise ConflictError("explore: thompson samples a deployed model's posterior; no model is deployed yet")
        if not isinstance(d.model, UserPosterior):
            raise ConflictError(f"explore: thompson samples the posterior of a user's vector, which the deployed "
                                f"model {d.label} does not have (als has one); use explore=epsilon-greedy")
        noise, draws = self.settings.thompson_noise, self.settings.thompson_draws
        key = (user_id, k, category, tuple(exclude or ()), exclude_seen, noise, draws)
        stamp = (d.version, changes, events)
        drawn = self.thompson_lists.get(key, stamp)
        if drawn is None:
            events = self.store.user_items(user_id)
            u = d.core.known(user_id)
            history = None if u >= 0 else self.history(d, events)
            mask = d.core.mask(np.array([u]), history, self._banned(d, events, category, exclude, exclude_seen),
                               exclude_seen)[0]
            drawn = thompson_lists(d.model, draws, k, self._explore_rng, noise=noise, user=u, banned=mask,
                                   items=None if history is None else history.indices,
                                   values=None if history is None else history.data)
            self.thompson_lists.put(key, stamp, drawn)
        shown, scores, propensity, slate = thompson(*drawn, self._explore_rng)
        answer = {"user": user_id, "model": d.label + "+thompson",
                  "items": [{"id": str(d.item_ids[i]), "score": float(v)} for i, v in zip(shown, scores)]}
        return self.impressions.served(answer, user_id, d.version, f"thompson:{noise:g}", propensity, slate)

    def _outside(self, d: Deployed, category: str) -> np.ndarray:
        """bool (n_items,): the deployed items *not* in ``category`` (cached per version)."""
        key = (d.version, category)
        mask = self._category_masks.get(key)
        if mask is None:
            cats = self.categories()
            mask = self._category_masks[key] = np.array([category not in cats.get(str(i), ()) for i in d.item_ids])
        return mask

    def popular(self, k: int, *, category: str | None = None, days: float | None = None) -> dict:
        """The ``k`` items with the most positive events (of the last ``days`` if given), ties by id."""
        positive = [t for t, m in self.settings.feedback_types.items() if m == "positive"]
        counts = self.store.item_counts(positive, since=None if days is None else time.time() - days * 86400)
        cats = self.categories() if category is not None else None
        top = sorted(((c, i) for i, c in counts.items() if cats is None or category in cats.get(i, ())),
                     key=lambda ci: (-ci[0], ci[1]))[:k]
        return {"model": "popular" if days is None else f"popular (last {days:g} days)",
                "items": [{"id": i, "score": float(c)} for c, i in top]}

    def neighbours(self, user_id: str, k: int) -> dict:
        """The ``k`` users most like ``user_id`` (the answer core's cosine of item sets over the
        deployed model's training users; a user it does not rank: by their stored events)."""
        d = self.deployed
        if d is None:
            raise ConflictError("no model is deployed yet; neighbours are computed over a deployed model's data")
        history = d.core.history(np.array([d.item_index[i] for i, _ in self.store.user_items(user_id)
                                           if i in d.item_index], dtype=np.int64))
        near = d.core.neighbours(user_id, k, history)
        return {"user": user_id, "model": d.label, "users": _listed(d.core.user_ids, near)}

    def _popular_from_store(self, k, events, category, exclude, exclude_seen) -> dict:
        positive = [t for t, m in self.settings.feedback_types.items() if m == "positive"]
        counts = self.store.item_counts(positive)
        banned = set(exclude or []) | ({i for i, _ in events} if exclude_seen else set())
        cats = self.categories() if category is not None else None
        top = sorted(((c, i) for i, c in counts.items() if i not in banned and (cats is None or category in cats.get(i, ()))),
                     key=lambda ci: (-ci[0], ci[1]))[:k]
        return {"items": [{"id": i, "score": float(np.log1p(c))} for c, i in top], "model": "popular (no model yet)"}

    def recommend_session(self, items: list[str], k: int, *, exclude_seen: bool = True) -> dict:
        """Top ``k`` for an anonymous session (recent item ids, oldest first), by the answer core:
        a deployed sequential model reads the session in order; otherwise a fold-in from the items;
        else popularity. Unknown item ids are skipped and counted."""
        d = self.deployed
        if d is None:
            raise ConflictError("no model is deployed yet")
        ranked, unknown = d.core.session(items, k, exclude_seen=exclude_seen)
        return {"model": d.source(ranked.source), "unknown_items": unknown, "items": _listed(d.item_ids, ranked)}

    def compare(self, user_id: str | None, options: list[str]) -> dict:
        """Score ``options`` for a user with the deployed preference model (the answer core's
        :func:`~penchant.experiment.answers.rank_options`)."""
        p = self.preference
        if p is None:
            raise ConflictError("no preference model is deployed; train one (e.g. pbt) on stored comparisons")
        user = p.user_index.get(user_id, -1) if user_id is not None else -1
        return {"model": p.label, **rank_options(p.model, p.option_ids, user, options)}

    def similar(self, item_id: str, k: int) -> dict:
        d = self.deployed
        if d is None or item_id not in d.item_index:
            raise NotFoundError(f"item {item_id!r} is not in the deployed model")
        return {"item": item_id, "model": d.label, "items": _listed(d.item_ids, d.core.similar_items(item_id, k))}
