"""Reading, validating, indexing and splitting feedback (the bottom layer: imports no other layer)."""

from penchant.data.comparisons import TextComparisons, read_id_comparisons, read_text_comparisons
from penchant.data.dataset import Attribute, Comparisons, Dataset, Step
from penchant.data.load import from_frame, load, load_movielens, load_triple
from penchant.data.movielens import fetch_movielens

__all__ = ["Attribute", "Comparisons", "Dataset", "Step", "TextComparisons", "fetch_movielens", "from_frame", "load",
           "load_movielens", "load_triple", "read_id_comparisons", "read_text_comparisons"]
