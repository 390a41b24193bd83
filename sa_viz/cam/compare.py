"""Two models' maps of one image side by side: on one scale (`joint_scale`) and how much they
agree (`cam_agreement`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sa_viz.data.regions import Region, place


def joint_scale(
    raw_maps: Sequence[np.ndarray],
    size: tuple[int, int],
    regions: Sequence[Region | None] | None = None,
) -> list[np.ndarray]:
    """Several models' raw maps on one scale: divided by the largest value of all of them, then
    resized to (H, W), each over its `regions` box of the picture (`place`; None: all of it,
    NaN outside). Unlike per-map min-max, this keeps which model's evidence is stronger."""
    top = max(float(np.max(r)) for r in raw_maps)
    regions = regions or [None] * len(raw_maps)
    return [
        np.clip(place(np.float32(r / (top + 1e-7)), region, size), 0.0, 1.0)
        for r, region in zip(raw_maps, regions, strict=True)
    ]


def cam_agreement(a: np.ndarray, b: np.ndarray, top_fraction: float = 0.2) -> dict[str, float]:
    """How much two maps of the same image agree: Pearson r over the pixels both cover (NaN
    marks a pixel a map does not: a model that saw a narrower crop), and the IoU of their top
    `top_fraction` regions there (each map thresholded at its own quantile). Both figures ignore
    each map's scale. NaN when a map is constant (no region stands out)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    both = np.isfinite(a) & np.isfinite(b)
    if not both.all():
        a, b = a[both], b[both]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "iou_top": float("nan")}
    pearson = float(np.corrcoef(a, b)[0, 1])
    top_a = a >= np.quantile(a, 1 - top_fraction)
    top_b = b >= np.quantile(b, 1 - top_fraction)
    iou = float((top_a & top_b).sum() / max(1, (top_a | top_b).sum()))
    return {"pearson": pearson, "iou_top": iou}
