"""Localisation against object boxes (when the image's boxes are known): the pointing game (is
the CAM's peak inside a box; Zhang et al., ECCV 2016), the energy-based pointing game (the share
of the CAM's mass inside the boxes; Wang et al., Score-CAM, CVPRW 2020) and the IoU of the CAM
above half its maximum with the boxes' union."""

from __future__ import annotations

import numpy as np

from sa_viz.analyses import Analysis, Box, ImageInput, Result

THRESHOLD = 0.5  # of the CAM's maximum, for the IoU


def box_mask(boxes: tuple[Box, ...], shape: tuple[int, int]) -> np.ndarray:
    """The union of the boxes as a mask of the image's pixels (a pixel is in a box when its
    centre is)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    return mask


def localisation(image: ImageInput) -> Result | None:
    if not image.boxes:
        return None
    cam = np.asarray(image.cam, dtype=np.float64)
    if not cam.max() > 0:  # a flat map points nowhere
        nothing = float("nan")
        return Result({"pointing_hit": nothing, "energy_inside": nothing, "box_iou": nothing})
    inside = box_mask(image.boxes, cam.shape)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    total = cam.sum()
    above = cam >= THRESHOLD * cam.max() if cam.max() > 0 else np.zeros_like(inside)
    union = (above | inside).sum()
    return Result(
        {
            "pointing_hit": float(inside[peak]),
            "energy_inside": float(cam[inside].sum() / total) if total > 0 else float("nan"),
            "box_iou": float((above & inside).sum() / union) if union else float("nan"),
        }
    )


ANALYSIS = Analysis(
    name="localisation",
    title="Localisation: pointing game, energy inside the boxes, IoU with the boxes",
    per_image=localisation,
    numbers=("pointing_hit", "energy_inside", "box_iou"),
    higher_is_better={"pointing_hit": True, "energy_inside": True, "box_iou": True},
)
