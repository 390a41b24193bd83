"""The server's speed-up (sa_viz/app/speed.py): BatchNorm folded into the convolutions computes
what the model as built computes, for every registered model.

Tolerances: folding reorders float32 arithmetic and the differences compound over 16 blocks;
relative 1e-5 on the logits and 1e-4 on the gates bound them with margin (observed: ~5e-7
relative on the logits, ~1e-5 on the deepest gates).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import matches_functional, randomize_gates, seeded
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from sa_viz.app.engine import for_serving
from sa_viz.app.speed import fold_batchnorm
from sa_viz.cam import grad_cam
from sa_viz.models import get_model, list_models, sa_resnet50
from sa_viz.models.weights import LoadedModel, WeightsStatus
from sa_viz.probes import record_gates


def with_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Running statistics and affine parameters that are not the identity, as trained ones."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
    return model


@pytest.fixture(scope="module", params=list_models())
def pair(request):
    """(folded, as built) copies of one registered model."""
    model = with_statistics(randomize_gates(seeded(get_model(request.param).builder)))
    return fold_batchnorm(copy.deepcopy(model)), model


@pytest.mark.parametrize("shape", [(1, 224, 224), (2, 160, 192), (1, 97, 131)])
def test_same_logits_and_gates(pair, shape):
    folded, reference = pair
    b, h, w = shape
    x = torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(h))
    with torch.inference_mode(), record_gates(folded) as got, record_gates(reference) as want:
        logits, expected = folded(x), reference(x)
    scale = expected.abs().max()
    torch.testing.assert_close(logits / scale, expected / scale, rtol=0, atol=1e-5)
    assert list(got) == list(want)
    for name in want:
        torch.testing.assert_close(got[name].channel, want[name].channel, rtol=0, atol=1e-4)
        if want[name].spatial is not None:
            torch.testing.assert_close(got[name].spatial, want[name].spatial, rtol=0, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())  # all folded
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules()) == 53


def test_grad_cam_on_the_folded_model_equals_pytorch_grad_cam(pair):
    folded, reference = pair
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(11))
    ours = grad_cam(folded, x, [281], "layer4")
    with GradCAM(model=reference, target_layers=[reference.layer4[-1]]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])
    reference.zero_grad(set_to_none=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_folded_sa_resnet50_matches_the_independent_implementation(weights_folder):
    """The official-format file, loaded and then folded, against the functional SA-ResNet-50."""
    model = sa_resnet50().eval()
    matches_functional(model, weights_folder / "sa_resnet50.pth.tar", 0, 1e-4, fold_batchnorm)


def test_folding_needs_eval_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(sa_resnet50().train())


def test_the_server_folds_a_copy():
    """`for_serving` leaves the caller's model as it was: tests and callers share models."""
    model = seeded(sa_resnet50)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    status = WeightsStatus("sa_resnet50", "SA-ResNet-50", True, "test", "test")
    served = for_serving(LoadedModel("sa_resnet50", model, status))
    assert served.module is not model and served.status is status
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
