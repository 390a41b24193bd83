"""Text on NumPy pictures, with the DejaVu Sans font that matplotlib ships (no system fonts)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(FONT_DIR / name), size)


def text_width(text: str, size: int, bold: bool = False) -> int:
    return int(np.ceil(font(size, bold).getlength(text)))


@lru_cache(maxsize=512)  # labels with values in them never repeat: bounded
def label_sprite(text: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A white label with a dark outline, rendered once: (RGB, alpha in [0, 1])."""
    box = font(size).getbbox(text, stroke_width=2)
    sprite = Image.new("RGBA", (box[2] + 2, box[3] + 2), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).text(
        (0, 0), text, font=font(size), fill="white", stroke_width=2, stroke_fill="black"
    )
    rgba = np.asarray(sprite).astype(np.float32)
    return rgba[:, :, :3], rgba[:, :, 3:] / 255.0


def draw_labels(
    picture: np.ndarray, items: Sequence[tuple[str, int, int]], size: int = 13
) -> np.ndarray:
    """White labels with a dark outline at (x, y) top-left positions: legible on any colour.
    Each distinct label is rendered once and then only blended (FreeType's stroked text was a
    third of a 64-tile mosaic's time)."""
    out = picture.copy()
    height, width = out.shape[:2]
    for text, x, y in items:
        rgb, alpha = label_sprite(text, size)
        h, w = min(rgb.shape[0], height - y), min(rgb.shape[1], width - x)
        if h <= 0 or w <= 0:
            continue
        region = out[y : y + h, x : x + w].astype(np.float32)
        a = alpha[:h, :w]
        out[y : y + h, x : x + w] = (rgb[:h, :w] * a + region * (1 - a)).astype(np.uint8)
    return out


@lru_cache(maxsize=2048)  # tick labels repeat, values in titles do not: bounded
def text_mask(text: str, size: int, bold: bool, anchor: str) -> tuple[Image.Image, int, int]:
    """The text's coverage mask, rendered once, and its offset from the anchor point."""
    left, top, right, bottom = font(size, bold).getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font(size, bold), fill=255, anchor=anchor)
    return mask, left, top


def write(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size: int = 12,
    *,
    anchor: str = "la",
    fill: str | tuple[int, int, int] = "black",
    bold: bool = False,
) -> None:
    """Text at `xy` (PIL's anchors). Masks are cached: axis ticks and labels repeat on every
    redraw, and FreeType rendering was most of a panel's time."""
    mask, left, top = text_mask(text, size, bold, anchor)
    draw.bitmap((round(xy[0] + left), round(xy[1] + top)), mask, fill=fill)


def titled(
    picture: np.ndarray,
    title: str,
    *,
    size: int = 15,
    colour: tuple[int, int, int] = (0, 0, 0),
    width: int | None = None,
) -> np.ndarray:
    """The picture under a white band with a title (wider canvas if `width` asks for it)."""
    h, w = picture.shape[:2]
    width = max(w, width or 0, text_width(title, size, True) + 12)
    band = size + 14
    # Only the band goes through PIL: pasting a large picture into a PIL canvas and back cost
    # more than the text (measured for the gate mosaic: 2.1 ms, 0.3–0.4 ms this way).
    heading = Image.new("RGB", (width, band), "white")
    write(ImageDraw.Draw(heading), (6, band // 2), title, size, anchor="lm", fill=colour, bold=True)
    canvas = np.full((h + band, width, 3), 255, np.uint8)
    canvas[:band] = np.asarray(heading)
    canvas[band:, :w] = picture
    return canvas


def banner(picture: np.ndarray, text: str, colour: tuple[int, int, int]) -> np.ndarray:
    """A coloured band with white text across the top of a picture."""
    out = picture.copy()
    band = max(18, min(32, picture.shape[0] // 10))
    out[:band] = (0.25 * out[:band] + 0.75 * np.array(colour)).astype(np.uint8)
    canvas = Image.fromarray(out)
    write(
        ImageDraw.Draw(canvas), (6, band // 2), text, band - 6, anchor="lm", fill="white", bold=True
    )
    return np.asarray(canvas)
