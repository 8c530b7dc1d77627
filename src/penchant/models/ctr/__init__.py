"""Click-through (ranking-stage) models: P(click | user, item, context) from feature rows
(:mod:`penchant.data.ctr`), the ``ctr`` family. Importing this package registers them."""

from penchant.models.ctr import awmoe, dcnv2, deepfm, fm, lambdarank, lr  # noqa: F401  (registers the models)
from penchant.models.ctr.base import CTRModel, TorchCTRModel

__all__ = ["CTRModel", "TorchCTRModel"]
