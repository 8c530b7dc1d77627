"""Reading, validating, indexing and splitting feedback (the bottom layer: imports no other layer)."""

from penchant.data.comparisons import read_id_comparisons, read_text_comparisons
from penchant.data.dataset import Attribute, Dataset, Step
from penchant.data.load import from_frame, load, load_movielens, load_public, load_triple
from penchant.data.movielens import fetch_movielens
from penchant.data.pairs import PreferencePairs
from penchant.data.public import fetch

__all__ = ["Attribute", "Dataset", "PreferencePairs", "Step", "fetch", "fetch_movielens", "from_frame", "load",
           "load_movielens", "load_public", "load_triple", "read_id_comparisons", "read_text_comparisons"]
