"""Sequential recommenders: what comes next, from the order of what came before."""

from penchant.models.sequential import gru4rec, lastitemknn, markov, sasrec  # noqa: F401  (registers the models)
from penchant.models.sequential.base import SequentialRecommender

__all__ = ["SequentialRecommender"]
