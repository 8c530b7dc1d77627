"""Metrics, evaluation protocols, significance tests and reports (trains nothing itself)."""

from penchant.eval.evaluate import EvalResult, Target, build_target, evaluate, validator

__all__ = ["EvalResult", "Target", "build_target", "evaluate", "validator"]
