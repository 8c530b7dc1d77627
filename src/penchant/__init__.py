"""penchant: learn what each person prefers, from any feedback, and act on it."""

__version__ = "0.1.0"

# the one default seed: every command's --seed, every split, draw and model unless told otherwise
DEFAULT_SEED = 0

# waiting OpenMP threads sleep rather than spin on cores other work needs (penchant.threads); OpenMP
# reads this once, when torch loads, and penchant imports torch only when it first needs it
from penchant.threads import sleep_while_waiting as _sleep_while_waiting  # noqa: E402

_sleep_while_waiting()
