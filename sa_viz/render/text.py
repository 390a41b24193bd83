"""Text on NumPy pictures, with the DejaVu Sans font that matplotlib ships (no system fonts)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
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


def draw_labels(
    picture: np.ndarray, items: Sequence[tuple[str, int, int]], size: int = 13
) -> np.ndarray:
    """White labels with a dark outline at (x, y) top-left positions: legible on any colour."""
    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    for text, x, y in items:
        draw.text((x, y), text, font=font(size), fill="white", stroke_width=2, stroke_fill="black")
    return np.asarray(canvas)


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
    draw.text(xy, text, font=font(size, bold), fill=fill, anchor=anchor)


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
    canvas = Image.new("RGB", (width, h + band), "white")
    canvas.paste(Image.fromarray(picture), (0, band))
    write(ImageDraw.Draw(canvas), (6, band // 2), title, size, anchor="lm", fill=colour, bold=True)
    return np.asarray(canvas)


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
