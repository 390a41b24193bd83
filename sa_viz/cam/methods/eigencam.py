"""EigenCAM (Muhammad and Yeasin, IJCNN 2020), pytorch-grad-cam's, with the first principal
component computed within the time limit (`first_component`); class-agnostic, activations only."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import CamMethod, CamTarget
from sa_viz.cam.library import LibraryCam
from sa_viz.hooks import check_time

if TYPE_CHECKING:
    from pytorch_grad_cam.base_cam import BaseCAM


def first_component(activation_batch: np.ndarray) -> np.ndarray:
    """(B, C, h, w) → (B, h, w): each image's positions projected on the first principal
    component of its channels, as pytorch-grad-cam's `get_2d_projection` computes it.

    Why by hand: the library asks NumPy for the full SVD of the (positions × channels) matrix,
    whose U is positions × positions: 12,544² floats (630 MB) and minutes of LAPACK for a
    panorama at layer1, in one call no time limit can interrupt. Only the first right singular
    vector is needed, and the reduced SVD gives the same one (the same LAPACK driver; equal
    bit for bit in the tests) with U at most positions × channels. The time limit is checked
    between images and around each decomposition.
    """
    batch = np.nan_to_num(np.asarray(activation_batch, dtype=np.float32), nan=0.0, copy=True)
    projections = []
    for activations in batch:
        check_time()
        flat = activations.reshape(activations.shape[0], -1).T
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        check_time()
        projections.append((flat @ vt[0]).reshape(activations.shape[1:]))
    return np.float32(projections)


@cache
def bounded_eigen_cam(name: str) -> type:
    """pytorch-grad-cam's EigenCAM or EigenGradCAM with `first_component` as its projection."""
    import pytorch_grad_cam

    library = getattr(pytorch_grad_cam, name)
    uses_gradients = name == "EigenGradCAM"

    def get_cam_image(
        self: BaseCAM,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: Sequence[CamTarget],
        activations: np.ndarray,
        grads: np.ndarray,
        smooth: bool,
    ) -> np.ndarray:
        return first_component(grads * activations if uses_gradients else activations)

    return type(f"Bounded{name}", (library,), {"get_cam_image": get_cam_image})


METHOD = CamMethod(
    "eigencam",
    "EigenCAM",
    "first principal component; class-agnostic",
    LibraryCam(lambda: bounded_eigen_cam("EigenCAM"), gradients=False),
    order=5,
)
