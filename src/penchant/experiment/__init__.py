"""Fitting, selection on validation, and answers for external ids: what the CLI, the service and
the benchmarks call, above :mod:`penchant.models` (which learns) and :mod:`penchant.eval` (which
measures and fits nothing)."""

from penchant.experiment.answers import AnswerCore, Answers, Ranked, rank_options, recommend_for
from penchant.experiment.fitting import fit_model

__all__ = ["AnswerCore", "Answers", "Ranked", "fit_model", "rank_options", "recommend_for"]
