"""Maps over images: colour lookup, overlays, the signed difference, mosaics of many maps.

NumPy and OpenCV only: these run on every slider move, so they take milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cv2
import matplotlib
import numpy as np

from sa_viz.render.text import banner, draw_labels

COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "cividis", "gray")
DEFAULT_COLORMAP = "jet"
DEFAULT_ALPHA = 0.5
DIVERGING = "RdBu_r"
UNTRAINED_STAMP = "UNTRAINED weights"
GATE_SCALES = ("unit range", "0–1", "per group")
UNTRAINED_RED = (176, 0, 32)
TILE_GAP = 2  # pixels between the tiles of a `mosaic`
LABEL_BAND = 17  # pixels above each row of a `mosaic`'s tiles, for their labels


@cache
def lut(colormap: str) -> np.ndarray:
    """(256, 1, 3) uint8 colours of a matplotlib colormap, as cv2.applyColorMap takes them."""
    cmap = matplotlib.colormaps[colormap]
    colours = np.round(cmap(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return np.ascontiguousarray(colours.reshape(256, 1, 3))


def colorize(values: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Values in [0, 1], any shape → that shape + (3,) uint8 colours."""
    values = np.asarray(values, np.float32)
    # A 2-D array is one channel to OpenCV whatever its size; an (N, h, w) array would be an
    # image of w channels, and OpenCV 5 takes at most 128 (a 144-px-wide tile row failed).
    flat = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(1, -1)
    index = cv2.convertScaleAbs(np.clip(flat, 0.0, 1.0), alpha=255.0)  # rounds, saturates
    # applyColorMap with a user table: 4x faster than NumPy's table lookup on a 64-tile mosaic.
    return cv2.applyColorMap(index, lut(colormap)).reshape(*values.shape, 3)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) or (..., h, w) float maps → (H, W) or (..., H, W), bilinear (INTER_LINEAR)."""
    maps = np.asarray(maps, np.float32)
    h, w = size
    if maps.shape[-2:] == (h, w):
        return maps
    if maps.ndim == 2:
        return cv2.resize(maps, (w, h))
    # One 2-D resize per map into a preallocated result: as fast as stacking the maps as the
    # channels of one image (OpenCV 4 took 512, OpenCV 5 takes 128: SE units have 2048).
    resized = np.empty((*maps.shape[:-2], h, w), np.float32)
    sources, targets = maps.reshape(-1, *maps.shape[-2:]), resized.reshape(-1, h, w)
    for source, target in zip(sources, targets, strict=True):
        cv2.resize(source, (w, h), dst=target)
    return resized


def blend(image: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    return cv2.addWeighted(colours, alpha, np.broadcast_to(image, colours.shape), 1 - alpha, 0)


def overlay(
    image: np.ndarray,
    values: np.ndarray,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """Blend a [0, 1] map, resized to the image, over an (H, W, 3) uint8 image; where the map
    is NaN (the model saw nothing there) the image is shown dark and gray (`unseen`)."""
    values = resize_maps(values, image.shape[:2])
    unseen_mask = np.isnan(values)
    picture = blend(image, colorize(np.nan_to_num(values), colormap), alpha)
    return unseen(picture, image, unseen_mask)


def signed_overlay(
    image: np.ndarray, values: np.ndarray, alpha: float = 0.65, limit: float = 1.0
) -> np.ndarray:
    """A signed map in a diverging colormap centred on zero (red > 0, white 0, blue < 0) over the
    image in gray; ±`limit` get the strongest colours; NaN as in `overlay`."""
    values = resize_maps(values, image.shape[:2])
    gray = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    colours = colorize(np.nan_to_num(values) / (2 * limit) + 0.5, DIVERGING)
    return unseen(blend(gray, colours, alpha), image, np.isnan(values))


def unseen(picture: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`picture` with the `mask`ed pixels replaced by the image in dark gray: the part of the
    shown image a model did not see (its centre crop was narrower)."""
    if not mask.any():
        return picture
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    dark = cv2.cvtColor(cv2.convertScaleAbs(gray, alpha=0.3, beta=20), cv2.COLOR_GRAY2RGB)
    out = picture.copy()
    out[mask] = dark[mask]
    return out


def symmetric_limit(values: np.ndarray) -> float:
    """The largest |value| (a tiny positive number for an all-zero map; NaN ignored): a
    diverging scale's end, so the strongest difference gets the strongest colour and zero stays
    white."""
    finite = np.abs(values)[np.isfinite(values)]
    return max(float(finite.max()) if finite.size else 0.0, 1e-6)


def gate_range(maps: np.ndarray, scale: str) -> tuple[float, float]:
    """The value range gate maps are coloured with, for `GATE_SCALES` "unit range" and "0–1"."""
    if scale not in GATE_SCALES:
        raise ValueError(f"scale must be one of {GATE_SCALES}")
    if scale == "0–1":
        return 0.0, 1.0
    return float(np.min(maps)), float(np.max(maps))


def to_unit(
    maps: np.ndarray, scale: str, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Map gate values to [0, 1] for colouring: over `value_range` (default: from `scale`), or
    each map over its own min–max ("per group")."""
    maps = np.asarray(maps, np.float32)
    if scale == "per group":
        low = maps.min(axis=(-2, -1), keepdims=True)
        span = maps.max(axis=(-2, -1), keepdims=True) - low
        return (maps - low) / np.where(span > 0, span, 1)
    low, high = value_range or gate_range(maps, scale)
    return (maps - low) / (high - low) if high > low else np.zeros_like(maps)


def tile_size(image: np.ndarray, tile: int) -> tuple[int, int]:
    """(height, width) of a tile whose shorter side is `tile`, with the image's aspect."""
    h, w = image.shape[:2]
    return (tile, round(w * tile / h)) if h <= w else (round(h * tile / w), tile)


def tile_grid(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    value_range: tuple[float, float] | None = None,
    columns: int = 8,
    tile: int = 96,
    band: int = LABEL_BAND,
) -> np.ndarray:
    """Maps (N, h, w) as a grid of small overlays on the image on white, `columns` to a row,
    `TILE_GAP` pixels apart, with a `band` of white above each row; no labels (`mosaic` writes
    them into the picture, `render.gate_figures` beside it as text)."""
    n = len(maps)
    th, tw = tile_size(image, tile)
    base = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    tiles = blend(
        base, colorize(resize_maps(to_unit(maps, scale, value_range), (th, tw)), colormap), alpha
    )
    rows, gap = -(-n // columns), TILE_GAP
    row = band + th + gap  # each row: its band, then its tiles
    canvas = np.full((rows * row - gap, min(n, columns) * (tw + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = r * row + band, c * (tw + gap)
        canvas[y : y + th, x : x + tw] = tiles[i]
    return canvas


def mosaic(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    value_range: tuple[float, float] | None = None,
    columns: int = 8,
    tile: int = 96,
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
) -> np.ndarray:
    """Maps (N, h, w) as a grid of small overlays on the image, each tile labelled.

    `tile` is a tile's shorter side in pixels; `highlight` frames one tile.
    """
    n = len(maps)
    th, tw = tile_size(image, tile)
    canvas = tile_grid(
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=columns,
        tile=tile,
    )
    if canvas.shape[1] < columns * (tw + TILE_GAP) - TILE_GAP:  # fewer maps than a row
        wide = np.full((canvas.shape[0], columns * (tw + TILE_GAP) - TILE_GAP, 3), 255, np.uint8)
        wide[:, : canvas.shape[1]] = canvas
        canvas = wide
    row = LABEL_BAND + th + TILE_GAP
    if highlight is not None and 0 <= highlight < n:
        r, c = divmod(highlight, columns)
        y, x = r * row + LABEL_BAND, c * (tw + TILE_GAP)
        cv2.rectangle(canvas, (x, y), (x + tw - 1, y + th - 1), (255, 255, 255), 4)
        cv2.rectangle(canvas, (x, y), (x + tw - 1, y + th - 1), (0, 0, 0), 1)
    # Above its tile, not on it: a label never covers the map.
    texts = [labels[i] if labels is not None else str(i) for i in range(n)]
    return draw_labels(
        canvas,
        [
            (t, (i % columns) * (tw + TILE_GAP) + 1, (i // columns) * row)
            for i, t in enumerate(texts)
        ],
    )


def stamp_untrained(image: np.ndarray) -> np.ndarray:
    """A red banner across the top of a picture made by an untrained model."""
    return banner(image, UNTRAINED_STAMP, UNTRAINED_RED)


CHANNEL_ROW = 64  # channels per row when a unit's channel gates are shown as one group


def row_width(channels: int) -> int:
    """Channels per row for one group's channel gates: 64, or the largest divisor of the count
    that is at most 64 (so the rows tile it exactly)."""
    return next(w for w in range(min(CHANNEL_ROW, channels), 0, -1) if channels % w == 0)
