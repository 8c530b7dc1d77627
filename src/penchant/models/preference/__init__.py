"""Pairwise preference models: who prefers what, from A-versus-B choices."""

from penchant.models.preference import bt, contrastive, dpa, gpm, latent, pal, personal, vpl  # noqa: F401  (registers them)
from penchant.models.preference.base import PreferenceModel, create_preference

__all__ = ["PreferenceModel", "create_preference"]
