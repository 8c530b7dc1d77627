"""Device selection of the torch models (ranking, rating, sequential and pairwise preference):
``device=auto|cpu|cuda`` (auto picks CUDA when torch sees one). The suite runs on CPU; the accuracy
tests elsewhere pin that CPU results are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.synthetic import power_law_log
from penchant.errors import ConfigError
from penchant.models import create, param_specs

TORCH_MODELS = ("bpr", "lightgcn", "multvae", "relmf", "ubpr", "biasedmf", "fm", "sasrec", "gru4rec",
                "pbt", "gpm", "pal", "pal-latent", "vpl", "dpa")


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_every_torch_model_takes_a_device_defaulting_to_auto(name):
    spec = {s["name"]: s for s in param_specs(name)}
    assert spec["device"]["default"] == "auto"
    assert create(name, device="cpu").device == "cpu"
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        create(name, device="tpu")


def test_auto_resolves_to_the_cpu_here_and_gives_the_cpu_result():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: auto means cuda here")
    ds = power_law_log(60, 40, 900, seed=1)
    runs = {d: create("bpr", factors=8, epochs=3, device=d).fit(ds) for d in ("auto", "cpu")}
    assert np.array_equal(runs["auto"].item_factors_, runs["cpu"].item_factors_)
    assert np.array_equal(runs["auto"].user_factors_, runs["cpu"].user_factors_)


def test_asking_for_cuda_without_one_is_an_error_not_a_silent_cpu_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ds = power_law_log(30, 20, 200, seed=1)
    with pytest.raises(ConfigError, match="device='cuda', but torch sees no CUDA device"):
        create("bpr", factors=4, epochs=1, device="cuda").fit(ds)


@pytest.mark.parametrize("name", ["vpl", "pal-latent"])
def test_preference_models_on_auto_give_the_cpu_margins_here(name):
    """VPL draws its contexts and PAL-latent runs its EM on the network's device; here auto is the
    CPU, so both must give exactly the CPU run (the draws come from the CPU generator either way)."""
    import torch

    from penchant.data.preference_worlds import plural_world
    from penchant.data.preferences import split_pairs

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: auto means cuda here")
    sp = split_pairs(plural_world(n_users=40, n_items=20, pairs_per_user=15, seed=2).pairs, (0.8, 0.1, 0.1), seed=0)
    extra = {"anneal": 5, "patience": 5} if name == "pal-latent" else {}
    margins = {}
    for device in ("auto", "cpu"):
        model = create(name, epochs=20, seed=4, device=device, **extra).fit(sp.train, sp.valid)
        margins[device] = model.margin(sp.test.user, sp.test.winner, sp.test.loser)
    assert np.array_equal(margins["auto"], margins["cpu"]) and np.abs(margins["cpu"]).sum() > 0


def test_a_preference_model_asking_for_cuda_without_one_is_an_error():
    import torch

    from penchant.data.preference_worlds import plural_world

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pairs = plural_world(n_users=10, n_items=8, pairs_per_user=5, seed=1).pairs
    with pytest.raises(ConfigError, match="device='cuda', but torch sees no CUDA device"):
        create("gpm", epochs=1, device="cuda").fit(pairs)
