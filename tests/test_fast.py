"""The folded inference path (sa_viz.pipeline.fast) computes what the reference forward computes.

Tolerances: the fast path reorders float32 arithmetic (BatchNorm folded into the weights, the SA
statistics from other reductions), and the differences compound over 16 units; 1e-4 bounds them
with margin (observed: ~2e-5 on the deepest gates, ~1e-6 relative on the logits).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import seeded, trained_like_sa
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from test_models import matches_functional

from sa_viz.cam import grad_cam
from sa_viz.models import resnet50, sa_resnet50, sa_units
from sa_viz.models.hooks import thread_local_hooks
from sa_viz.models.weights import load_model
from sa_viz.pipeline.fast import set_fast_inference
from sa_viz.probes import record_gates


def pair(model):
    """(fast, reference) copies of one model."""
    fast = set_fast_inference(copy.deepcopy(model), True)
    return fast, set_fast_inference(copy.deepcopy(model), False)


def folded(model) -> int:
    return sum("_folded_cache" in m.__dict__ for m in model.modules())


@pytest.fixture(scope="module", params=["resnet50", "sa_resnet50"])
def models(request):
    return pair(seeded(resnet50) if request.param == "resnet50" else trained_like_sa())


@pytest.mark.parametrize("shape", [(1, 224, 224), (2, 160, 192), (1, 97, 131)])
def test_same_logits_and_gates(models, shape):
    fast, reference = models
    b, h, w = shape
    x = torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(h))
    with torch.inference_mode(), record_gates(fast) as got, record_gates(reference) as want:
        logits, expected = fast(x), reference(x)
    scale = expected.abs().max()
    torch.testing.assert_close(logits / scale, expected / scale, rtol=0, atol=1e-5)
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name].channel, want[name].channel, rtol=0, atol=1e-4)
        torch.testing.assert_close(got[name].spatial, want[name].spatial, rtol=0, atol=1e-4)
    assert folded(fast) == 16 and folded(reference) == 0  # the fast path really ran


def test_sa_units_take_their_own_folded_path_unless_gn_is_hooked():
    fast, reference = pair(trained_like_sa())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        reference(x)
        fast(x)
    units = [m for _, m in sa_units(fast)]
    assert all("_folded_affine" in u.__dict__ for u in units)
    assert not any("_folded_affine" in m.__dict__ for m in reference.modules())
    unit = units[0]
    del unit.__dict__["_folded_affine"]
    seen = []
    with torch.inference_mode(), thread_local_hooks([(unit.gn, lambda *a: seen.append(1))]):
        fast(x)  # a hook on gn: the unit runs gn as a module, and the hook fires
    assert seen == [1] and "_folded_affine" not in unit.__dict__


def test_fast_path_matches_the_independent_implementation(weights_folder):
    model = set_fast_inference(sa_resnet50().eval(), True)
    matches_functional(model, weights_folder / "sa_resnet50.pth.tar", gate_rtol=0, gate_atol=1e-4)


def test_hooks_inside_a_block_switch_to_the_reference_path(models):
    fast, reference = models
    x = torch.randn(1, 3, 96, 96)
    seen = []
    handle = fast.layer2[1].bn2.register_forward_hook(lambda *_: seen.append(1))
    try:
        with torch.no_grad():
            out = fast(x)
    finally:
        handle.remove()
    assert seen == [1]  # the hooked BatchNorm ran, so its block took the reference path
    with torch.no_grad():
        torch.testing.assert_close(out, reference(x), rtol=1e-4, atol=1e-4)


def test_gradients_take_the_reference_path(models):
    fast, _ = models
    fast.zero_grad(set_to_none=True)
    fast(torch.randn(1, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in fast.parameters())
    fast.zero_grad(set_to_none=True)


def test_new_weights_refresh_the_folded_cache():
    fast, reference = pair(trained_like_sa(seed=5))
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        before = fast(x)
        new = trained_like_sa(seed=6).state_dict()
        fast.load_state_dict(new)
        reference.load_state_dict(new)
        after = fast(x)
        torch.testing.assert_close(after, reference(x), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(before, after)


def test_state_dict_is_untouched(models):
    fast, reference = models
    with torch.no_grad():
        fast(torch.randn(1, 3, 64, 64))
    assert list(fast.state_dict()) == list(reference.state_dict())


def test_grad_cam_on_the_fast_path_equals_pytorch_grad_cam(models):
    fast, reference = models
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(11))
    ours = grad_cam(fast, x, [281], "layer4")
    assert folded(fast) == 16
    with GradCAM(model=reference, target_layers=[reference.layer4[-1]]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])
    reference.zero_grad(set_to_none=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_loaded_models_use_the_fast_path(tmp_path):
    loaded = load_model("sa_resnet50", folder=tmp_path, allow_download=False)
    assert all(m.fast_inference for m in loaded.module.modules() if hasattr(m, "fast_inference"))
    assert not any(
        m.fast_inference for m in sa_resnet50().modules() if hasattr(m, "fast_inference")
    )
