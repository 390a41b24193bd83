"""Where each model looked: the centre crops of models evaluated with different crop fractions,
as boxes of the widest crop (the display), and maps moved between a model's input and the
display.

`place` puts a map over a model's input (its pixels or a layer's grid) onto the display, NaN
where that model saw nothing; `take` reads a display map back on a model's input grid. Both
are bilinear with pixel centres aligned, as OpenCV's and torchvision's resizes are. The crop
arithmetic is torchvision's (`Resize(int)` then `CenterCrop`), so a box is where the pixels
the model took lie, to a fraction of a pixel (tested against the pixels themselves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from sa_viz.data.transforms import Preprocessing

Region = tuple[float, float, float, float]  # (x0, y0, x1, y1) in a picture's pixels

# Centre-crop mode: crop fractions this close count as one region of the image (timm's
# floor(224 / 0.875) = 256, floor(256 / 0.875) = 292: 0.2 % apart, under a pixel at the edge);
# each model still takes its own transform exactly.
SAME_FRACTION = 0.005


def crop_region(width: int, height: int, p: Preprocessing, display: Preprocessing) -> Region | None:
    """The box of `display`'s centre crop of a `width` × `height` upright image (in the
    display's pixels) that `p`'s centre crop covers; None where `p` is not narrower (within
    `SAME_FRACTION`): it covers the display."""
    if display.crop_fraction - p.crop_fraction <= SAME_FRACTION:
        return None
    return _crop_region(width, height, p, display)


def widest(preprocessing: Sequence[Preprocessing]) -> Preprocessing:
    """The transform whose centre crop keeps the most of the image (the first of those within
    `SAME_FRACTION` of the widest): every other crop lies inside its crop."""
    widest = max(p.crop_fraction for p in preprocessing)
    return next(p for p in preprocessing if widest - p.crop_fraction <= SAME_FRACTION)


def _crop_box(width: int, height: int, p: Preprocessing) -> Region:
    """The box of the upright image (its pixels) that `p`'s centre crop covers, by
    torchvision's arithmetic: the shorter side resized (the longer truncated), the crop's
    offsets rounded."""
    rw, rh = resized_size(width, height, p.resize)
    left, top = round((rw - p.crop) / 2.0), round((rh - p.crop) / 2.0)
    sx, sy = width / rw, height / rh
    return left * sx, top * sy, (left + p.crop) * sx, (top + p.crop) * sy


def _crop_region(width: int, height: int, p: Preprocessing, display: Preprocessing) -> Region:
    """`p`'s crop box in the pixels of `display`'s crop (which holds it)."""
    x0, y0, x1, y1 = _crop_box(width, height, p)
    dx0, dy0, dx1, dy1 = _crop_box(width, height, display)
    sx, sy = display.crop / (dx1 - dx0), display.crop / (dy1 - dy0)
    return (x0 - dx0) * sx, (y0 - dy0) * sy, (x1 - dx0) * sx, (y1 - dy0) * sy


def place(values: np.ndarray, region: Region | None, size: tuple[int, int]) -> np.ndarray:
    """A map over a model's input (any grid: the input's pixels or a layer's), over a picture
    of (height, width) `size` in which that input covers `region` (None: all of it); NaN on
    the pixels whose centres lie outside the region. Bilinear, pixel centres aligned (as
    OpenCV's and torchvision's resizes)."""
    if region is None:
        return _fit(values, size)
    values = np.asarray(values, np.float32)
    h, w = size
    x0, y0, x1, y1 = region
    rows, cols = values.shape
    # A picture pixel's centre u + 0.5 lies at (u + 0.5 - x0) / (x1 - x0) of the region.
    xs = (np.arange(w, dtype=np.float32) + 0.5 - x0) * (cols / (x1 - x0)) - 0.5
    ys = (np.arange(h, dtype=np.float32) + 0.5 - y0) * (rows / (y1 - y0)) - 0.5
    placed = _remap(values, xs, ys)
    outside_x = (np.arange(w) + 0.5 < x0) | (np.arange(w) + 0.5 >= x1)
    outside_y = (np.arange(h) + 0.5 < y0) | (np.arange(h) + 0.5 >= y1)
    placed[outside_y, :] = np.nan
    placed[:, outside_x] = np.nan
    return placed


def take(values: np.ndarray, region: Region | None, size: tuple[int, int]) -> np.ndarray:
    """The inverse of `place`: a map over the picture, read on a (height, width) `size` grid
    over `region` (None: all of it), from the picture's pixels inside the region only."""
    if region is None:
        return _fit(values, size)
    values = np.asarray(values, np.float32)
    h, w = size
    x0, y0, x1, y1 = region
    # The picture's pixels whose centres lie in the region (as `place` filled them); a region
    # may stick out of the picture by a fraction of a pixel (two crops' offsets each rounded)
    rows, cols = values.shape
    c0, c1 = max(math.ceil(x0 - 0.5), 0), min(math.ceil(x1 - 0.5), cols)
    r0, r1 = max(math.ceil(y0 - 0.5), 0), min(math.ceil(y1 - 0.5), rows)
    inside = values[r0:r1, c0:c1]
    xs = x0 + (np.arange(w, dtype=np.float32) + 0.5) * ((x1 - x0) / w) - 0.5 - c0
    ys = y0 + (np.arange(h, dtype=np.float32) + 0.5) * ((y1 - y0) / h) - 0.5 - r0
    return _remap(inside, xs, ys)


def _fit(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`values` (float32) resized bilinearly to (height, width) `size`; as they are if they
    have it."""
    values = np.asarray(values, np.float32)
    h, w = size
    return values if values.shape == (h, w) else cv2.resize(values, (w, h))


def _remap(values: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`values` sampled bilinearly at columns `xs` × rows `ys` (edges repeated)."""
    map_x = np.broadcast_to(xs[None, :], (len(ys), len(xs)))
    map_y = np.broadcast_to(ys[:, None], (len(ys), len(xs)))
    return cv2.remap(
        np.ascontiguousarray(values),
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def resized_size(w: int, h: int, shorter: int) -> tuple[int, int]:
    """torchvision's `resize(img, int)` arithmetic: the longer side truncated."""
    return (shorter, int(shorter * h / w)) if w <= h else (int(shorter * w / h), shorter)
