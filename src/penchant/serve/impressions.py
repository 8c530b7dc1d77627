"""What the service shows, recorded: every served list gets an id, each of its items a propensity,
and (with ``log_impressions``) a row in the store's ``served_lists`` table (items in order, their
propensities, the list's probability, version, policy, time, and for a two-stage version the
ranker's identity, ``ranker``: its name and artefact digest, :meth:`~penchant.models.two_stage.TwoStage.ranker_identity`).

Exploration (ε-greedy over the eligible items): each slot of the greedy list independently shows,
with probability ε, a random item among the M eligible items outside the greedy list, drawn without
replacement across the explored slots. By symmetry each explored slot's item is uniform over the M,
so the propensities are exact:

* a greedy item at its slot: 1 − ε; an explored item at its slot: ε / M;
* the whole list: (1 − ε)^(k − m) · ε^m / (M (M − 1) … (M − m + 1)) with m slots explored.

Exploration by Thompson sampling (``?explore=thompson``, :func:`thompson`): the list is one of N
lists ranked by N draws of the user's vector from the model's posterior
(:func:`penchant.models.posterior.thompson_lists`), chosen uniformly; each item's propensity is the
share of the N lists with that item at its slot and the list's is the share equal to it
(:func:`penchant.models.posterior.list_propensities`). They are exact for the policy that served the
list, "one of these N lists, uniformly", and Monte-Carlo estimates of the fresh-draw Thompson
probabilities p: (1 + B)/N with B ~ Binomial(N − 1, p), variance (N − 1)p(1 − p)/N², never 0.

Rows are buffered and written by one background thread (at least once a second, and whenever a
thousand are waiting), so a request never waits for the database; :meth:`ImpressionLog.close`
writes what is left when the service stops.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import numpy as np

from penchant.models.posterior import list_propensities
from penchant.serve.store import Store

FLUSH_ROWS = 1000
FLUSH_S = 1.0
log = logging.getLogger("penchant.serve")


def explore(candidates: np.ndarray, greedy: np.ndarray, epsilon: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """ε-greedy over a greedy list (item indices (k,)) with ``candidates`` (indices (M,), outside it).

    Returns the shown indices (k,), their propensities (k,) and the list's probability. With fewer
    candidates than slots nothing is explored (propensity 1), so the stated probabilities stay exact.
    """
    k, m_pool = len(greedy), len(candidates)
    if epsilon <= 0.0 or m_pool < k:
        return greedy, np.ones(k), 1.0
    explored = rng.random(k) < epsilon
    m = int(explored.sum())
    shown = greedy.copy()
    shown[explored] = rng.choice(candidates, size=m, replace=False)
    propensity = np.where(explored, epsilon / m_pool, 1.0 - epsilon)
    slate = (1.0 - epsilon) ** (k - m) * epsilon ** m / float(np.prod(np.arange(m_pool, m_pool - m, -1, dtype=np.float64)))
    return shown, propensity, float(slate)


def thompson(lists: np.ndarray, scores: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One of N Thompson lists (item indices (N, k), their sampled scores (N, k)), chosen uniformly.

    Returns the shown indices (k,), their sampled scores (k,), their propensities (k,) and the
    list's probability, each the share of the N lists that agree (see the module).
    """
    j = int(rng.integers(len(lists)))
    propensity, slate = list_propensities(lists, lists[j])
    return lists[j], scores[j], propensity, slate


class ImpressionLog:
    """Stamps served lists and writes their rows to the store in the background (see the module)."""

    def __init__(self, store: Store, enabled: bool = True) -> None:
        self.store, self.enabled = store, enabled
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: version -> its ranker's identity (two-stage versions only; filled as the host loads them)
        self.rankers: dict[int, str] = {}
        self._thread: threading.Thread | None = None

    def served(self, answer: dict, user_id: str, version: int | None, policy: str,
               propensity: np.ndarray | None = None, slate_propensity: float = 1.0) -> dict:
        """A copy of ``answer`` with a new ``list_id`` and each item's ``propensity``, recorded."""
        list_id = uuid.uuid4().hex
        probs = np.ones(len(answer["items"])) if propensity is None else propensity
        items = [{**item, "propensity": float(p)} for item, p in zip(answer["items"], probs)]
        if self.enabled and items:
            row = {"list_id": list_id, "user_id": user_id, "items": [item["id"] for item in items],
                   "propensities": [item["propensity"] for item in items], "slate_propensity": slate_propensity,
                   "version": version, "ranker": self.rankers.get(version) if version is not None else None,
                   "policy": policy, "timestamp": time.time()}
            with self._lock:
                self._rows.append(row)
                waiting = len(self._rows)
            self._start()
            if waiting >= FLUSH_ROWS:
                self._wake.set()
        return {**answer, "list_id": list_id, "items": items}

    def flush(self) -> int:
        """Write what is waiting now; returns how many rows."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            self.store.insert_served_lists(rows, fresh=True)
        except Exception:
            with self._lock:  # kept, in order, for the next try
                self._rows[:0] = rows
            raise
        return len(rows)

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the database is away: keep serving; the rows wait for the next try
                log.exception("writing impressions failed; retrying")
                time.sleep(FLUSH_S)
