"""Where the models run (sa_viz/models/device.py): "auto", "cpu", "cuda"; these machines have no
GPU, so "cuda" must say so, and "auto" must mean the CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import ASSETS

from sa_viz.models.device import DeviceUnavailable, device_of, resolve_device
from sa_viz.models.weights import load_model
from sa_viz.pipeline.explain import explain


def test_auto_is_the_gpu_when_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_what_to_do():
    with pytest.raises(DeviceUnavailable, match=r"no CUDA GPU.*--device cpu"):
        resolve_device("cuda")


def test_unknown_devices_are_named():
    with pytest.raises(DeviceUnavailable, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(DeviceUnavailable, match="unknown device 'mps'"):
        resolve_device("mps")


def test_models_and_results_on_the_chosen_device(weights_folder):
    device = resolve_device("auto")
    models = {
        name: load_model(name, folder=weights_folder, allow_download=False, device=device)
        for name in ("se_resnet50", "sa_resnet50")
    }
    assert all(device_of(m.module) == device for m in models.values())
    result = explain(ASSETS / "chelsea.jpg", models=models)
    for m in result.models.values():  # every array reaches the CPU, whatever the device
        assert m.cam.dtype.kind == "f" and m.probabilities.shape == (1000,)
        assert all(g.channel.device.type == "cpu" for g in m.gates.values())
