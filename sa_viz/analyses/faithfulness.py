"""Deletion and insertion (Petsiuk et al., RISE, BMVC 2018): is the map faithful to the model?

The image's pixels are ordered by the CAM, highest first. Deletion replaces the first k/N of
them by a baseline and follows the class's probability as k goes 0…N: a faithful map makes it
fall fast (a small area under the curve). Insertion starts from the baseline and puts the first
k/N back: a faithful map makes it rise fast (a large area). The baselines: "mean", the dataset's
mean colour (0 in the normalised input; RISE's deletion), and "blur", the image blurred
(RISE's insertion). All 2·(N+1) images go through the model as one batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import functional as TF

from sa_viz.analyses import Analysis, ImageInput, Result, probability

STEPS = 16
BASELINES = ("mean", "blur")
BLUR_SIGMA = 10.0  # in pixels of the 224-pixel input: no object detail survives it


def baseline(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The image with nothing of it left: the mean colour, or the image blurred."""
    if kind == "mean":
        return torch.zeros_like(x)  # the normalised input's 0 is the dataset's mean colour
    if kind == "blur":
        kernel = int(4 * BLUR_SIGMA) | 1  # odd, ±2σ
        return TF.gaussian_blur(x, [kernel, kernel], [BLUR_SIGMA, BLUR_SIGMA])
    raise ValueError(f"unknown baseline {kind!r}: one of {', '.join(BASELINES)}")


def first_pixels(cam: np.ndarray, steps: int) -> tuple[torch.Tensor, np.ndarray]:
    """Masks (steps + 1, 1, H, W): in row k, the round(k/steps · H·W) pixels the CAM ranks
    highest (ties in reading order); and those fractions."""
    h, w = cam.shape
    order = np.argsort(-cam.ravel(), kind="stable")
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    counts = np.rint(np.linspace(0, h * w, steps + 1)).astype(np.int64)
    masks = torch.from_numpy(rank.reshape(1, h, w) < counts[:, None, None]).unsqueeze(1)
    return masks, counts / (h * w)


def deletion_insertion(
    image: ImageInput,
    steps: int = STEPS,
    deletion_baseline: str = "mean",
    insertion_baseline: str = "blur",
) -> Result:
    x = image.x
    masks, fractions = first_pixels(image.cam, steps)
    masks = masks.to(x.device)
    deleted = torch.where(masks, baseline(x, deletion_baseline), x)
    inserted = torch.where(masks, x, baseline(x, insertion_baseline))
    p = probability(image.model, torch.cat([deleted, inserted]), image.target, len(masks) * 2)
    deletion, insertion = p[: len(masks)], p[len(masks) :]
    return Result(
        {
            "deletion_auc": float(np.trapezoid(deletion, fractions)),
            "insertion_auc": float(np.trapezoid(insertion, fractions)),
        },
        {"fractions": fractions.tolist(), "deletion": deletion.tolist(),
         "insertion": insertion.tolist()},
    )  # fmt: skip


ANALYSIS = Analysis(
    name="deletion_insertion",
    title=f"Deletion and insertion ({STEPS} steps; deletion to the mean colour, insertion from "
    "the blurred image)",
    per_image=deletion_insertion,
    numbers=("deletion_auc", "insertion_auc"),
    higher_is_better={"deletion_auc": False, "insertion_auc": True},
)
