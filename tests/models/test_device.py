"""Device selection of the torch models: ``device=auto|cpu|cuda`` (auto picks CUDA when torch sees
one). The suite runs on CPU; the accuracy tests elsewhere pin that CPU results are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data.synthetic import power_law_log
from penchant.errors import ConfigError
from penchant.models import create, param_specs

TORCH_MODELS = ("bpr", "lightgcn", "multvae", "relmf", "ubpr", "biasedmf", "fm", "sasrec", "gru4rec")


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
