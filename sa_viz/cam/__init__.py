"""Class activation maps: one method per module of `methods/`, found by a registry; the forward
pass that explain, studies and analyses share (`forward.forward_pass`); comparing two models'
maps (`compare`) and ROAD (`road`).

Grad-CAM comes from the head gradient of the forward pass itself (one forward, one backward
through the layers after the target only; `forward`); the other methods run pytorch-grad-cam's
classes (`library`), some made to respect the server's time and memory limits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import (
    DEFAULT_LAYER,
    LAYERS,
    CamCompute,
    CamMethod,
    CamResult,
    CamTarget,
    ClassChoice,
    resolve_classes,
    scale_cams,
    target_layer,
)
from sa_viz.cam.compare import cam_agreement, joint_scale
from sa_viz.cam.forward import Forward, HeadGradient, forward_pass, head_gradient
from sa_viz.cam.library import LibraryCam, library_class, own_thread_hooks
from sa_viz.cam.methods import METHODS, get_method, methods, register_method
from sa_viz.cam.methods.eigencam import bounded_eigen_cam, first_component
from sa_viz.cam.methods.scorecam import SCORECAM_CHANNELS, bounded_score_cam
from sa_viz.cam.road import ROAD_PERCENTILES, ROAD_SEED, road
from sa_viz.errors import stage

__all__ = [
    "DEFAULT_LAYER",
    "LAYERS",
    "METHODS",
    "ROAD_PERCENTILES",
    "ROAD_SEED",
    "SCORECAM_CHANNELS",
    "CamCompute",
    "CamMethod",
    "CamResult",
    "CamTarget",
    "ClassChoice",
    "Forward",
    "HeadGradient",
    "LibraryCam",
    "bounded_eigen_cam",
    "bounded_score_cam",
    "cam_agreement",
    "compute_cam",
    "first_component",
    "forward_pass",
    "get_method",
    "grad_cam",
    "grad_cam_result",
    "head_gradient",
    "joint_scale",
    "library_class",
    "methods",
    "own_thread_hooks",
    "register_method",
    "resolve_classes",
    "road",
    "scale_cams",
    "target_layer",
]


def compute_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: ClassChoice = None,
    layer: str = DEFAULT_LAYER,
    method: str = "gradcam",
    *,
    gates: bool = False,
) -> CamResult:
    """Any registered CAM method (`METHODS`), by key, for a batch: maps, raw maps, logits and
    each image's class; with `gates`, every attention unit's gates of the same forward pass.

    `class_idx`: None for each image's own top-1, one class for all, or one per image (None in
    the list: that image's own top-1). Grad-CAM takes one forward and one head-only backward;
    another method runs its own passes after that forward (which gave the classes and gates).
    """
    spec = get_method(method)
    forward = forward_pass(model, x, class_idx, layer, gates=gates, grad_cam=spec.compute is None)
    with stage("cam"):
        if spec.compute is None:
            raw = forward.raw
            maps = scale_cams(raw, tuple(x.shape[-2:]))
        else:
            maps, raw = spec.compute(model, x, forward.classes, layer)
    return CamResult(maps, raw, forward.logits, forward.classes, forward.gates)


def grad_cam_result(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | None = None,
    layer: str = DEFAULT_LAYER,
) -> CamResult:
    """Grad-CAM for a batch from one forward and one head-only backward."""
    return compute_cam(model, x, class_idx, layer, "gradcam")


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | None = None,
    layer: str = DEFAULT_LAYER,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Grad-CAM maps, float32 (B, H, W) in [0, 1] at the input's resolution.

    `class_idx`: None for each image's own top-1, one index for all, or one per image.
    `normalize=False` returns the raw maps, (B, h, w) at the layer's resolution, unscaled.
    """
    result = grad_cam_result(model, x, class_idx, layer)
    return result.maps if normalize else result.raw
