"""Small charts drawn directly into NumPy pictures: a heatmap with a colour bar, bar charts, the
per-group view and the per-unit summary.

Drawn by hand with PIL because matplotlib needs 0.25–1 s per figure on this project's 2-core
machines, and these are redrawn on every change of unit, group or colour; each takes a few
milliseconds here. matplotlib (render.figures) still makes the figures people export for papers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from sa_viz.probes import UnitGates, gate_stats
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
    scale: str, value_range: tuple[float, float] | None, colormap: str, *, height: int
) -> np.ndarray:
    """The vertical colour bar of spatial gates coloured with `scale` (`unit_range`)."""
    if value_range is None:  # "per group": each map from its own lowest to its highest value
        return colorbar(0.0, 1.0, colormap, height=height, label="each map: min → max")
    return colorbar(*value_range, colormap, height=height, label=f"spatial gate ({scale})")


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
    """A vertical colour bar with its low, middle and high values and a label."""
    ramp = colorize(np.linspace(1, 0, height)[:, None].repeat(width, 1), colormap)
    margin_top, margin_bottom = 8, 8
    pad = max(text_width(f"{v:.3f}", 11) for v in (low, high)) + 10
    canvas = Image.new("RGB", (width + pad + 22, height + margin_top + margin_bottom), "white")
    canvas.paste(Image.fromarray(ramp), (0, margin_top))
    draw = ImageDraw.Draw(canvas)
    for frac in (0.0, 0.5, 1.0):
        y = margin_top + round((1 - frac) * (height - 1))
        draw.line([(width, y), (width + 4, y)], fill=AXIS)
        write(draw, (width + 6, y), f"{low + frac * (high - low):.3f}", 11, anchor="lm")
    if text_width(label, 11) > height:  # a short bar: its label without the note in brackets
        label = label.split(" (")[0]
    label_image = Image.new("RGB", (height, 16), "white")
    write(ImageDraw.Draw(label_image), (height // 2, 8), label, 11, anchor="mm")
    canvas.paste(label_image.rotate(90, expand=True), (width + pad + 4, margin_top))
    return np.asarray(canvas)


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
) -> np.ndarray:
    """values (R, C) as coloured cells (rows top to bottom), axis ticks, a colour bar."""
    rows, cols = values.shape
    low, high = value_range or (float(values.min()), float(values.max()))
    unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    cell_width = max(6, width // cols)
    cells = colorize(unit, colormap).repeat(cell_height, 0).repeat(cell_width, 1)
    left, bottom, top = 34, 34, 6
    h, w = cells.shape[:2]
    canvas = Image.new("RGB", (left + w + 4, top + h + bottom), "white")
    canvas.paste(Image.fromarray(cells), (left, top))
    draw = ImageDraw.Draw(canvas)
    for r in range(0, rows, row_step):
        y = top + r * cell_height + cell_height // 2
        draw.line([(left - 4, y), (left - 1, y)], fill=AXIS)
        write(draw, (left - 6, y), str(r), 11, anchor="rm")
    col_step = 1 if cols <= 8 else 2 if cols <= 16 else max(2, cols // 8)
    for c in range(0, cols, col_step):
        x = left + c * cell_width + cell_width // 2
        write(draw, (x, top + h + 3), str(c), 11, anchor="mt")
    write(draw, (left + w // 2, top + h + 18), col_label, 12, anchor="mt")
    label = Image.new("RGB", (h, 16), "white")
    write(ImageDraw.Draw(label), (h // 2, 8), row_label, 12, anchor="mm")
    canvas.paste(label.rotate(90, expand=True), (0, top))
    if highlight_row is not None:
        y0 = top + highlight_row * cell_height
        draw.rectangle(
            [left - 2, y0 - 2, left + w + 1, y0 + cell_height + 1], outline="red", width=2
        )
    heat = np.asarray(canvas)
    bar = colorbar(low, high, colormap, height=h, label=colour_label)
    combined = _side_by_side([heat, bar[: heat.shape[0]]], gap=6)
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


def group_panel(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    group: int,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    untrained: bool = False,
) -> np.ndarray:
    """One group enlarged: the spatial gate of each of its c second-half channels over the image,
    and the channel gate of each of its c first-half channels as bars.

    Within an SA group of 2c channels, channels 0…c−1 pass the channel gate and c…2c−1 the
    spatial gate, so the two rows describe different channels; labels say which. A unit without
    spatial gates (SE: one group) shows its channel gates as bars only.
    """
    channel = gates.channel[0, group].numpy()  # (c,)
    reference = gates.layout.untrained_value if gates.layout else None
    if gates.spatial is None:
        c = len(channel)
        bars = bar_panel(
            channel,
            [str(j) if j % max(1, c // 16) == 0 else "" for j in range(c)],
            title=f"channel gates (one σ per channel), channels 0–{c - 1}",
            y_label="gate value",
            width=max(360, min(720, 6 * c)),
            reference=reference,
        )
        text, colour = _title(f"{unit}, all {c} channels", untrained)
        return titled(bars, text, colour=colour, size=14)
    spatial = gates.spatial[0, group].numpy()  # (c, h, w)
    c = len(spatial)
    value_range = unit_range(gates, scale)
    maps = mosaic(
        image,
        spatial,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=min(c, 4),  # 4 to a row: the group view fits an 800-px window at full size
        tile=128 if c <= 2 else 96,
        labels=[f"ch {c + i}: {spatial[i].mean():.2f}" for i in range(c)],
    )
    maps = _side_by_side([maps, scale_bar(scale, value_range, colormap, height=maps.shape[0] - 16)])
    maps = titled(
        maps,
        f"spatial gates (σ per pixel), channels {c}–{2 * c - 1}: the group's second half",
        size=13,
    )
    bars = bar_panel(
        channel,
        [str(j) for j in range(c)],
        title=f"channel gates (one σ per channel), channels 0–{c - 1}: the group's first half",
        y_label="gate value",
        width=max(maps.shape[1], 360),
        reference=reference,
    )
    range_text = (
        "spatial colours: each map's own range"
        if value_range is None
        else f"spatial colours: {value_range[0]:.3f}–{value_range[1]:.3f} ({scale})"
    )
    body = _stacked([maps, bars], gap=8)
    text, colour = _title(f"{unit}, group {group} · {range_text}", untrained)
    return titled(body, text, colour=colour, size=14)


def summary_panel(all_gates: dict[str, UnitGates], *, untrained: bool = False) -> np.ndarray:
    """Per unit: mean ± std (within groups) of the channel gates (and of the spatial gates where
    the units have them), and the spread of the group means (shaded); the dotted line is the
    value every gate of an untrained unit takes, where there is one."""
    names = list(all_gates)
    first = all_gates[names[0]]
    layout = first.layout
    kind_name = layout.kind if layout else ""
    reference = layout.untrained_value if layout else None
    stages = [g.layout.stage if g.layout else 0 for g in all_gates.values()]
    stats = [gate_stats(all_gates[n]).summary() for n in names]
    kinds = ("channel", "spatial") if first.has_spatial else ("channel",)
    charts = [
        _unit_chart(names, stages, stats, kind, f"{kind} gates per {kind_name} unit", reference)
        for kind in kinds
    ]
    # One above the other: side by side (950 px) they were drawn at 3/4 size in an 800-px
    # window, their 10-px ticks at 7 px.
    body = _stacked(charts, gap=10)
    legend = "dot: mean · bar: ± std within groups" + (
        " · shading: ± std of the group means" if first.groups > 1 else ""
    )
    if reference is not None:
        legend += f" · dotted: {reference:.3f}, the value of every gate of an untrained unit"
    lines = textwrap.wrap(legend, max(20, body.shape[1] // 7))
    canvas = Image.new("RGB", (body.shape[1], body.shape[0] + 6 + 16 * len(lines)), "white")
    canvas.paste(Image.fromarray(body), (0, 0))
    for i, line in enumerate(lines):
        write(ImageDraw.Draw(canvas), (8, body.shape[0] + 4 + 16 * i), line, 11, fill=AXIS)
    text, colour = _title(f"Gate statistics of all {len(names)} {kind_name} units", untrained)
    return titled(np.asarray(canvas), text, colour=colour, size=14)


def _unit_chart(
    names: Sequence[str],
    stages: Sequence[int],
    stats: Sequence[dict[str, float]],
    kind: str,
    title: str,
    reference: float | None,
    width: int = 470,
    height: int = 260,
) -> np.ndarray:
    left, right, top, bottom = 44, 8, 24, 42
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas, "RGBA")
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), 1.0))

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.line([(left, y_of(tick)), (left + plot_w, y_of(tick))], fill=GRID)
        write(draw, (left - 5, y_of(tick)), f"{tick:.2f}", 10, anchor="rm")
    for x in range(left, left + plot_w, 8) if reference is not None else ():
        draw.line([(x, y_of(reference)), (x + 4, y_of(reference))], fill=(120, 120, 120))
    slot = plot_w / len(names)
    xs = [left + slot * (i + 0.5) for i in range(len(names))]
    mean = [s[f"{kind}_mean"] for s in stats]
    within = [s[f"{kind}_std"] for s in stats]
    across = [s[f"{kind}_group_spread"] for s in stats]
    band = [(x, y_of(m + a)) for x, m, a in zip(xs, mean, across, strict=True)]
    band += [(x, y_of(m - a)) for x, m, a in reversed(list(zip(xs, mean, across, strict=True)))]
    draw.polygon(band, fill=(*BLUE, 50))
    for x, m, s in zip(xs, mean, within, strict=True):
        draw.line([(x, y_of(m - s)), (x, y_of(m + s))], fill=BLUE, width=2)
        draw.line([(x - 4, y_of(m - s)), (x + 4, y_of(m - s))], fill=BLUE)
        draw.line([(x - 4, y_of(m + s)), (x + 4, y_of(m + s))], fill=BLUE)
        draw.ellipse([x - 3.5, y_of(m) - 3.5, x + 3.5, y_of(m) + 3.5], fill=ORANGE)
    for i, (x, name) in enumerate(zip(xs, names, strict=True)):
        write(draw, (x, top + plot_h + 4), name.removeprefix("layer"), 10, anchor="mt")
        if i and stages[i] != stages[i - 1]:  # a new stage: a separator
            draw.line([(x - slot / 2, top), (x - slot / 2, top + plot_h)], fill=GRID)
    write(draw, (left + plot_w / 2, top + plot_h + 20), "unit (stage.block)", 11, anchor="mt")
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=AXIS)
    write(draw, (left, 4), title, 12, bold=True)
    return np.asarray(canvas)


def _side_by_side(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    height = max(p.shape[0] for p in pictures)
    width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for p in pictures:
        canvas[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return canvas


def _stacked(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    width = max(p.shape[1] for p in pictures)
    height = sum(p.shape[0] for p in pictures) + gap * (len(pictures) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for p in pictures:
        canvas[y : y + p.shape[0], : p.shape[1]] = p
        y += p.shape[0] + gap
    return canvas


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
    """The groups' spatial gates (each the mean over its c channels) over the image, 8 to a
    row, with the colour bar of the scale in use."""
    maps = gates.spatial_mean()[0].numpy()
    value_range = unit_range(gates, scale)
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
    bar = scale_bar(scale, value_range, colormap, height=grid.shape[0] - 16)
    grid = _side_by_side([grid, bar], gap=6)
    text, colour = _title(
        f"{unit}: spatial gates of the {gates.groups} groups, each averaged over its "
        f"{gates.channels} channels"
        + (" (colours: each tile's own range)" if scale == "per group" else ""),
        untrained,
    )
    return titled(grid, text, colour=colour, size=MOSAIC_TITLE)


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
