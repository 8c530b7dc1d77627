"""The task of the ``ctr`` family: click-through models on logs with feature files.

``read`` turns rated logs into :class:`~penchant.data.ctr.CTRData` the RecBole way (label =
rating >= 4, every rated row an impression) with the user and item feature files (given, or the
``.user``/``.item`` files beside a RecBole ``.inter`` file or in its folder). One file or folder
alone is split at random by row 80/10/10 (``seed``), as RecBole's context-aware benchmarks do; a
train/test pair without a validation file gives 10% of the training rows (random, ``seed``) to
validation, which stops training early (log loss) and judges a search (AUC).
``test`` reports AUC, log loss, group AUC (per user) and NDCG@k of each user's test rows
re-ranked by the predicted probability.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError, DataError
from penchant.experiment.tasks import Parts, Task, _finite, register_task

#: how one file or folder is split when no test file is given: fractions of rows (train, valid, test)
SPLIT = (0.8, 0.1, 0.1)


class CTRTask(Task):
    """Click-through models (see the module)."""

    families = ("ctr",)
    service_kind = None
    default_metric = "auc"

    def read(self, train: str | Path, valid: str | Path | None = None, test: str | Path | None = None, *,
             seed: int = DEFAULT_SEED, min_rating: float | None = None, user_features: str | Path | None = None,
             item_features: str | Path | None = None, label: str = "rating>=4", max_history: int = 50,
             **columns: Any) -> Parts:
        """``train`` (and ``valid``/``test``) read over one vocabulary and made CTR parts (see the module)."""
        from penchant.data import load, load_triple
        from penchant.data.ctr import ctr_from_log, ctr_parts, feature_files, random_rows

        if min_rating is not None:
            raise ConfigError("the ctr task labels rows by --label (rating>=4); --min-rating would drop its negatives")
        found_user, found_item = feature_files(train) if Path(train).exists() else (None, None)
        user_file, item_file = user_features or found_user, item_features or found_item
        options = {"label": label, "max_history": max_history}
        if test is None:
            if valid is not None:
                raise ConfigError("give --test with --valid (or one data set alone, split 80/10/10 by row)")
            whole = ctr_from_log(load(train, **columns), user_file, item_file, **options)
            tr, va, te = random_rows(whole, SPLIT, seed=seed)
            return Parts(tr, va, te)
        if valid is None:
            tr_log, _, te_log = load_triple(train, None, test, **columns)
            tr, te = ctr_parts([tr_log, te_log], user_file, item_file, **options)
            carved, kept = random_rows(tr, (0.1, 0.9), seed=seed)
            return Parts(kept.subset(np.arange(kept.n), tr.name), carved.subset(np.arange(carved.n), "valid"), te)
        logs = load_triple(train, valid, test, **columns)
        tr, va, te = ctr_parts(list(logs), user_file, item_file, **options)
        return Parts(tr, va, te)

    def fit(self, name, params, train, valid=None, *, metric=None, report=None):
        return self.create(name, params).fit(train, valid)

    def judge(self, train, valid, metric=None):
        from penchant.eval.ctr import auc

        if metric not in (None, "auc"):
            raise ConfigError(f"ctr models are judged by auc, not {metric!r}")
        return (lambda model: auc(valid.label, model.predict(valid))), "auc"

    def fitted_line(self, name, model, parts, seconds):
        tr = parts.train
        chosen = model.selected()
        valid = (f"; validation log loss {model.valid_log_loss_:.4f}" if model.valid_log_loss_ is not None else "")
        return (f"{name} fitted on {tr.n:,} rows ({tr.label.mean():.1%} positive, {len(tr.fields)} fields) in "
                f"{seconds:.1f} s{valid}" + (f"; kept {', '.join(f'{k} {v}' for k, v in chosen.items())}" if chosen else ""))

    def test(self, model, parts, *, ks=(10,), backend=None):
        """AUC, log loss, GAUC (per user) and NDCG@k of each user's test rows re-ranked."""
        from penchant.eval.ctr import ctr_metrics

        te = parts.test
        if te is None or te.n == 0:
            raise DataError("no test rows to measure on")
        figures = ctr_metrics(te.label, model.predict(te), te.group, ks=ks)
        unseen = dict(te.vocabulary.unseen)
        figures |= {"unseen": unseen} if unseen else {}
        line = (f"AUC {figures['auc']:.4f}  log loss {figures['log_loss']:.4f}  GAUC {figures['gauc']:.4f} "
                f"({figures['gauc_groups']:,} users; {figures['gauc_skipped']:,} with one class skipped)  "
                + "  ".join(f"ndcg@{k} {figures[f'ndcg@{k}']:.4f}" for k in ks) + f"  on {te.n:,} rows")
        return figures, line

    def holdout(self, name, params, data, *, seed=0):
        """90% of the rows to fit (early stopping on the other 10%), which also measure it; that
        model is kept."""
        from penchant.data.ctr import random_rows
        from penchant.eval.ctr import ctr_metrics

        if data.n < 20:
            raise DataError(f"{data.n} rows; at least 20 are needed")
        train, held = random_rows(data, (0.9, 0.1), seed=seed)
        start = time.perf_counter()
        model = self.fit(name, params, train, held)
        figures = ctr_metrics(held.label, model.predict(held), held.group)
        metrics = _finite({k: figures[k] for k in ("auc", "log_loss", "gauc")})
        return model, metrics | {"rows": data.n, "fit_seconds": round(time.perf_counter() - start, 3)}


CTR = register_task(CTRTask())
