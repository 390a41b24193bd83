"""Grad-CAM equals pytorch-grad-cam's, from a head-only gradient; other methods by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import seeded, trained_like_sa
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from sa_viz.cam import (
    METHODS,
    SCORECAM_CHANNELS,
    bounded_score_cam,
    cam_agreement,
    compute_cam,
    grad_cam,
    grad_cam_result,
    head_gradient,
    joint_scale,
    own_thread_hooks,
    target_layer,
)
from sa_viz.hooks import reporting
from sa_viz.models import resnet50


@pytest.fixture(scope="module", params=["resnet50", "sa_resnet50"])
def model(request):
    return seeded(resnet50) if request.param == "resnet50" else trained_like_sa()


def reference(model, x, classes, layer):
    targets = None if classes is None else [ClassifierOutputTarget(c) for c in classes]
    with GradCAM(model=model, target_layers=[target_layer(model, layer)]) as cam:
        return cam(input_tensor=x, targets=targets)


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
@pytest.mark.parametrize("classes", [None, [7, 281]], ids=["top1", "given"])
def test_grad_cam_equals_pytorch_grad_cam(model, layer, classes):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 256)
    ours = grad_cam(model, x, classes, layer)
    theirs = reference(model, x, classes, layer)
    assert ours.dtype == np.float32 and ours.shape == (2, 224, 256)
    assert ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.abs(ours - theirs).max() < 1e-4


def test_raw_maps_are_unscaled(model):
    x = torch.randn(1, 3, 224, 224)
    raw = grad_cam(model, x, normalize=False)
    assert raw.shape == (1, 7, 7) and raw.min() >= 0
    assert raw.max() != pytest.approx(1.0)  # not min-max scaled


def convolutions_in_graph(root) -> int:
    """ConvolutionBackward nodes reachable from an autograd node."""
    seen, stack, count = set(), [root], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += "Convolution" in type(node).__name__
        stack.extend(next_node for next_node, _ in node.next_functions)
    return count


@pytest.mark.parametrize(("layer", "convs_after"), [("layer4", 0), ("layer3", 10)])
def test_the_backward_runs_through_the_head_only(model, layer, convs_after):
    """The autograd graph holds only the layers after the target: at layer4, no convolution at
    all (avgpool and fc); at layer3, layer4's 10 convolutions. The full network has 53."""
    model.zero_grad(set_to_none=True)  # the pytorch-grad-cam reference runs leave some
    with head_gradient(model, layer) as probe:
        logits = model(torch.randn(1, 3, 64, 64))
        assert convolutions_in_graph(logits.grad_fn) == convs_after
        assert probe.activation.is_leaf and probe.activation.requires_grad
    assert not any(p.grad is not None for p in model.parameters())


def test_grad_mode_is_restored_and_works_inside_no_grad(model):
    x = torch.randn(1, 3, 64, 64)
    expected = grad_cam(model, x)
    with torch.no_grad():
        inside = grad_cam(model, x)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        inference_input = x.clone()
    np.testing.assert_allclose(grad_cam(model, inference_input), expected, atol=1e-6)
    np.testing.assert_allclose(inside, expected, atol=1e-6)
    assert torch.is_grad_enabled()


def test_hooks_are_removed(model):
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    for _ in range(3):
        grad_cam(model, torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError), head_gradient(model, "layer4"):
        raise ValueError("boom")
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert after == before


def test_result_carries_logits_and_classes(model):
    x = torch.randn(2, 3, 64, 64)
    result = grad_cam_result(model, x, 5)
    assert result.class_idx == [5, 5]
    with torch.no_grad():
        torch.testing.assert_close(result.logits, model(x), rtol=1e-4, atol=1e-4)


def test_bad_arguments_are_refused(model):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="outside"):
        grad_cam(model, x, 1000)
    with pytest.raises(ValueError, match="no layer"):
        grad_cam(model, x, layer="layer9")
    with pytest.raises(ValueError, match="unknown CAM method"):
        compute_cam(model, x, method="magic")


FAST_METHODS = [m for m in METHODS if m != "scorecam"]


@pytest.mark.parametrize("method", FAST_METHODS)
def test_every_method_by_name(model, method):
    x = torch.randn(1, 3, 96, 96)
    result = compute_cam(model, x, 3, "layer4", method)
    assert result.maps.shape == (1, 96, 96) and result.maps.dtype == np.float32
    assert result.raw.shape == (1, 3, 3) and result.raw.min() >= 0
    assert result.class_idx == [3]
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    assert not any(p.grad is not None for p in model.parameters()), "param grads left behind"


def test_scorecam_runs_by_name_and_reports_its_passes():
    """ScoreCAM masks the input with the layer's most active channels, one pass each, and says
    how far it is after each batch of passes."""
    model = seeded(resnet50)
    seen = []
    with reporting(seen.append):
        result = compute_cam(model, torch.randn(1, 3, 224, 224), None, "layer4", "scorecam")
    assert result.maps.shape == (1, 224, 224)
    assert METHODS["scorecam"].long and str(SCORECAM_CHANNELS) in METHODS["scorecam"].note
    assert seen == [0.5, 1.0]  # 32 channels, 16 a pass at 224 × 224


def test_bounded_scorecam_scores_only_the_most_active_channels():
    """With `channels`, only the channels of highest mean activation are scored (the others
    weigh 0) and the softmax runs over those: the same weights as the library's ScoreCAM on a
    layer that has only those channels."""
    model = seeded(resnet50)
    x = torch.randn(1, 3, 40, 48, generator=torch.Generator().manual_seed(5))
    targets = [ClassifierOutputTarget(7)]
    with bounded_score_cam()(model, [model.layer1]) as cam:
        activations = cam.activations_and_grads(x)  # run once to read the layer
        acts = cam.activations_and_grads.activations[0].numpy()
        cam.channels = 10
        weights = cam.get_cam_weights(x, model.layer1, targets, acts, None)
        cam.channels = None
        every = cam.get_cam_weights(x, model.layer1, targets, acts, None)
    top = np.argsort(-acts.mean(axis=(2, 3))[0])[:10]
    assert set(np.flatnonzero(weights[0])) == set(top)
    assert weights[0].sum() == pytest.approx(1.0)
    scores = np.log(every[0][top])  # the full softmax's scores, up to a constant
    np.testing.assert_allclose(weights[0][top], np.exp(scores) / np.exp(scores).sum(), rtol=1e-4)
    del activations


def test_library_hooks_see_only_their_own_thread():
    """A CAM method's hooks on a shared model ignore another thread's forward passes (a server
    runs Grad-CAM for one user while a ScoreCAM runs for another)."""
    import threading

    model = seeded(resnet50)
    x = torch.randn(1, 3, 64, 64)
    other = threading.Thread(target=lambda: [model(x) for _ in range(3)])
    with bounded_score_cam()(model, [model.layer4]) as cam, own_thread_hooks(cam, [model.layer4]):
        other.start()
        other.join()
        assert cam.activations_and_grads.activations == []
        cam.activations_and_grads(x)
        assert len(cam.activations_and_grads.activations) == 1


def test_bounded_scorecam_scores_as_the_library_does():
    """Our ScoreCAM makes each batch of masked inputs when needed instead of all 2048 at once."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = seeded(resnet50)
    x = torch.randn(1, 3, 40, 48, generator=torch.Generator().manual_seed(5))
    targets = [ClassifierOutputTarget(7)]
    maps = []
    for method in (ScoreCAM, bounded_score_cam()):
        with method(model, [model.layer1]) as cam:  # 256 channels: 3 batches, the last short
            cam.batch_size = 100
            maps.append(cam(input_tensor=x, targets=targets))
    np.testing.assert_allclose(maps[1], maps[0], rtol=1e-5, atol=1e-6)
    assert maps[0].std() > 0


def test_comparison_figures():
    a = np.random.default_rng(0).random((7, 7)).astype(np.float32)
    assert cam_agreement(a, a) == pytest.approx({"pearson": 1.0, "iou_top": 1.0})
    assert cam_agreement(a, 1 - a)["pearson"] == pytest.approx(-1.0)
    assert np.isnan(cam_agreement(a, np.zeros_like(a))["pearson"])
    big, small = joint_scale([a * 10, a], (14, 14))
    assert 0.5 < big.max() <= 1.0
    np.testing.assert_allclose(small * 10, big, atol=1e-5)  # one scale: the ratio survives
