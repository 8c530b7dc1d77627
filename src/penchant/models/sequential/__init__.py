"""Sequential recommenders: what comes next, from the order of what came before."""

from penchant.models.sequential import gru4rec, lastitemknn, markov, sasrec, zeroshot  # noqa: F401  (registers them)
from penchant.models.sequential.base import SequentialRecommender

__all__ = ["SequentialRecommender"]
