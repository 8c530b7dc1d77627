"""penchant: learn what each person prefers, from any feedback, and act on it."""

__version__ = "0.1.0"
