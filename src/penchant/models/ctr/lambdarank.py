"""LightGBM's LambdaRank (Burges 2010; LightGBM's ``lambdarank`` objective through ``LGBMRanker``):
gradient-boosted trees trained to order each list (``CTRData.group``: the user) by NDCG, the
gradient-boosted peer of the neural CTR models. LightGBM is a dependency, not a rewrite.

Features (:func:`tree_features`), float32 (n, C): each single-valued field one *categorical* column
holding the value's index within its field (its OOV value the last index), which LightGBM splits
by category sets; each multi-valued field (genres) one 0/1 column per value (multi-hot), or, past
``MULTI_HOT_MAX`` values, one categorical column per slot (NaN where unused); then the
standardised numbers.

LambdaRank scores order a list but are not probabilities, and ``predict`` promises click
probabilities: the scores are mapped through Platt's σ(a·s + b), fitted by Newton's method on
the validation rows (the training rows without them: in-sample scores are over-confident, said
so here). Early stopping: with validation rows, on their NDCG@``eval_at`` (LightGBM's own metric of
the objective), ``patience`` rounds without a gain.
"""

from __future__ import annotations

import numpy as np

from penchant.data.ctr import CTRData, FeatureVocabulary
from penchant.errors import ConfigError, DataError
from penchant.models.ctr.base import CTRModel
from penchant.models.registry import register
from penchant.models.search import Float, Int

#: a multi-valued field with at most this many values becomes multi-hot columns
MULTI_HOT_MAX = 64


def tree_features(data: CTRData, vocab: FeatureVocabulary) -> tuple[np.ndarray, list[int]]:
    """float32 (n, C) columns for the trees and the indices of the categorical ones (see the module)."""
    columns: list[np.ndarray] = []
    categorical: list[int] = []
    starts = vocab.slot_start
    for f, name in enumerate(vocab.fields):
        block = data.codes[:, starts[name]:starts[name] + vocab.slots[f]]
        local = block - vocab.offsets[f]          # index within the field; padding lands past its OOV
        size = int(vocab.offsets[f + 1] - vocab.offsets[f])  # known values + OOV
        if vocab.slots[f] > 1 and size <= MULTI_HOT_MAX + 1:
            hot = np.zeros((data.n, size), dtype=np.float32)
            rows, slots = np.nonzero(block < vocab.n_features)
            hot[rows, local[rows, slots]] = 1.0
            columns.append(hot)
            continue
        for s in range(block.shape[1]):
            categorical.append(sum(c.shape[1] for c in columns))
            columns.append(np.where(block[:, s] < vocab.n_features, local[:, s], np.nan).astype(np.float32)[:, None])
    columns.append(data.dense.astype(np.float32))
    return np.concatenate(columns, axis=1), categorical


def platt(score: np.ndarray, label: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(a, b) of P(click) = σ(a·s + b) maximising the likelihood of 0/1 ``label`` given float (n,)
    ``score``, by Newton's method with Platt's smoothed targets ((N+ + 1)/(N+ + 2), 1/(N- + 2))."""
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    theta = np.array([1.0, np.log((n_pos + 1) / (n_neg + 1))])
    design = np.stack([s, np.ones_like(s)], axis=1)
    for _ in range(iterations):
        p = 0.5 * (1 + np.tanh(0.5 * (design @ theta)))
        gradient = design.T @ (p - t)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def _by_group(data: CTRData) -> tuple[np.ndarray, np.ndarray]:
    """Row order that makes each group contiguous (stable) and the group sizes in that order."""
    order = np.argsort(data.group, kind="stable")
    _, sizes = np.unique(data.group[order], return_counts=True)
    return order, sizes


@register
class LambdaRank(CTRModel):
    """LightGBM LambdaRank (LGBMRanker, objective lambdarank) over each user's list, Platt-calibrated.

    Args:
        trees: most boosting rounds.
        leaves: leaves per tree.
        learning_rate: shrinkage per round.
        min_child_samples: fewest rows in a leaf.
        eval_at: the k of the validation NDCG@k that early stopping reads.
        truncation: LightGBM's lambdarank_truncation_level: pairs are formed with the rows ranked above
            it (its default 30 leaves most pairs of a user's long list out: 0.67 against 0.71 group
            AUC on ML-100K at 10 against 1000).
        patience: with validation rows, rounds without a higher validation NDCG before stopping.
        seed: LightGBM's seed.
    """

    name = "lambdarank"
    aliases = ("lgbm-ranker",)
    summary = "LightGBM LambdaRank over each user's list (gradient-boosted trees), Platt-calibrated"
    search_space = {"trees": Int(100, 1000, log=True), "leaves": Int(7, 127, log=True),
                    "learning_rate": Float(0.01, 0.3, log=True)}

    def __init__(self, *, trees: int = 300, leaves: int = 31, learning_rate: float = 0.05, min_child_samples: int = 20,
                 eval_at: int = 10, truncation: int = 1000, patience: int = 20, seed: int = 0) -> None:
        for key, value in (("trees", trees), ("leaves", leaves), ("min_child_samples", min_child_samples),
                           ("eval_at", eval_at), ("truncation", truncation), ("patience", patience)):
            if value < 1:
                raise ConfigError(f"model 'lambdarank': {key} must be at least 1, not {value}")
        if leaves < 2 or learning_rate <= 0:
            raise ConfigError(f"model 'lambdarank': leaves must be >= 2 and learning_rate > 0 (got {leaves}, {learning_rate})")
        self.trees, self.leaves, self.learning_rate = trees, leaves, learning_rate
        self.min_child_samples, self.eval_at, self.patience, self.seed = min_child_samples, eval_at, patience, seed
        self.truncation = truncation
        self.booster_: str | None = None
        self.platt_: tuple[float, float] = (1.0, 0.0)
        self._booster = None

    def _fit(self, train: CTRData, valid: CTRData | None) -> None:
        import lightgbm

        assert self.vocabulary_ is not None
        order, sizes = _by_group(train)
        if sizes.max() > 10_000:
            raise DataError(f"{train.name}: a group has {sizes.max():,} rows; LightGBM's lambdarank takes at most "
                            "10,000 per list", expected="groups of at most 10,000 rows (cut long lists first)")
        X, categorical = tree_features(train, self.vocabulary_)
        params = {"objective": "lambdarank", "num_leaves": self.leaves, "learning_rate": self.learning_rate,
                  "min_data_in_leaf": self.min_child_samples, "lambdarank_truncation_level": self.truncation,
                  "eval_at": [self.eval_at], "metric": "ndcg", "seed": self.seed, "num_threads": _threads(),
                  "verbose": -1}
        rows = lightgbm.Dataset(X[order], train.label[order], group=sizes, categorical_feature=categorical,
                                free_raw_data=True)
        extra: dict = {}
        if valid is not None:
            v_order, v_sizes = _by_group(valid)
            Xv, _ = tree_features(valid, self.vocabulary_)
            extra = {"valid_sets": [lightgbm.Dataset(Xv[v_order], valid.label[v_order], group=v_sizes, reference=rows)],
                     "callbacks": [lightgbm.early_stopping(self.patience, first_metric_only=True, verbose=False)]}
        booster = lightgbm.train(params, rows, num_boost_round=self.trees, **extra)
        best = booster.best_iteration if valid is not None and booster.best_iteration > 0 else None
        self.booster_ = booster.model_to_string(num_iteration=best)
        self._booster = lightgbm.Booster(model_str=self.booster_)
        self.best_epoch_ = best
        calibrate = valid if valid is not None else train
        self.platt_ = platt(self._scores(calibrate), calibrate.label)

    def _scores(self, data: CTRData) -> np.ndarray:
        assert self.vocabulary_ is not None and self._booster is not None
        X, _ = tree_features(data, self.vocabulary_)
        return np.asarray(self._booster.predict(X, num_threads=_threads()), dtype=np.float64)

    def _predict_logits(self, data: CTRData) -> np.ndarray:
        a, b = self.platt_
        return a * self._scores(data) + b

    def selected(self) -> dict:
        return {} if self.best_epoch_ is None else {"trees": self.best_epoch_}

    def _state(self) -> dict[str, np.ndarray]:
        assert self.booster_ is not None
        return {"booster": np.array(self.booster_), "platt": np.array(self.platt_, dtype=np.float64)}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        import lightgbm

        self.booster_ = str(arrays["booster"])
        self._booster = lightgbm.Booster(model_str=self.booster_)
        a, b = (float(x) for x in arrays["platt"])
        self.platt_ = (a, b)


def _threads() -> int:
    from penchant.threads import threads

    return threads()
