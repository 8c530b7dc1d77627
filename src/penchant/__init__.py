"""penchant: learn what each person prefers, from any feedback, and act on it."""

__version__ = "0.1.0"

# the one default seed: every command's --seed, every split, draw and model unless told otherwise
DEFAULT_SEED = 0
