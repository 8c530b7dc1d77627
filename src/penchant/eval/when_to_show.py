"""When to show a suggestion: a cascade of acceptance predictors and a display rule (CDHF).

After Mozannar, Bansal, Fourney and Horvitz, *When to Show a Suggestion? Integrating Human Feedback
in AI-Assisted Programming* (AAAI 2024): Conditional suggestion Display from Human Feedback. A
suggestion is worth showing when its expected gain beats its expected cost,

    show  ⇔  p · gain − (1 − p) · cost > 0  ⇔  p > τ = cost / (gain + cost),

with ``p`` the probability that the user accepts it. The paper estimates ``p`` with a *cascade*
trained on logs of shown suggestions and whether each was accepted: stage 1 sees only the context
(what is known before a suggestion is produced: here the user's history with the platform and the
slot), and hides the suggestions it is already sure about, so stage 2 need not run for them (in the
paper, the code model is not even called); stage 2 sees the context and the suggestion itself and
applies the rule to the rest. The measure is the share of would-be-rejected suggestions hidden
against the share of accepted ones lost, on a held-out later part of the log.

Here a suggestion is one item of a served list (one row of a :class:`~penchant.data.bandit_logs.BanditLog`:
a service dump's served lists or a simulated log), accepted when the user acted on it (reward > 0).

* Stage 1: logistic regression (standardised) on context features: slot, the user's earlier shown
  items and acceptances (log counts and rate) and lists since the user's last acceptance (a proxy
  for the user's latent state, which the paper finds matters) with a never-accepted flag.
* Stage 2: a small gradient-boosted tree model (LightGBM, 150 trees of ≤ 15 leaves) on the context
  features plus the suggestion's: the item's earlier showings and acceptances (popularity and
  acceptance rate), how often this user was shown this item before, and the logging policy's
  propensity (its confidence in showing it).
* Every history feature counts only lists *before* the current one (strictly earlier rounds, so a
  list's own feedback never leaks into its features); rounds are in log order (a dump's order).
* Stage 1's threshold: the largest t ≤ τ whose hiding loses at most ``stage1_loss`` of the accepted
  suggestions on a validation slice (the last 20 % of the training rounds; the models are fitted on
  the first 80 %). The paper also sets stage 1 to hide only confident rejections; its exact rule
  for the threshold is a tuning choice (simplification: one loss budget, not the paper's sweep).

Simplifications against the paper: the paper's features are telemetry and prompt/suggestion text
(and its stage models are trained on Copilot logs); ours are the recommender log's counts; the
latency saving of skipping stage 2 is reported as the share of suggestions stage 1 decides alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from penchant.data.bandit_logs import BanditLog
from penchant.errors import ConfigError, DataError
from penchant.eval.ctr import auc

CONTEXT_FEATURES = ("position", "user_shown", "user_accepted", "user_rate", "lists_since_accept", "never_accepted")
SUGGESTION_FEATURES = ("item_shown", "item_accepted", "item_rate", "user_item_shown", "log_propensity")


def threshold(cost: float, gain: float = 1.0) -> float:
    """τ = cost / (gain + cost): the acceptance probability above which showing has positive expected
    utility p · gain − (1 − p) · cost (``cost`` of a rejected suggestion, ``gain`` of an accepted one,
    same units)."""
    if not (np.isfinite(cost) and cost >= 0):
        raise ConfigError(f"the cost of a rejected suggestion must be a number ≥ 0, got {cost!r}")
    if not (np.isfinite(gain) and gain > 0):
        raise ConfigError(f"the gain of an accepted suggestion must be a number > 0, got {gain!r}")
    return float(cost / (gain + cost))


def show(p: np.ndarray, cost: float, gain: float = 1.0) -> np.ndarray:
    """bool (n,): show iff p · gain − (1 − p) · cost > 0, for acceptance probabilities ``p`` (n,)."""
    return np.asarray(p, dtype=np.float64) > threshold(cost, gain)


def _prior_sums(group: np.ndarray, rounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """float64 (n, V): for each row, the sums of ``values`` (n, V) over the rows of its group in
    strictly earlier rounds. ``group``, ``rounds``: int64 (n,)."""
    _, g = np.unique(group, return_inverse=True)
    key = g.astype(np.int64) * (int(rounds.max()) + 1) + rounds
    cells, cell_of_row = np.unique(key, return_inverse=True)  # sorted: (group, round) order
    per_cell = np.zeros((len(cells), values.shape[1]))
    np.add.at(per_cell, cell_of_row, values)
    cell_group = cells // (int(rounds.max()) + 1)
    total = np.cumsum(per_cell, axis=0) - per_cell  # everything before the cell, over all groups
    first = np.r_[0, np.flatnonzero(np.diff(cell_group)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, len(cells)]))
    return (total - total[start])[cell_of_row]


def _lists_since_accept(log: BanditLog, accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the user's lists since their last list with an acceptance (1 = the previous one;
    with none, the lists so far + 1), and whether they never accepted before. float64 (n,) each."""
    users = log.round_users
    hit = np.bincount(log.rounds, weights=accepted, minlength=log.n_rounds) > 0
    order = np.argsort(users, kind="stable")  # (user, round) order: rounds are in log order
    idx = np.arange(log.n_rounds)
    last = np.maximum.accumulate(np.where(hit[order], idx, -1))
    prev = np.r_[-1, last[:-1]]
    sorted_users = users[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, log.n_rounds]))
    never = prev < start
    gap = np.where(never, idx - start + 1, idx - prev).astype(np.float64)
    out_gap, out_never = np.empty(log.n_rounds), np.empty(log.n_rounds)
    out_gap[order], out_never[order] = gap, never
    return out_gap[log.rounds], out_never[log.rounds]


def log_features(log: BanditLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a platform knows when it shows each logged suggestion, from the log alone.

    Returns context features float64 (n, 6) (:data:`CONTEXT_FEATURES`), suggestion features float64
    (n, 5) (:data:`SUGGESTION_FEATURES`) and the acceptance labels float64 (n,) (reward > 0). Counts
    are log1p-scaled; rates are accepted / shown with one pseudo-showing (0 with no history).
    """
    accepted = (log.reward > 0).astype(np.float64)
    ones = np.ones(len(log))
    both = np.column_stack([ones, accepted])
    user = _prior_sums(log.users, log.rounds, both)
    item = _prior_sums(log.items, log.rounds, both)
    pair = _prior_sums(log.users.astype(np.int64) * len(log.item_ids) + log.items, log.rounds, ones[:, None])[:, 0]
    gap, never = _lists_since_accept(log, accepted)
    context = np.column_stack([log.position, np.log1p(user[:, 0]), np.log1p(user[:, 1]), user[:, 1] / (user[:, 0] + 1),
                               np.log1p(gap), never]).astype(np.float64)
    suggestion = np.column_stack([np.log1p(item[:, 0]), np.log1p(item[:, 1]), item[:, 1] / (item[:, 0] + 1),
                                  np.log1p(pair), np.log(log.propensity)]).astype(np.float64)
    return context, suggestion, accepted


@dataclass
class DisplayCascade:
    """Stage 1 (logistic regression on context) then stage 2 (LightGBM on context + suggestion);
    show iff stage 1's p ≥ its threshold and stage 2's p > τ = cost / (gain + cost). See the module.

    Args:
        cost: the cost of a rejected suggestion, in units of an accepted one's gain (``gain``).
        stage1_loss: the share of accepted suggestions stage 1 may hide on the validation slice.
        seed: seeds LightGBM's bagging.
    """

    cost: float
    gain: float = 1.0
    stage1_loss: float = 0.02
    seed: int = 0
    stage1_threshold: float = field(default=0.0, init=False)
    _stage1: Any = field(default=None, init=False, repr=False)
    _stage2: Any = field(default=None, init=False, repr=False)

    @property
    def tau(self) -> float:
        return threshold(self.cost, self.gain)

    def fit(self, context: np.ndarray, suggestion: np.ndarray, accepted: np.ndarray,
            valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> DisplayCascade:
        """Fit both stages on rows (n, ·) and labels (n,); choose stage 1's threshold on ``valid``
        (the same three arrays; None: on the training rows)."""
        import lightgbm
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not 0.0 <= self.stage1_loss < 1.0:
            raise ConfigError(f"stage1_loss must be in [0, 1), got {self.stage1_loss!r}")
        y = np.asarray(accepted) > 0
        if y.all() or not y.any():
            raise DataError("the training part of the log has only accepted or only rejected suggestions",
                            expected="both accepted and rejected shown suggestions")
        self._stage1 = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)).fit(context, y)
        self._stage2 = lightgbm.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                                               subsample=0.8, subsample_freq=1, colsample_bytree=0.9, n_jobs=1,
                                               random_state=self.seed, verbose=-1)
        self._stage2.fit(np.column_stack([context, suggestion]), y)
        vc, _, va = valid if valid is not None else (context, suggestion, accepted)
        p1, acc = self.stage1(vc), np.asarray(va) > 0
        # the largest t ≤ τ hiding at most stage1_loss of the accepted: sort accepted p1, take the quantile
        allowed = int(np.floor(self.stage1_loss * acc.sum()))
        accepted_p = np.sort(p1[acc])
        t = accepted_p[allowed] if allowed < len(accepted_p) else np.inf  # hiding p < t loses ≤ allowed
        self.stage1_threshold = float(min(t, self.tau))
        return self

    def stage1(self, context: np.ndarray) -> np.ndarray:
        """float64 (n,): stage 1's acceptance probabilities."""
        if self._stage1 is None:
            raise ConfigError("the cascade is not fitted")
        return self._stage1.predict_proba(context)[:, 1].astype(np.float64)

    def stage2(self, context: np.ndarray, suggestion: np.ndarray) -> np.ndarray:
        """float64 (n,): stage 2's acceptance probabilities."""
        if self._stage2 is None:
            raise ConfigError("the cascade is not fitted")
        return self._stage2.predict_proba(np.column_stack([context, suggestion]))[:, 1].astype(np.float64)

    def decide(self, context: np.ndarray, suggestion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """bool (n,) show, bool (n,) decided by stage 1 alone (hidden there; stage 2 is skipped)."""
        gate = self.stage1(context) >= self.stage1_threshold
        shown = np.zeros(len(gate), dtype=bool)
        if gate.any():
            shown[gate] = self.stage2(context[gate], suggestion[gate]) > self.tau
        return shown, ~gate


def operating_point(accepted: np.ndarray, shown: np.ndarray, cost: float, gain: float = 1.0) -> dict[str, float]:
    """The share of would-be-rejected suggestions hidden, of accepted ones lost, the display rate and
    the utility per logged suggestion (gain · accepted shown − cost · rejected shown) / n, with the
    same for showing everything. ``accepted``, ``shown``: (n,) 0/1 or bool."""
    acc, shown = np.asarray(accepted) > 0, np.asarray(shown, dtype=bool)
    n_acc, n_rej = max(int(acc.sum()), 1), max(int((~acc).sum()), 1)
    return {"rejections_avoided": float((~shown & ~acc).sum() / n_rej),
            "acceptances_lost": float((~shown & acc).sum() / n_acc),
            "display_rate": float(shown.mean()),
            "utility": float((gain * (shown & acc).sum() - cost * (shown & ~acc).sum()) / len(acc)),
            "utility_show_all": float((gain * acc.sum() - cost * (~acc).sum()) / len(acc))}


def hide_curve(accepted: np.ndarray, p: np.ndarray, hidden: np.ndarray | None = None,
               points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """The curve of the rule "hide when p < t" over all t: acceptances lost (x) and rejections avoided
    (y), float64 (points,) each, both from 0 (show all) to 1 (hide all). Rows in ``hidden`` (bool (n,),
    e.g. stage 1's) are hidden at every t (the curve starts from their point)."""
    acc = np.asarray(accepted) > 0
    hidden = np.zeros(len(acc), dtype=bool) if hidden is None else np.asarray(hidden, dtype=bool)
    n_acc, n_rej = max(int(acc.sum()), 1), max(int((~acc).sum()), 1)
    rest = ~hidden
    order = np.argsort(np.asarray(p)[rest], kind="stable")
    a = acc[rest][order]
    lost = np.r_[0, np.cumsum(a)] + (hidden & acc).sum()
    avoided = np.r_[0, np.cumsum(~a)] + (hidden & ~acc).sum()
    pick = np.unique(np.linspace(0, len(a), points).round().astype(int))
    return lost[pick] / n_acc, avoided[pick] / n_rej


def curve_area(lost: np.ndarray, avoided: np.ndarray) -> float:
    """Area under rejections avoided against acceptances lost (0.5 = a random rule, 1 = perfect)."""
    x, y = np.r_[0.0, lost, 1.0], np.r_[0.0, avoided, 1.0]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


@dataclass
class WhenToShowResult:
    """The cascade's decisions on the held-out part of a log (see :func:`when_to_show`)."""

    source: str
    cost: float
    gain: float
    tau: float
    stage1_threshold: float
    rows: dict[str, int]
    acceptance_rate: float
    auc: dict[str, float]
    points: dict[str, dict[str, float]]
    stage1_decided: float
    curves: dict[str, dict[str, list[float]]]
    area: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def when_to_show(log: BanditLog, *, cost: float, gain: float = 1.0, test_share: float = 0.3, stage1_loss: float = 0.02,
                 seed: int = 0) -> WhenToShowResult:
    """Fit the cascade on the earlier rounds of ``log`` and judge it on the last ``test_share`` of them.

    Operating points (``points``) on the held-out rows: ``cascade`` (the display rule), ``stage1``
    (stage 1's probability against τ alone), ``stage2`` (stage 2 alone against τ) and ``random`` (hide
    a random share of suggestions equal to the cascade's, seeded). ``curves``: the cascade's (stage 1's
    hidden rows fixed, stage 2's threshold swept), stage 1's and stage 2's alone, as acceptances lost
    against rejections avoided; ``area`` under each (0.5 is random).
    """
    if not 0.0 < test_share < 1.0:
        raise ConfigError(f"test_share must be in (0, 1), got {test_share!r}")
    tau = threshold(cost, gain)
    context, suggestion, accepted = log_features(log)
    cut = round(log.n_rounds * (1.0 - test_share))
    fit_cut = round(cut * 0.8)
    train, valid, test = log.rounds < fit_cut, (log.rounds >= fit_cut) & (log.rounds < cut), log.rounds >= cut
    if min(train.sum(), valid.sum(), test.sum()) == 0:
        raise DataError(f"{log.n_rounds} served lists are too few to fit, validate and test on", file=log.source,
                        expected="at least a few dozen served lists")
    cascade = DisplayCascade(cost, gain, stage1_loss, seed).fit(
        context[train], suggestion[train], accepted[train], (context[valid], suggestion[valid], accepted[valid]))
    c, s, y = context[test], suggestion[test], accepted[test]
    p1, p2 = cascade.stage1(c), cascade.stage2(c, s)
    shown, decided = cascade.decide(c, s)
    rng = np.random.default_rng(seed)
    random_shown = rng.random(len(y)) < shown.mean()
    points = {"cascade": operating_point(y, shown, cost, gain), "stage1": operating_point(y, p1 > tau, cost, gain),
              "stage2": operating_point(y, p2 > tau, cost, gain), "random": operating_point(y, random_shown, cost, gain)}
    curves, area = {}, {}
    for name, (score, fixed) in {"cascade": (p2, decided), "stage1": (p1, None), "stage2": (p2, None)}.items():
        lost, avoided = hide_curve(y, score, fixed)
        curves[name] = {"acceptances_lost": lost.round(5).tolist(), "rejections_avoided": avoided.round(5).tolist()}
        area[name] = curve_area(lost, avoided)
    return WhenToShowResult(
        source=log.source, cost=float(cost), gain=float(gain), tau=tau, stage1_threshold=cascade.stage1_threshold,
        rows={"train": int(train.sum()), "valid": int(valid.sum()), "test": int(test.sum())},
        acceptance_rate=float(y.mean()), auc={"stage1": auc(y, p1), "stage2": auc(y, p2)}, points=points,
        stage1_decided=float(decided.mean()), curves=curves, area=area)


def plot_curves(result: WhenToShowResult, path: str | Path) -> Path:
    """The curves of ``result`` (rejections avoided against acceptances lost), with the random rule's
    diagonal and the cascade's operating point, as a PNG at ``path``."""
    from penchant.eval.plots import new_figure, save_figure

    plt, fig, ax, path = new_figure(path, size=(5.6, 4.6))
    for name, curve in result.curves.items():
        ax.plot(curve["acceptances_lost"], curve["rejections_avoided"], label=f"{name} (area {result.area[name]:.3f})")
    ax.plot([0, 1], [0, 1], "k:", label="random rule")
    point = result.points["cascade"]
    ax.scatter([point["acceptances_lost"]], [point["rejections_avoided"]], color="k", zorder=3,
               label=f"cascade at cost {result.cost:g} (τ = {result.tau:.2f})")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    return save_figure(plt, fig, ax, path, "When to show: hiding suggestions", "share of accepted suggestions lost",
                       "share of rejected suggestions hidden", loc="lower right", fontsize=8)
