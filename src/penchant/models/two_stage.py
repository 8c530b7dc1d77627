"""Two stages in one model: a retriever picks each user's candidates, a CTR ranker orders them.

:class:`TwoStage` (``rerank``) is a ranking-family :class:`~penchant.models.base.Recommender`, so
``penchant fit``, ``penchant recommend``, the answer core and the service take it as they take any
other model, and one artefact holds both stages.

The ranker sees what the retriever knows. Every row it learns from or scores carries, beside the
log's categorical user and item attributes, four numeric features (:data:`EVIDENCE`): the
retriever's score of the pair, its rank among the user's candidates (``log1p``; for an item outside
the candidates, how many candidates score above it), the user's history length and the item's
popularity (users per item; both ``log1p``), standardised over the training rows.

Fit, on one log:

1. the retriever: a registered ranking or sequential model fitted on the log, or a fitted artefact
   (``retriever=PATH.npz``) loaded as it is (its users and items must be the log's, in the log's order);
2. the ranker's rows (``labels``):

   - ``later`` (learning to rank as two-stage recommenders train it): each user's last ``later``
     events by time are held out; a copy of the retriever (same model, same parameters) is fitted
     on the earlier part; its top ``candidates`` unseen items of each user are the rows, labelled 1
     where the item is one of the user's held-out later items, with the evidence of that earlier
     model (so the rows are built the way the lists will be scored);
   - ``rating``: every rated row is an impression labelled ``rating >= 4`` (the RecBole convention);
   - ``observed``: every observed row is a positive and each user's top unseen candidates, as many
     as the user has positives (at most ``candidates``), are the negatives;
   - ``auto`` (default): ``later`` where the log has timestamps, else ``observed``;

3. the ranker (a ``ctr`` model) fitted with early stopping on 10% of those rows: a random 10% of
   the users' whole lists with ``later`` labels, a random 10% of the rows otherwise.

Scores of a user (float32 (n_items,)): the retriever's top ``candidates`` unseen items get the
ranker's click probability, in [0, 1]; every other item gets its retriever score shifted below
0 (``s - max(s) - 1``), so a list is the candidates re-ranked, then the rest in the retriever's
order, and every score is finite (a caller that bans candidates still gets a full list).

Scoring reads per-user and per-item code tables encoded once at fit through the ranker's own
:class:`~penchant.data.ctr.FeatureVocabulary` (every user and item of the model is in it, so none is
unseen), and the ranker's :meth:`~penchant.models.ctr.base.CTRModel.predict_logits` directly (one
forward pass over a request's candidates, no per-request data object). A ranker that reads the
user's history (``needs_history``) gets each user's latest positives of the log.

Fold-in (:class:`~penchant.models.protocols.FoldIn`, where the retriever has it): a user the model
does not know, given by their items, is answered through both stages: the retriever's fold-in
scores pick the candidates, the ranker orders them with the user's fields out of vocabulary (OOV),
the given items as history (in the order given) and their number as the history length.

The ranker's identity (:meth:`TwoStage.ranker_identity`: its name and a digest of its embedded
artefact) is what the service's served-list log records beside the version.

Simplifications: no feature files (the log's own attributes only); no time-of-day fields (a
recommendation request carries no time); no ``partial_fit``; the ``later`` rows come from one
cut (the last events of each user), not several.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.data.ctr import CTRData, ctr_from_log, random_rows, user_history
from penchant.data.split import leave_last_out
from penchant.errors import ConfigError, DataError
from penchant.models.artefact import Artefact, build
from penchant.models.base import Recommender, Validator
from penchant.models.protocols import FoldIn
from penchant.models.ranking import chunk_size, top_k
from penchant.models.registry import create, entry, register

#: the ranker's early-stopping share of its rows
VALID_SHARE = 0.1
#: label rule of rated logs (RecBole's)
LABEL = "rating>=4"
#: history length given to rankers that read one
HISTORY = 50
#: the first stage's evidence, numeric features of every row the ranker reads (see the module)
EVIDENCE = ("retriever_score", "retriever_rank", "history_length", "item_popularity")
LABELS = ("auto", "later", "rating", "observed")
_META = "__meta__"


@register
class TwoStage(Recommender):
    """Retrieve candidates with one model, re-rank them with a CTR model (two stages, one artefact).

    Args:
        retriever: a registered ranking or sequential model name (fitted on the same log) or the
            path of a fitted model artefact (.npz; loaded, not refitted).
        ranker: a registered ctr model name (lr, ctr-fm, deepfm, dcnv2, awmoe, lambdarank, ...).
        candidates: items per user the retriever hands to the ranker.
        ranker_params: the ranker's parameters, ``key=value`` pairs separated by ``;``
            (e.g. ``epochs=5;dims=8``); empty: its defaults.
        retriever_params: the retriever's parameters in the same form (a name only).
        labels: the ranker's rows: ``later`` (a copy of the retriever fitted without each user's
            last ``later`` events; its candidates labelled by those events), ``rating`` (rated rows,
            rating >= 4), ``observed`` (observed rows positive, the retriever's top unseen candidates
            negative) or ``auto`` (``later`` where the log has timestamps, else ``observed``).
        later: with ``labels=later``, the events per user held out as the later items (users with
            no more events than this give no rows).
        seed: the split of the ranker's rows, and the ranker's seed where it has one.
    """

    name = "rerank"
    aliases = ("two-stage",)
    summary = "two stages: a retriever's top candidates re-ranked by a CTR model that reads the retriever's evidence (one artefact)"

    def __init__(self, *, retriever: str = "ease", ranker: str = "deepfm", candidates: int = 100,
                 ranker_params: str = "", retriever_params: str = "", labels: str = "auto", later: int = 3,
                 seed: int = DEFAULT_SEED) -> None:
        if candidates < 1:
            raise ConfigError(f"model 'rerank': candidates must be at least 1, not {candidates}")
        if labels not in LABELS:
            raise ConfigError(f"model 'rerank': labels must be one of {', '.join(LABELS)}, not {labels!r}")
        if later < 1:
            raise ConfigError(f"model 'rerank': later must be at least 1, not {later}")
        self.labels, self.later = labels, later
        self.retriever, self.ranker, self.candidates = retriever, ranker, candidates
        self.ranker_params, self.retriever_params, self.seed = ranker_params, retriever_params, seed

    # ----- fit -------------------------------------------------------------------------------------
    def _fit(self, train: Dataset, valid: Validator | None) -> None:
        self.retriever_ = self._retriever(train, valid)
        ranker_args = _pairs(self.ranker_params, "ranker_params")
        entry(self.ranker, "ctr")  # a one-line error before any row is built
        if any(p.name == "seed" for p in entry(self.ranker).params()) and "seed" not in ranker_args:
            ranker_args["seed"] = str(self.seed)
        self.ranker_ = create(self.ranker, family="ctr", **ranker_args)
        rows = self._rows(train)
        fit_part, stop_part = _stop_split(rows, self.seed) if self.label_rule_ == "later" else \
            random_rows(rows, (1 - VALID_SHARE, VALID_SHARE), seed=self.seed)
        self.ranker_.fit(fit_part, stop_part if stop_part.n else None)
        self.rows_ = (rows.n, int(rows.label.sum()))
        self.check_ = None  # NDCG@10 of the held-out users' later items: (ranker's order, retriever's order)
        if self.label_rule_ == "later" and stop_part.label.any():
            rank = stop_part.dense[:, EVIDENCE.index("retriever_rank")]
            self.check_ = (_list_ndcg(stop_part, self.ranker_.predict_logits(stop_part)), _list_ndcg(stop_part, -rank))
        self._tables(train)
        self._identity = _digest(_embedded("ranker", self.ranker_), "ranker.")
        self._offer_fold_in()

    def _retriever(self, train: Dataset, valid: Validator | None) -> Recommender:
        if self.retriever.endswith(".npz") or Path(self.retriever).is_file():
            if self.retriever_params:
                raise ConfigError("model 'rerank': retriever_params apply to a retriever fitted here, not a loaded one")
            model = Recommender.load(self.retriever)
            if model.family not in ("ranking", "sequential") or isinstance(model, TwoStage):
                raise ConfigError(f"model 'rerank': {self.retriever} holds a {model.family} model ({model.name}); "
                                  "the retriever must be a ranking or sequential model")
            if not (np.array_equal(model.user_ids_, self.user_ids_) and np.array_equal(model.item_ids_, self.item_ids_)):
                raise DataError(f"the retriever {self.retriever} was fitted on other users or items than "
                                f"{train.name} ({model.n_users_:,} users, {model.n_items_:,} items; the log: "
                                f"{train.n_users:,}, {train.n_items:,})", expected="the retriever's own training log")
            return model
        found = entry(self.retriever, ("ranking", "sequential"))
        if found.cls is TwoStage:
            raise ConfigError("model 'rerank': the retriever cannot itself be a two-stage model")
        return create(found.name, family=("ranking", "sequential"),
                      **_pairs(self.retriever_params, "retriever_params")).fit(train, valid)

    def _label_rule(self, train: Dataset) -> str:
        if self.labels != "auto":
            return self.labels
        return "later" if train.timestamps is not None else "observed"

    def _rows(self, train: Dataset) -> CTRData:
        """The ranker's training rows (see the module for the labels), with the evidence features."""
        rule = self.label_rule_ = self._label_rule(train)
        if rule == "later":
            return self._later_rows(train)
        if rule == "rating":
            evidence = _evidence_of(self.retriever_, train.csr, train.users, train.items, self.candidates)
            return ctr_from_log(train, label=LABEL, time_fields=False, max_history=HISTORY, row_dense=evidence,
                                name=f"{train.name} rows")
        users = np.arange(train.n_users)
        items, scores = self.retriever_.recommend(users, k=self.candidates)
        positives = np.bincount(train.users, minlength=train.n_users)
        keep = (np.arange(items.shape[1])[None, :] < positives[:, None]) & np.isfinite(scores)
        neg_u, neg_i = np.repeat(users, keep.sum(1)), items[keep]
        labelled = Dataset(train.user_ids, train.item_ids, np.concatenate([train.users, neg_u]).astype(np.int32),
                           np.concatenate([train.items, neg_i]).astype(np.int32),
                           ratings=np.concatenate([np.ones(len(train.users)), np.zeros(len(neg_u))]).astype(np.float32),
                           user_attributes=train.user_attributes, item_attributes=train.item_attributes,
                           name=train.name)
        evidence = _evidence_of(self.retriever_, train.csr, labelled.users, labelled.items, self.candidates)
        return ctr_from_log(labelled, label="rating>=1", time_fields=False, row_dense=evidence, name=f"{train.name} rows")

    def _later_rows(self, train: Dataset) -> CTRData:
        """Rows of ``labels=later``: the candidates of a copy of the retriever fitted on each user's
        earlier events, labelled by whether each is one of the user's ``later`` last events."""
        if train.timestamps is None:
            raise DataError(f"labels=later holds out each user's last events by time; {train.name} has no time column",
                            expected="a timestamp column (or labels=observed)")
        cut = leave_last_out(train, n_test=self.later, n_valid=0)
        earlier, later = cut.train, cut.test
        users = np.unique(later.users).astype(np.int64)
        if len(users) == 0:
            raise DataError(f"{train.name}: no user has more than {self.later} events to hold out for the ranker's "
                            "labels", expected="users with several events (or labels=observed)")
        copy = create(self.retriever_.name, family=("ranking", "sequential"), **self.retriever_.params()).fit(earlier)
        items, values = copy.recommend(users, k=self.candidates)
        real = np.isfinite(values)
        row_user = np.repeat(users, real.sum(1))
        row_item = items[real].astype(np.int64)
        label = np.asarray(later.csr[row_user, row_item]).ravel() > 0
        seen = earlier.csr
        evidence = _evidence(values[real], np.broadcast_to(np.arange(items.shape[1]), items.shape)[real],
                             np.diff((seen > 0).indptr)[row_user], _popularity(seen)[row_item])
        labelled = Dataset(train.user_ids, train.item_ids, row_user.astype(np.int32), row_item.astype(np.int32),
                           ratings=label.astype(np.float32), user_attributes=train.user_attributes,
                           item_attributes=train.item_attributes, name=train.name)
        rows = ctr_from_log(labelled, label="rating>=1", time_fields=False, row_dense=evidence,
                            name=f"{train.name} rows (later {self.later})")
        if getattr(self.ranker_, "needs_history", False):
            rows = replace(rows, history=_histories(earlier, HISTORY)[row_user])
        return rows

    def _tables(self, train: Dataset) -> None:
        """Per-user and per-item feature ids through the ranker's vocabulary, the evidence's
        per-user and per-item parts, and histories."""
        vocab = self.ranker_.vocabulary_
        if vocab.dense_names != EVIDENCE:
            raise DataError("the two-stage model reads categorical side information and the retriever's evidence "
                            f"only; the ranker's rows have numeric features {', '.join(vocab.dense_names)}")
        n_u, n_i = train.n_users, train.n_items
        grid = Dataset(train.user_ids, train.item_ids,
                       np.concatenate([np.arange(n_u), np.zeros(n_i)]).astype(np.int32),
                       np.concatenate([np.zeros(n_u), np.arange(n_i)]).astype(np.int32),
                       ratings=np.ones(n_u + n_i, np.float32), user_attributes=train.user_attributes,
                       item_attributes=train.item_attributes, name=train.name)
        rows = ctr_from_log(grid, label="rating>=1", time_fields=False)
        if rows.fields != vocab.fields or rows.n_features != vocab.n_features:
            raise DataError("the ranker's vocabulary does not match the log's side information")  # pragma: no cover
        source = np.asarray(vocab.sources)[vocab.slot_field]
        self.user_codes_ = rows.codes[:n_u][:, source == "user"]
        self.item_codes_ = rows.codes[n_u:][:, source == "item"]
        self.history_length_ = np.diff((self.train_ > 0).indptr).astype(np.float64)
        self.popularity_ = _popularity(self.train_)
        self.history_ = None
        if getattr(self.ranker_, "needs_history", False):
            if train.timestamps is None:  # pragma: no cover - the ranker's fit refused it already
                raise DataError(f"{self.ranker} reads histories; {train.name} has no time column")
            self.history_ = _histories(train, self.ranker_.history_length_)

    # ----- scores ----------------------------------------------------------------------------------
    def candidate_lists(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first stage for user indices: the retriever's scores float32 (n, n_items), its top
        ``candidates`` unseen items int32 (n, c) and whether each is a real candidate, bool (n, c)
        (False where a user has fewer unseen items)."""
        users = np.asarray(users, dtype=np.int64)
        scores = np.asarray(self.retriever_.score(users), dtype=np.float32)
        masked = scores.copy()
        rows, cols = _seen_cells(self.train_, users)  # the users' seen items, without slicing the matrix
        masked[rows, cols] = -np.inf
        items, values = top_k(masked, self.candidates)
        return scores, items, np.isfinite(values)

    def rerank_rows(self, users: np.ndarray, items: np.ndarray) -> CTRData:
        """The ranker's rows for (user, item) index pairs, int64 (m,) each: codes gathered from the
        fitted tables in the vocabulary's slot order, the evidence of the fitted retriever (rank:
        how many of the user's candidates score above the item), histories where read."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        vocab = self.ranker_.vocabulary_
        evidence = _evidence_of(self.retriever_, self.train_, users, items, self.candidates)
        codes, dense = self._encoded(self.user_codes_[users], items, evidence)
        history = None if self.history_ is None else self.history_[users]
        return CTRData(np.zeros(len(users), np.float32), users, items, codes, vocab.slot_field, vocab.fields,
                       vocab.n_features, dense, vocab.dense_names, history, users, vocab,
                       self.user_ids_, self.item_ids_, name="candidates")

    def _encoded(self, user_codes: np.ndarray, items: np.ndarray, evidence: dict[str, np.ndarray],
                 ) -> tuple[np.ndarray, np.ndarray]:
        """codes int64 (m, S) from per-row user codes (m, S_user) and item indices (m,); dense
        float32 (m, D): the evidence standardised as at fit."""
        vocab = self.ranker_.vocabulary_
        user_slots, item_slots, context = self._slots
        codes = np.empty((len(items), len(vocab.slot_field)), dtype=np.int64)
        codes[:, user_slots] = user_codes
        codes[:, item_slots] = self.item_codes_[items]
        codes[:, context] = self._context_codes
        dense = np.stack([vocab.standardise(evidence[n], d) for d, n in enumerate(vocab.dense_names)], axis=1)
        return codes, dense.astype(np.float32)

    @property
    def _slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks of the user, item and context slots of a row (cached per loaded model)."""
        cached = self.__dict__.get("_slot_masks")
        if cached is None:
            vocab = self.ranker_.vocabulary_
            source = np.asarray(vocab.sources)[vocab.slot_field]
            cached = self._slot_masks = (source == "user", source == "item", source == "context")
        return cached

    @property
    def _context_codes(self) -> np.ndarray:
        """int64 (S_context,): the OOV id of each context slot (a request carries no context)."""
        vocab = self.ranker_.vocabulary_
        return np.array([vocab.offsets[f + 1] - 1 for f in vocab.slot_field[self._slots[2]]], dtype=np.int64)

    def _reranked(self, scores: np.ndarray, items: np.ndarray, real: np.ndarray, user_codes: np.ndarray,
                  history_length: np.ndarray, history: np.ndarray | None) -> np.ndarray:
        """Both stages' scores float32 (n, n_items) from the retriever's ``scores`` (n, n_items), its
        candidates ``items`` int32 (n, c) (``real``: bool (n, c)), each user's codes (n, S_user),
        history lengths (n,) and histories (n, L) or None."""
        finite = np.isfinite(scores)
        top = np.max(np.where(finite, scores, -np.inf), axis=1, keepdims=True)
        out = np.where(finite, scores - np.where(np.isfinite(top), top, 0) - 1.0, -np.inf).astype(np.float32)
        rows = np.repeat(np.arange(len(scores)), real.sum(1))
        if not len(rows):
            return out
        cand = items[real].astype(np.int64)
        rank = np.broadcast_to(np.arange(items.shape[1]), items.shape)[real]
        evidence = _evidence(scores[rows, cand], rank, history_length[rows], self.popularity_[cand])
        codes, dense = self._encoded(user_codes[rows], cand, evidence)
        out[rows, cand] = _sigmoid32(self.ranker_.logits(codes, dense, None if history is None else history[rows]))
        return out

    def _score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        scores, items, real = self.candidate_lists(users)
        history = None if self.history_ is None else self.history_[users]
        return self._reranked(scores, items, real, self.user_codes_[users], self.history_length_[users], history)

    # ----- fold-in ---------------------------------------------------------------------------------
    #: fold-in, ``score_history(items, values=None) -> float32 (n_items,)`` (see the module): set on
    #: the instance to :meth:`_score_history` where the retriever folds in; None (the protocols' way of
    #: blocking a method, so ``isinstance(model, FoldIn)`` is False) where it does not
    score_history: Any = None

    def _offer_fold_in(self) -> None:
        if isinstance(self.retriever_, FoldIn):
            self.score_history = self._score_history

    def _score_history(self, items: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        given = np.asarray(items, dtype=np.int64)
        unique = np.unique(given)
        scores = np.asarray(self.retriever_.score_history(given, values), dtype=np.float32)[None, :]
        seen = sp.csr_matrix((np.ones(len(unique), np.float32), unique, np.array([0, len(unique)])),
                             shape=(1, self.n_items_))
        cand, vals = top_k(scores.copy(), self.candidates, seen)
        history = None
        if self.history_ is not None:
            length = self.history_.shape[1]
            last = given[-length:]
            history = np.concatenate([np.full(length - len(last), self.n_items_), last])[None, :].astype(np.int64)
        return self._reranked(scores, cand, np.isfinite(vals), self._stranger_codes[None, :],
                              np.array([len(unique)]), history)[0]

    @property
    def _stranger_codes(self) -> np.ndarray:
        """int64 (S_user,): a user the model does not know: every user field OOV (padding past a
        multi-valued field's first slot)."""
        vocab = self.ranker_.vocabulary_
        return np.concatenate([vocab.encode_field(f, [""])[0] for f, src in zip(vocab.fields, vocab.sources)
                               if src == "user"]).astype(np.int64)

    # ----- what the ranker is, for the served-list log ---------------------------------------------
    def ranker_identity(self) -> str:
        """``name:digest``: the ranker's registry name and the first 12 hex digits of a SHA-256 of its
        embedded artefact (parameters, vocabulary, weights): two artefacts with the same identity rank
        alike."""
        return f"{self.ranker_.name}:{self._identity}"

    # ----- persistence: both stages' artefacts inside this one -------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        arrays = {"user_codes": self.user_codes_, "item_codes": self.item_codes_,
                  "history_length": self.history_length_, "popularity": self.popularity_}
        if self.history_ is not None:
            arrays["history"] = self.history_
        for prefix, model in (("retriever", self.retriever_), ("ranker", self.ranker_)):
            arrays.update(_embedded(prefix, model))
        return arrays

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_codes_, self.item_codes_ = arrays["user_codes"], arrays["item_codes"]
        self.history_length_, self.popularity_ = arrays["history_length"], arrays["popularity"]
        self.history_ = arrays.get("history")
        self.retriever_ = _unembedded("retriever", arrays)
        self.ranker_ = _unembedded("ranker", arrays)
        self._identity = _digest(arrays, "ranker.")
        self._offer_fold_in()

    def fit_note(self) -> str:
        stop = getattr(self.ranker_, "best_epoch_", None)
        n, positive = getattr(self, "rows_", (0, 0))
        return (f"retriever {self.retriever_.name}, ranker {self.ranker_.name}"
                + (f" (epoch {stop} kept)" if stop is not None else "") + f", {self.candidates} candidates"
                + (f"; ranker rows {n:,} ({positive:,} positive, labels {self.label_rule_})" if n else "")
                + (f"; held-out users' lists: NDCG@10 {check[0]:.4f} in the ranker's order, {check[1]:.4f} in the "
                   "retriever's" if (check := getattr(self, "check_", None)) else ""))


def _list_ndcg(rows: CTRData, score: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over the users (``rows.user``) with a positive row, each user's rows ordered by
    ``score`` (float (n,), higher first; ties by row order). Vectorised."""
    order = np.lexsort((-np.asarray(score, np.float64), rows.user))
    user, label = rows.user[order], rows.label[order] > 0
    first = np.r_[True, user[1:] != user[:-1]]
    group = np.cumsum(first) - 1
    position = np.arange(len(user)) - np.flatnonzero(first)[group]
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = np.bincount(group, weights=np.where(label & (position < k), discount[np.minimum(position, k - 1)], 0.0))
    ideal = np.r_[0.0, np.cumsum(discount)][np.minimum(np.bincount(group, weights=label), k).astype(int)]
    has = ideal > 0
    return float(np.mean(dcg[has] / ideal[has])) if has.any() else 0.0


def _seen_cells(seen: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in ``users``, item) int64 arrays of every stored cell of ``users``' rows of CSR ``seen``."""
    starts, stops = seen.indptr[users], seen.indptr[users + 1]
    lengths = stops - starts
    rows = np.repeat(np.arange(len(users)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, seen.indices[np.repeat(starts, lengths) + offsets].astype(np.int64)


def _stop_split(rows: CTRData, seed: int) -> tuple[CTRData, CTRData]:
    """The ranker's rows cut by user: a random :data:`VALID_SHARE` of the users' whole candidate
    lists for early stopping (a list-wise metric needs whole lists; and a ranker that leans on
    per-user ids more than on the evidence stops earlier), the rest to learn from."""
    users = np.unique(rows.user)
    held = np.random.default_rng(seed).permutation(users)[:round(VALID_SHARE * len(users))]
    stop = np.isin(rows.user, held)
    return rows.subset(~stop, "ranker rows"), rows.subset(stop, "ranker stopping rows")


def _sigmoid32(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))).astype(np.float32)


def _popularity(seen: sp.csr_matrix) -> np.ndarray:
    """float64 (n_items,): users per item of a seen-items matrix."""
    return np.bincount(seen.indices, minlength=seen.shape[1]).astype(np.float64)


def _evidence(score: np.ndarray, rank: np.ndarray, history_length: np.ndarray, popularity: np.ndarray,
              ) -> dict[str, np.ndarray]:
    """The :data:`EVIDENCE` features of rows (each float64 (m,)): the retriever's score as it is,
    the rank (0 = best), history length and popularity as ``log1p``."""
    return {"retriever_score": np.asarray(score, np.float64), "retriever_rank": np.log1p(np.asarray(rank, np.float64)),
            "history_length": np.log1p(np.asarray(history_length, np.float64)),
            "item_popularity": np.log1p(np.asarray(popularity, np.float64))}


def _evidence_of(retriever: Recommender, seen: sp.csr_matrix, users: np.ndarray, items: np.ndarray,
                 candidates: int) -> dict[str, np.ndarray]:
    """The evidence of any (user, item) rows (int64 (m,) each), seen items included: the retriever's
    score, and as rank the number of the user's ``candidates`` top unseen items scoring above it
    (a candidate's own position). Users are scored in chunks (a loop over chunks, not rows)."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    score, rank = np.empty(len(users)), np.empty(len(users))
    order = np.argsort(users, kind="stable")
    uniq, first = np.unique(users[order], return_index=True)
    bounds = np.r_[first, len(users)]
    step = chunk_size(seen.shape[1])
    for start in range(0, len(uniq), step):
        block = uniq[start:start + step]
        s = np.asarray(retriever.score(block), dtype=np.float32)
        _, top = top_k(s.copy(), candidates, seen[block])
        rows = order[bounds[start]:bounds[min(start + step, len(uniq))]]
        local = np.searchsorted(block, users[rows])
        score[rows] = s[local, items[rows]]
        rank[rows] = (top[local] > score[rows][:, None]).sum(1)
    return _evidence(score, rank, np.diff((seen > 0).indptr)[users], _popularity(seen)[items])


def _histories(log: Dataset, length: int) -> np.ndarray:
    """int64 (n_users, length): each user's latest ``length`` positives of ``log`` (rating >= 4
    where rated, else every event), oldest first, right-aligned, padded with ``n_items``."""
    n_u, n_i = log.n_users, log.n_items
    label = (log.ratings >= 4) if log.ratings is not None else np.ones(len(log.users), bool)
    end = float(np.max(log.timestamps)) + 1.0  # one query row per user after every event
    user = np.concatenate([log.users, np.arange(n_u)]).astype(np.int64)
    item = np.concatenate([log.items, np.full(n_u, n_i)]).astype(np.int64)
    hist = user_history(user, item, np.concatenate([label, np.zeros(n_u, bool)]).astype(np.float32),
                        np.concatenate([log.timestamps, np.full(n_u, end)]), n_i, length)
    return hist[len(log.users):]


def _digest(arrays: dict[str, np.ndarray], prefix: str) -> str:
    """First 12 hex digits of a SHA-256 over the arrays named ``prefix*`` (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if k.startswith(prefix)):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def _pairs(text: str, what: str) -> dict[str, str]:
    """``k=v;k=v`` as a dict of strings (converted by the model's typed parameters)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"model 'rerank': {what} {part!r} is not key=value (pairs separated by ';')")
        out[key.strip()] = value.strip()
    return out


def _embedded(prefix: str, model: Any) -> dict[str, np.ndarray]:
    """A fitted model's whole artefact as arrays named ``prefix.*`` (its header as JSON text)."""
    art = model.to_artefact()
    meta = {"family": art.family, "model": art.model, "params": art.params, "extra": art.extra,
            "vocab": sorted(art.vocab)}
    out = {f"{prefix}.{_META}": np.array(json.dumps(meta))}
    out.update({f"{prefix}.a.{k}": v for k, v in art.arrays.items()})
    out.update({f"{prefix}.v.{k}": np.asarray(v).astype(str) for k, v in art.vocab.items()})
    return out


def _unembedded(prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    meta = json.loads(str(arrays[f"{prefix}.{_META}"]))
    head = f"{prefix}.a."
    art = Artefact(meta["family"], meta["model"], meta["params"],
                   {k[len(head):]: v for k, v in arrays.items() if k.startswith(head)},
                   {k: arrays[f"{prefix}.v.{k}"] for k in meta["vocab"]}, meta["extra"])
    return build(art, f"the {prefix} inside a two-stage artefact")
