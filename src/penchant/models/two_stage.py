"""Two stages in one model: a retriever picks each user's candidates, a CTR ranker orders them.

:class:`TwoStage` (``rerank``) is a ranking-family :class:`~penchant.models.base.Recommender`, so
``penchant fit``, ``penchant recommend``, the answer core and the service take it as they take any
other model, and one artefact holds both stages.

Fit, on one log:

1. the retriever: a registered ranking or sequential model fitted on the log, or a fitted artefact
   (``retriever=PATH.npz``) loaded as it is (its users and items must be the log's, in the log's order);
2. the ranker's rows, built from the same log by :func:`~penchant.data.ctr.ctr_from_log` over the
   log's own side information (no feature files; no time-of-day fields, since a recommendation
   request carries no time): with ratings, every rated row is an impression labelled
   ``rating >= 4`` (the RecBole convention); without ratings (or with ``labels=observed``), every
   observed row is a positive and each user's top unseen candidates of the retriever, as many as the user has positives (at most
   ``candidates``), are the negatives (hard negatives: the items the ranker will have to order);
3. the ranker (a ``ctr`` model) fitted with early stopping on a random 10% of those rows.

Scores of a user (float32 (n_items,)): the retriever's top ``candidates`` unseen items get the
ranker's click probability, in [0, 1]; every other item gets its retriever score shifted below
0 (``s - max(s) - 1``), so a list is the candidates re-ranked, then the rest in the retriever's
order, and every score is finite (a caller that bans candidates still gets a full list).

The ranker's rows at scoring time are gathered from per-user and per-item code tables encoded
once at fit through the ranker's own :class:`~penchant.data.ctr.FeatureVocabulary` (every user and
item of the model is in it, so none is unseen); a ranker that reads the user's history
(``needs_history``) gets each user's latest positives of the log.

Simplifications: no feature files (the log's own attributes only); numeric side features are not
read (the log's attributes are categorical); no fold-in (a user the model does not know gets the
answer core's popularity fallback); no ``partial_fit``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.data import Dataset
from penchant.data.ctr import CTRData, ctr_from_log, random_rows, user_history
from penchant.errors import ConfigError, DataError
from penchant.models.artefact import Artefact, build
from penchant.models.base import Recommender, Validator
from penchant.models.ranking import top_k
from penchant.models.registry import create, entry, register

#: the ranker's early-stopping share of its rows
VALID_SHARE = 0.1
#: label rule of rated logs (RecBole's)
LABEL = "rating>=4"
#: history length given to rankers that read one
HISTORY = 50
_META = "__meta__"


@register
class TwoStage(Recommender):
    """Retrieve candidates with one model, re-rank them with a CTR model (two stages, one artefact).

    Args:
        retriever: a registered ranking or sequential model name (fitted on the same log) or the
            path of a fitted model artefact (.npz; loaded, not refitted).
        ranker: a registered ctr model name (lr, fm-ctr, deepfm, dcnv2, ...).
        candidates: items per user the retriever hands to the ranker.
        ranker_params: the ranker's parameters, ``key=value`` pairs separated by ``;``
            (e.g. ``epochs=5;dims=8``); empty: its defaults.
        retriever_params: the retriever's parameters in the same form (a name only).
        labels: the ranker's labels: ``rating`` (rated rows, rating >= 4), ``observed`` (observed
            rows positive, the retriever's top unseen candidates negative) or ``auto`` (``rating``
            where the log has ratings, else ``observed``).
        seed: the split of the ranker's rows, and the ranker's seed where it has one.
    """

    name = "rerank"
    aliases = ("two-stage",)
    summary = "two stages: a retriever's top candidates re-ranked by a CTR model (one artefact)"

    def __init__(self, *, retriever: str = "ease", ranker: str = "deepfm", candidates: int = 100,
                 ranker_params: str = "", retriever_params: str = "", labels: str = "auto",
                 seed: int = DEFAULT_SEED) -> None:
        if candidates < 1:
            raise ConfigError(f"model 'rerank': candidates must be at least 1, not {candidates}")
        if labels not in ("auto", "rating", "observed"):
            raise ConfigError(f"model 'rerank': labels must be auto, rating or observed, not {labels!r}")
        self.labels = labels
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
        fit_part, stop_part = random_rows(rows, (1 - VALID_SHARE, VALID_SHARE), seed=self.seed)
        self.ranker_.fit(fit_part, stop_part if stop_part.n else None)
        self._tables(train)

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

    def _rows(self, train: Dataset) -> CTRData:
        """The ranker's training rows (see the module for the labels)."""
        if self.labels == "rating" or (self.labels == "auto" and train.ratings is not None):
            return ctr_from_log(train, label=LABEL, time_fields=False, max_history=HISTORY, name=f"{train.name} rows")
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
        return ctr_from_log(labelled, label="rating>=1", time_fields=False, name=f"{train.name} rows")

    def _tables(self, train: Dataset) -> None:
        """Per-user and per-item feature ids through the ranker's vocabulary, and histories."""
        vocab = self.ranker_.vocabulary_
        if vocab.dense_names:
            raise DataError("the two-stage model reads categorical side information only; the ranker's rows have "
                            f"numeric features {', '.join(vocab.dense_names)}")
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
        self.history_ = None
        if getattr(self.ranker_, "needs_history", False):
            if train.timestamps is None:  # pragma: no cover - the ranker's fit refused it already
                raise DataError(f"{self.ranker} reads histories; {train.name} has no time column")
            label = (train.ratings >= 4) if train.ratings is not None else np.ones(len(train.users), bool)
            end = float(np.max(train.timestamps)) + 1.0  # one query row per user after every event
            user = np.concatenate([train.users, np.arange(n_u)]).astype(np.int64)
            item = np.concatenate([train.items, np.full(n_u, n_i)]).astype(np.int64)
            hist = user_history(user, item, np.concatenate([label, np.zeros(n_u, bool)]).astype(np.float32),
                                np.concatenate([train.timestamps, np.full(n_u, end)]), n_i,
                                self.ranker_.history_length_)
            self.history_ = hist[len(train.users):]

    # ----- scores ----------------------------------------------------------------------------------
    def candidate_lists(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first stage for user indices: the retriever's scores float32 (n, n_items), its top
        ``candidates`` unseen items int32 (n, c) and whether each is a real candidate, bool (n, c)
        (False where a user has fewer unseen items)."""
        users = np.asarray(users, dtype=np.int64)
        scores = np.asarray(self.retriever_.score(users), dtype=np.float32)
        items, values = top_k(scores.copy(), self.candidates, self.train_[users])
        return scores, items, np.isfinite(values)

    def rerank_rows(self, users: np.ndarray, items: np.ndarray) -> CTRData:
        """The ranker's rows for (user, item) index pairs, int64 (m,) each: codes gathered from
        the fitted tables in the vocabulary's slot order (no dense features), histories where read."""
        vocab = self.ranker_.vocabulary_
        source = np.asarray(vocab.sources)[vocab.slot_field]
        codes = np.empty((len(users), len(source)), dtype=np.int64)
        codes[:, source == "user"] = self.user_codes_[users]
        codes[:, source == "item"] = self.item_codes_[items]
        if (source == "context").any():  # pragma: no cover - fitted without context fields
            codes[:, source == "context"] = [vocab.oov(vocab.fields[f]) for f in vocab.slot_field[source == "context"]]
        history = None if self.history_ is None else self.history_[users]
        return CTRData(np.zeros(len(users), np.float32), users, items, codes, vocab.slot_field, vocab.fields,
                       vocab.n_features, np.zeros((len(users), 0), np.float32), (), history, users, vocab,
                       self.user_ids_, self.item_ids_, name="candidates")

    def _score(self, users: np.ndarray) -> np.ndarray:
        scores, items, real = self.candidate_lists(users)
        finite = np.isfinite(scores)
        top = np.max(np.where(finite, scores, -np.inf), axis=1, keepdims=True)
        out = np.where(finite, scores - np.where(np.isfinite(top), top, 0) - 1.0, -np.inf).astype(np.float32)
        rows = np.repeat(np.arange(len(users)), real.sum(1))
        cand = items[real].astype(np.int64)
        if len(cand):
            p = self.ranker_.predict(self.rerank_rows(np.asarray(users, np.int64)[rows], cand))
            out[rows, cand] = p.astype(np.float32)
        return out

    # ----- persistence: both stages' artefacts inside this one -------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        arrays = {"user_codes": self.user_codes_, "item_codes": self.item_codes_}
        if self.history_ is not None:
            arrays["history"] = self.history_
        for prefix, model in (("retriever", self.retriever_), ("ranker", self.ranker_)):
            arrays.update(_embedded(prefix, model))
        return arrays

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_codes_, self.item_codes_ = arrays["user_codes"], arrays["item_codes"]
        self.history_ = arrays.get("history")
        self.retriever_ = _unembedded("retriever", arrays)
        self.ranker_ = _unembedded("ranker", arrays)

    def fit_note(self) -> str:
        stop = getattr(self.ranker_, "best_epoch_", None)
        return (f"retriever {self.retriever_.name}, ranker {self.ranker_.name}"
                + (f" (epoch {stop} kept)" if stop is not None else "") + f", {self.candidates} candidates")


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
