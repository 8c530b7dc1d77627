"""Every learner behind one protocol, found by name through the registry."""

from penchant.models import (  # noqa: F401  (registers the models)
    als,
    blend,
    bpr,
    graph_filters,
    ials,
    itemknn,
    lightgcn,
    linear,
    multvae,
    pop,
    rating,
    recvae,
    rp3beta,
    sansa,
    sequential,
    slist,
    sparse_linear,
    unbiased,
)
from penchant.models.base import Recommender, Validator
from penchant.models.registry import create, model_class, model_names, param_specs, register

__all__ = ["Recommender", "Validator", "create", "model_class", "model_names", "param_specs", "register"]
