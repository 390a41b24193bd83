"""Two models' maps of one image side by side: on one scale (`joint_scale`) and how much they
agree (`cam_agreement`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def joint_scale(raw_maps: Sequence[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Several models' raw maps on one scale: divided by the largest value of all of them, then
    resized to (H, W). Unlike per-map min-max, this keeps which model's evidence is stronger."""
    h, w = size
    top = max(float(np.max(r)) for r in raw_maps)
    return [np.clip(cv2.resize(np.float32(r / (top + 1e-7)), (w, h)), 0.0, 1.0) for r in raw_maps]


def cam_agreement(a: np.ndarray, b: np.ndarray, top_fraction: float = 0.2) -> dict[str, float]:
    """How much two maps of the same image agree: Pearson r over all pixels, and the IoU of
    their top `top_fraction` regions (each map thresholded at its own quantile). Both figures
    ignore each map's scale. NaN when a map is constant (no region stands out)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "iou_top": float("nan")}
    pearson = float(np.corrcoef(a, b)[0, 1])
    top_a = a >= np.quantile(a, 1 - top_fraction)
    top_b = b >= np.quantile(b, 1 - top_fraction)
    iou = float((top_a & top_b).sum() / max(1, (top_a | top_b).sum()))
    return {"pearson": pearson, "iou_top": iou}
