"""What every CAM method shares: the layers a CAM reads, a method's entry (`CamMethod`), the
result layout (`CamResult`), each image's target class and pytorch-grad-cam's scaling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

LAYERS = ("layer1", "layer2", "layer3", "layer4")
DEFAULT_LAYER = "layer4"

# What pytorch-grad-cam calls a target: a callable from a model's output to the score to explain.
CamTarget = Callable[[torch.Tensor], torch.Tensor]
# A method's computation: (model, x (B, 3, H, W), each image's class, layer) → (maps, raw), the
# maps (B, H, W) in [0, 1] at x's size and the raw maps (B, h, w) at the layer's, ReLU'd, unscaled.
CamCompute = Callable[[nn.Module, torch.Tensor, list[int], str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class CamMethod:
    """One CAM method: its key (`--method`, the page's choice), its title and a note of what it
    computes. `compute` None: Grad-CAM from the head gradient of the forward pass itself
    (`sa_viz.cam.forward.forward_pass`), no pass of its own. `long`: many forward passes (a server
    runs it apart from one-pass methods). `order`: its place in lists (the page's dropdown)."""

    key: str
    title: str
    note: str = ""
    compute: CamCompute | None = field(default=None, repr=False, compare=False)
    long: bool = False
    order: int = 100


@dataclass(frozen=True)
class CamResult:
    """CAMs for a batch. `maps`: (B, H, W) in [0, 1] at input resolution, min-max per image as
    pytorch-grad-cam scales them. `raw`: (B, h, w) at the layer's resolution, after ReLU and before
    any scaling, so maps of two models can be put on one scale. `gates`: every attention unit's
    gates of the same forward pass, where they were asked for (`compute_cam(..., gates=True)`)."""

    maps: np.ndarray
    raw: np.ndarray
    logits: torch.Tensor
    class_idx: list[int]
    gates: dict[str, Any] = field(default_factory=dict)


def target_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output a CAM reads: `layer4` means `model.layer4[-1]`, as is customary."""
    try:
        module = model.get_submodule(layer)
    except AttributeError as error:
        raise ValueError(f"the model has no layer named {layer!r}") from error
    if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 0:
        module = module[-1]
    return module


ClassChoice = int | Sequence[int | None] | None


def resolve_classes(logits: torch.Tensor, class_idx: ClassChoice) -> list[int]:
    """Per-image target class: each image's own top-1 if None, else the class(es) given, one for
    all or one per image (None in the list: that image's own top-1, as a study does for images
    without a label)."""
    b, n = logits.shape
    own = logits.argmax(1).tolist()
    if class_idx is None:
        return own
    given = [int(class_idx)] * b if isinstance(class_idx, (int, np.integer)) else list(class_idx)
    if len(given) != b:
        raise ValueError(f"got {len(given)} class indices for a batch of {b}")
    classes = [own[i] if c is None else int(c) for i, c in enumerate(given)]
    for c in classes:
        if not 0 <= c < n:
            raise ValueError(f"class index {c} is outside 0..{n - 1}")
    return classes


def scale_cams(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's scaling, step for step: min-max, bilinear resize to (H, W), min-max.

    Written out because pytorch-grad-cam does it only inside a CAM object's forward; the steps
    (cv2.resize, the 1e-7 guard, the second min-max) are what make the maps equal to its output.
    """
    h, w = size
    out = np.empty((len(raw), h, w), dtype=np.float32)
    for i, cam in enumerate(np.asarray(raw, dtype=np.float32)):
        for step in range(2):
            cam = cam - cam.min()
            cam = cam / (1e-7 + cam.max())
            if step == 0:
                cam = cv2.resize(np.float32(cam), (w, h))
        out[i] = cam
    return out


def no_inference_tensor(x: torch.Tensor) -> torch.Tensor:
    """`x`, or a copy where it was made in inference mode (autograd can't record it)."""
    return x.clone() if x.is_inference() else x
