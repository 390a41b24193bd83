"""Small charts drawn directly into NumPy pictures: a heatmap with a colour bar, bar charts,
titles and captions that wrap, and a unit's spatial gates over the image (`render.gate_panels`
draws the rest of a unit's pictures from these).

Drawn by hand with PIL because matplotlib needs 0.25–1 s per figure on this project's 2-core
machines, and these are redrawn on every change of unit, group or colour; each takes a few
milliseconds here. matplotlib (render.figures) still makes the figures people export for papers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from sa_viz.probes import GateLayout, UnitGates
from sa_viz.render.gate_words import (
    count,
    kind_of,
    layout_of,
    maps_of_row,
    number,
    row_word,
    sentence,
    softmax_spatial,
    spatial_how,
    spatial_name,
)
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    LABEL_BAND,
    TILE_GAP,
    UNTRAINED_RED,
    UNTRAINED_STAMP,
    colorize,
    gate_range,
    mosaic,
    tile_size,
)
from sa_viz.render.text import text_width, titled, write

# The unit's mosaic: tiles of this shorter side, this many to a row, under a title this size
# (`gate_mosaic_panel`; `mosaic_tile_at` finds a tile from a click).
# 64 px: the grid is ~870 px wide, so an 800-px window shows it at 4/5 of its size (96-px tiles
# were shown at 0.56, their labels at 7 px; the tiles' size on screen is about the same).
MOSAIC_TILE, MOSAIC_COLUMNS, MOSAIC_TITLE = 64, 8, 14
GRID = (225, 225, 225)
AXIS = (90, 90, 90)
BLUE = (59, 110, 168)
ORANGE = (221, 132, 82)


def _title(title: str, untrained: bool) -> tuple[str, tuple[int, int, int]]:
    return (f"{UNTRAINED_STAMP} · {title}", UNTRAINED_RED) if untrained else (title, (0, 0, 0))


def unit_range(gates: UnitGates, scale: str) -> tuple[float, float] | None:
    """The colour range of a unit's spatial gates under `scale`: every group's every channel
    ("unit range"), 0–1, or None ("per group": each map its own). One range per unit, used by
    the mosaic (whose tiles, channel means, lie inside it), the group view and the text."""
    if scale == "per group" or gates.spatial is None:
        return None
    return gate_range(gates.spatial[0].numpy(), scale)


def scale_bar(
    scale: str,
    value_range: tuple[float, float] | None,
    colormap: str,
    *,
    height: int,
    name: str = "spatial gate",
) -> np.ndarray:
    """The vertical colour bar of spatial gates (`name`) coloured with `scale` (`unit_range`)."""
    if value_range is None:  # "per group": each map from its own lowest to its highest value
        return colorbar(0.0, 1.0, colormap, height=height, label="each map: min → max")
    return colorbar(*value_range, colormap, height=height, label=f"{name} ({scale})")


def colour_strip(
    width: int,
    low: float,
    high: float,
    colormap: str,
    label: str,
    *,
    signed: bool = False,
    size: int = 14,
    lines: int = 1,
) -> np.ndarray:
    """A horizontal colour bar `width` pixels wide with its ends' (and middle's) values, and a
    label under it wrapped to the width, in at least `lines` lines (pictures shown side by side
    get strips of one height: `strip_lines`): the scale of the picture above it."""
    margin = max(text_width(f"{-abs(low):+.2f}", size), text_width(f"{high:+.2f}", size)) // 2 + 4
    bar_width, bar_height = max(20, width - 2 * margin), 12
    ramp = colorize(np.linspace(0, 1, bar_width)[None, :].repeat(bar_height, 0), colormap)
    wrapped = _wrap_strip(width, label, size)
    height = 6 + bar_height + 4 + size + 4 + (size + 4) * max(lines, len(wrapped)) + 4
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(Image.fromarray(ramp), (margin, 6))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([margin - 1, 5, margin + bar_width, 6 + bar_height], outline=AXIS)
    y = 6 + bar_height + 3
    ticks = ((0.0, low), (0.5, (low + high) / 2), (1.0, high))
    for frac, value in ticks:
        x = margin + round(frac * (bar_width - 1))
        draw.line([(x, y - 3), (x, y)], fill=AXIS)
        text = f"{value:+.2f}" if signed and abs(value) > 5e-3 else f"{value:.2f}"
        write(draw, (x, y + 1), text, size, anchor="mt")
    for i, line in enumerate(wrapped):
        write(draw, (width // 2, y + size + 6 + (size + 4) * i), line, size, anchor="mt", fill=AXIS)
    return np.asarray(canvas)


def _wrap_strip(width: int, label: str, size: int = 14) -> list[str]:
    return textwrap.wrap(label, max(12, int(width / (0.6 * size)))) or [""]


def strip_lines(width: int, labels: Sequence[str], size: int = 14) -> int:
    """The most lines any of `labels` takes in a `colour_strip` `width` pixels wide."""
    return max(len(_wrap_strip(width, label, size)) for label in labels)


def with_colour_strip(picture: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
    """The picture above its `colour_strip` (same arguments, after the width)."""
    strip = colour_strip(picture.shape[1], *args, **kwargs)
    return np.concatenate([picture, strip], axis=0)


def colorbar(
    low: float, high: float, colormap: str, *, height: int, label: str, width: int = 14
) -> np.ndarray:
    """A vertical colour bar with its low, middle and high values and a label along it (without
    its note in brackets, or over two lines, where the bar is short)."""
    ramp = colorize(np.linspace(1, 0, height)[:, None].repeat(width, 1), colormap)
    margin_top, margin_bottom = 8, 8
    values = [low + frac * (high - low) for frac in (0.0, 0.5, 1.0)]
    largest = max(abs(low), abs(high))
    pad = max(text_width(number(v, largest), 11) for v in values) + 10
    if text_width(label, 11) > height:  # a short bar: its label without the note in brackets
        label = label.split(" (")[0]
    lines = fit_lines(label, height, 11)
    canvas = Image.new(
        "RGB", (width + pad + 8 + 14 * len(lines), height + margin_top + margin_bottom), "white"
    )
    canvas.paste(Image.fromarray(ramp), (0, margin_top))
    draw = ImageDraw.Draw(canvas)
    for frac, value in zip((0.0, 0.5, 1.0), values, strict=True):
        y = margin_top + round((1 - frac) * (height - 1))
        draw.line([(width, y), (width + 4, y)], fill=AXIS)
        write(draw, (width + 6, y), number(value, largest), 11, anchor="lm")
    label_image = Image.new("RGB", (height, 14 * len(lines) + 2), "white")
    for i, line in enumerate(lines):
        write(ImageDraw.Draw(label_image), (height // 2, 8 + 14 * i), line, 11, anchor="mm")
    canvas.paste(label_image.rotate(90, expand=True), (width + pad + 4, margin_top))
    return np.asarray(canvas)


def fit_lines(text: str, width: int, size: int, bold: bool = False) -> list[str]:
    """`text` in lines of at most `width` pixels, breaking between words (a word longer than
    the width gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size, bold) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def heatmap_panel(
    values: np.ndarray,
    *,
    colormap: str = "viridis",
    value_range: tuple[float, float] | None = None,
    highlight_row: int | None = None,
    title: str = "",
    row_label: str = "group",
    col_label: str = "channel",
    row_step: int = 8,
    cell_height: int = 7,
    width: int = 176,
    colour_label: str = "",
    untrained: bool = False,
    row_ticks: Sequence[tuple[int, str]] | None = None,
    highlight_rows: tuple[int, int] | None = None,
    separators: Sequence[int] = (),
) -> np.ndarray:
    """values (R, C) as coloured cells (rows top to bottom), axis ticks, a colour bar.

    `row_ticks`: (row, label) pairs instead of a number every `row_step` rows; `highlight_rows`:
    the rows [start, stop) framed in red (`highlight_row`: one); `separators`: rows above which
    a white line parts blocks of rows (a softmax's kernel paths, each wrapped over rows)."""
    rows, cols = values.shape
    low, high = value_range or (float(values.min()), float(values.max()))
    unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    cell_width = max(6, width // cols)
    # Tall enough for the row axis's label and the colour bar's, which stand along it.
    needed = max(text_width(row_label, 12), text_width(colour_label.split(" (")[0], 11)) + 8
    cell_height = max(cell_height, -(-needed // rows))
    cells = colorize(unit, colormap).repeat(cell_height, 0).repeat(cell_width, 1)
    for r in separators:
        cells[r * cell_height - 1 : r * cell_height + 1] = 255
    left, bottom, top = 34, 34, 6
    h, w = cells.shape[:2]
    # Wide enough for the column axis's label under the cells.
    extra = max(0, text_width(col_label, 12) + 4 - w)
    canvas = Image.new("RGB", (left + w + 4 + extra, top + h + bottom), "white")
    canvas.paste(Image.fromarray(cells), (left, top))
    draw = ImageDraw.Draw(canvas)
    ticks = row_ticks if row_ticks is not None else [(r, str(r)) for r in range(0, rows, row_step)]
    for r, text in ticks:
        y = top + r * cell_height + cell_height // 2
        draw.line([(left - 4, y), (left - 1, y)], fill=AXIS)
        write(draw, (left - 6, y), text, 11, anchor="rm")
    col_step = 1 if cols <= 8 else 2 if cols <= 16 else max(2, cols // 8)
    for c in range(0, cols, col_step):
        x = left + c * cell_width + cell_width // 2
        write(draw, (x, top + h + 3), str(c), 11, anchor="mt")
    write(draw, (left + (w + extra) // 2, top + h + 18), col_label, 12, anchor="mt")
    label = Image.new("RGB", (h, 16), "white")
    write(ImageDraw.Draw(label), (h // 2, 8), row_label, 12, anchor="mm")
    canvas.paste(label.rotate(90, expand=True), (0, top))
    if highlight_row is not None:
        highlight_rows = (highlight_row, highlight_row + 1)
    if highlight_rows is not None:
        y0, y1 = (top + r * cell_height for r in highlight_rows)
        draw.rectangle([left - 2, y0 - 2, left + w + 1, y1 + 1], outline="red", width=2)
    heat = np.asarray(canvas)
    bar = colorbar(low, high, colormap, height=h, label=colour_label)
    combined = side_by_side([heat, bar[: heat.shape[0]]], gap=6)
    text, colour = _title(title, untrained)
    return titled(combined, text, colour=colour, size=14) if title else combined


def bar_panel(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    title: str = "",
    y_label: str = "",
    ylim: tuple[float, float] = (0.0, 1.0),
    width: int = 560,
    height: int = 200,
    colour: tuple[int, int, int] = BLUE,
    reference: float | None = None,
) -> np.ndarray:
    """A bar per value with its label under it and its value on top; y axis from `ylim`."""
    left, right, top, bottom = 52, 10, 22 if title else 10, 40
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = ylim

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    for tick in np.linspace(low, high, 5):
        y = y_of(tick)
        draw.line([(left, y), (left + plot_w, y)], fill=GRID)
        write(draw, (left - 5, y), f"{tick:.2f}", 11, anchor="rm")
    if reference is not None:
        y = y_of(reference)
        for x in range(left, left + plot_w, 8):
            draw.line([(x, y), (x + 4, y)], fill=(140, 140, 140))
    n = len(values)
    slot = plot_w / max(n, 1)
    for i, (v, text) in enumerate(zip(values, labels, strict=True)):
        x0, x1 = left + slot * (i + 0.18), left + slot * (i + 0.82)
        draw.rectangle([x0, y_of(v), x1, y_of(low)], fill=colour)
        if slot > 30:
            write(draw, ((x0 + x1) / 2, y_of(v) - 2), f"{v:.2f}", 10, anchor="md")
        write(draw, ((x0 + x1) / 2, top + plot_h + 4), text, 11, anchor="mt")
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=AXIS)
    if y_label:
        label = Image.new("RGB", (plot_h, 16), "white")
        write(ImageDraw.Draw(label), (plot_h // 2, 8), y_label, 11, anchor="mm")
        canvas.paste(label.rotate(90, expand=True), (0, top))
    if title:
        write(draw, (left, 4), title, 12, bold=True)
    return np.asarray(canvas)


def side_by_side(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    height = max(p.shape[0] for p in pictures)
    width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for p in pictures:
        canvas[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return canvas


def stacked(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    width = max(p.shape[1] for p in pictures)
    height = sum(p.shape[0] for p in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for p in pictures:
        canvas[y : y + p.shape[0], : p.shape[1]] = p
        y += p.shape[0] + gap
    return canvas


def labelled(
    picture: np.ndarray,
    text: str,
    *,
    size: int = 12,
    bold: bool = True,
    fill: tuple[int, int, int] = (0, 0, 0),
    min_width: int = 0,
) -> np.ndarray:
    """The picture under `text`, wrapped to its width (at least `min_width`): a subheading or
    a caption that is never cut off, however long."""
    width = max(picture.shape[1], min_width)
    lines = fit_lines(text, width - 12, size, bold)
    step = size + 5
    band = Image.new("RGB", (width, step * len(lines) + 4), "white")
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        write(draw, (6, 2 + step * i), line, size, bold=bold, fill=fill)
    return stacked([np.asarray(band), picture], gap=0)


def headed(
    picture: np.ndarray,
    title: str,
    caption: str = "",
    *,
    untrained: bool = False,
    size: int = 14,
    min_width: int = 420,
) -> np.ndarray:
    """The picture under a title (red and marked for an untrained model) and a grey caption
    wrapped to the picture's width (at least `min_width`)."""
    if caption:
        picture = labelled(picture, caption, bold=False, fill=AXIS, min_width=min_width)
    text, colour = _title(title, untrained)
    return titled(picture, text, colour=colour, size=size)


def single_tile(image: np.ndarray) -> int:
    """The shorter side of the one tile of a unit with one spatial map: 256 px, less for a
    panorama (its longer side at most 640 px)."""
    h, w = image.shape[:2]
    return max(48, min(256, round(640 * min(h, w) / max(h, w))))


def value_name(gates: UnitGates) -> str:
    """What a spatial map's values are, for its colour bar."""
    return "softmax weight" if softmax_spatial(layout_of(gates)) else "spatial gate"


def gate_mosaic_panel(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    highlight: int | None = None,
    untrained: bool = False,
) -> np.ndarray:
    """The rows' spatial gates (each the mean over its maps) over the image, 8 to a row, with
    the colour bar of the scale in use. A unit with one map (CBAM, Global Context) gets it at a
    larger size, with what it is in words."""
    layout = layout_of(gates)
    maps = gates.spatial_mean()[0].numpy()
    value_range = unit_range(gates, scale)
    if gates.groups == 1:
        return _single_map_panel(image, gates, unit, colormap, alpha, scale, untrained)
    grid = mosaic(
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=MOSAIC_COLUMNS,
        tile=MOSAIC_TILE,
        highlight=highlight,
    )
    bar = scale_bar(scale, value_range, colormap, height=grid.shape[0] - 16, name=value_name(gates))
    grid = side_by_side([grid, bar], gap=6)
    rows = count(gates.groups, row_word(layout))
    each = layout.spatial_maps
    text, colour = _title(
        f"{unit}: {spatial_name(layout)} of the {rows}"
        + (f", each averaged over its {each} maps" if each > 1 else "")
        + (" (colours: each tile's own range)" if scale == "per group" else ""),
        untrained,
    )
    # One line: `mosaic_tile_at` finds the tiles under a title band of this height.
    return titled(grid, text, colour=colour, size=MOSAIC_TITLE)


def _single_map_panel(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    colormap: str,
    alpha: float,
    scale: str,
    untrained: bool,
) -> np.ndarray:
    layout = layout_of(gates)
    maps = gates.spatial_mean()[0].numpy()  # (1, h, w)
    value_range = unit_range(gates, scale)
    h, w = maps.shape[-2:]
    picture = mosaic(
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=1,
        tile=single_tile(image),
        labels=[map_label(layout, maps[0])],
    )
    bar = scale_bar(
        scale, value_range, colormap, height=picture.shape[0] - 16, name=value_name(gates)
    )
    picture = side_by_side([picture, bar], gap=6)
    caption = sentence(spatial_how(layout, h, w))
    if layout.gated:
        caption += f". What the gates weigh: {layout.gated}."
    if scale == "per group":
        caption += " Colours: the map's own range."
    return headed(
        picture,
        f"{unit}: {kind_of(layout)} {spatial_name(layout)}, {maps_of_row(layout)}",
        caption,
        untrained=untrained,
    )


def map_label(layout: GateLayout, values: np.ndarray) -> str:
    """A spatial map's label: its mean (a sigmoid's), or its peak (a softmax's, whose mean is
    1 / positions whatever it attends to)."""
    if softmax_spatial(layout):
        return f"peak {number(float(values.max()))}"
    return f"mean {float(values.mean()):.2f}"


def mosaic_tile_at(image_shape: tuple[int, ...], count: int, x: float, y: float) -> int | None:
    """The index of the tile of `gate_mosaic_panel` at pixel (x, y) of the picture (None: the
    title, the colour bar, a gap or past the last tile)."""
    th, tw = tile_size(np.empty((*image_shape[:2], 0)), MOSAIC_TILE)
    y -= MOSAIC_TITLE + 14  # `titled`'s band
    if x < 0 or y < 0:
        return None
    column, dx = divmod(int(x), tw + TILE_GAP)
    row, dy = divmod(int(y), LABEL_BAND + th + TILE_GAP)
    index = row * MOSAIC_COLUMNS + column
    # A click on a tile's label counts as a click on the tile.
    if column >= MOSAIC_COLUMNS or dx >= tw or dy >= LABEL_BAND + th or index >= count:
        return None
    return index


def note_panel(title: str, text: str, width: int = 640) -> np.ndarray:
    """A picture that says why there is nothing to draw here (the text wrapped to the width)."""
    lines = textwrap.wrap(text, max(20, (width - 16) // 7)) or [""]
    canvas = Image.new("RGB", (width, 20 * len(lines) + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        write(draw, (8, 22 + 20 * i), line, 13, anchor="lm", fill=AXIS)
    return titled(np.asarray(canvas), title, size=14)
