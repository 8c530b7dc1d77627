"""Where penchant keeps what it downloads or computes once: ``PENCHANT_CACHE``, else the
platform's user cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """penchant's cache folder (``PENCHANT_CACHE``, else the platform's user cache folder)."""
    if os.environ.get("PENCHANT_CACHE"):
        return Path(os.environ["PENCHANT_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("penchant"))
