"""Leaderboards over several models evaluated on the same users: table rows, Markdown and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant import DEFAULT_SEED
from penchant.errors import ConfigError, DataError
from penchant.eval.evaluate import EvalResult
from penchant.eval.significance import bootstrap_ci, holm, wilcoxon_p


@dataclass
class Leaderboard:
    """Models ranked by one metric, each compared with the leader by a paired test.

    ``rows[i]`` has the model's metrics, a bootstrap CI of the primary metric, and the
    Holm-adjusted Wilcoxon p-value against the leader (None for the leader itself).
    """

    metric: str
    protocol: str
    rows: list[dict[str, Any]]
    users: int
    alpha: float
    left_out: dict[str, int]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "protocol": self.protocol, "users_evaluated": self.users,
                "alpha": self.alpha, "left_out": self.left_out, "notes": self.notes, "rows": self.rows}

    def columns(self, brief: bool = False) -> list[str]:
        """Metrics to show: the primary one, NDCG/recall at every K, then the rest at the primary K."""
        have = list(self.rows[0]["metrics"]) if self.rows else []
        k = self.metric.partition("@")[2]
        ks = sorted({int(m.partition("@")[2]) for m in have})
        wanted = [self.metric] + [f"{m}@{kk}" for kk in ks for m in ("ndcg", "recall")]
        if brief:
            wanted += [f"{m}@{k}" for m in ("hit", "coverage", "novelty")]
        else:
            wanted += [f"{m}@{k}" for m in ("hit", "mrr", "map", "precision", "coverage", "gini", "novelty", "ild", "arp")]
        return [c for c in dict.fromkeys(wanted) if c in have]

    def to_markdown(self) -> str:
        cols = self.columns()
        head = ["rank", "model", *cols, f"{self.metric} 95% CI", "p vs best (Holm)", "fit s", "eval s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for i, r in enumerate(self.rows, start=1):
            mark = "" if r["p_vs_best"] is None else ("*" if r["p_vs_best"] < self.alpha else " (n.s.)")
            p = "—" if r["p_vs_best"] is None else f"{r['p_vs_best']:.2g}{mark}"
            lo, hi = r["ci"]
            cells = [str(i), f"`{r['label']}`", *[f"{r['metrics'][c]:.4f}" for c in cols], f"[{lo:.4f}, {hi:.4f}]", p,
                     f"{r['fit_seconds']:.2f}", f"{r['eval_seconds']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        foot = [f"Protocol: {self.protocol}; {self.users:,} users evaluated.",
                f"`*`: worse than the best model on {self.metric} by a paired Wilcoxon signed-rank test over users, "
                f"Holm-corrected across models, at α = {self.alpha}; n.s.: not significantly different."]
        if self.left_out:
            foot.append("Left out: " + "; ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in self.left_out.items() if v) + ".")
        foot.extend(self.notes)
        return "\n".join(lines) + "\n\n" + "\n".join(foot) + "\n"


def leaderboard(results: list[EvalResult], metric: str = "ndcg@10", *, alpha: float = 0.05, seed: int = DEFAULT_SEED,
                notes: list[str] | None = None) -> Leaderboard:
    """Rank ``results`` (evaluated on the same users) by ``metric`` and test each against the leader."""
    if not results:
        raise ConfigError("no results to rank")
    users = results[0].users
    for r in results[1:]:
        if not np.array_equal(r.users, users) or r.protocol != results[0].protocol:
            raise DataError("results must be evaluated on the same users with the same protocol to be compared")
    ranked = sorted(results, key=lambda r: -r.metrics()[metric])
    best = ranked[0].per_user[metric]
    raw = [wilcoxon_p(best, r.per_user[metric]) for r in ranked[1:]]
    adjusted = holm(raw) if raw else []
    rows = []
    for i, r in enumerate(ranked):
        label = r.model if not r.extra.get("label") else r.extra["label"]
        rows.append({"label": label, "model": r.model, "params": r.params, "metrics": r.metrics(),
                     "ci": list(bootstrap_ci(r.per_user[metric], seed=seed)),
                     "p_vs_best": None if i == 0 else adjusted[i - 1],
                     "p_raw": None if i == 0 else raw[i - 1],
                     "fit_seconds": r.fit_seconds, "eval_seconds": r.eval_seconds})
    return Leaderboard(metric, results[0].protocol, rows, int(len(users)), alpha, results[0].left_out, notes or [])
