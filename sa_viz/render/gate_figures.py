"""The attention gates as matplotlib figures, from the gate arrays: the units' spatial-gate
mosaic, the channel-gate heatmap, one group, the per-unit summary, and the CLI's gate grid.

The app draws the same views with `render.panels` (milliseconds, text baked into pixels); these
draw them for PNG, SVG and PDF alike: each map one image (`interpolation="none"`: embedded at its
own resolution in SVG and PDF), every word a text element, every colour scale a colour bar.
`width` (inches, `render.paper`) draws a figure for a paper; None: for the screen.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Rectangle

from sa_viz.probes import UnitGates, gate_stats
from sa_viz.render import paper
from sa_viz.render.figures import title
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    TILE_GAP,
    row_width,
    tile_grid,
    tile_size,
)
from sa_viz.render.panels import unit_range

BLUE, ORANGE = "#3b6ea8", "#dd8452"
MOSAIC_TILE = 96  # pixels: a tile's shorter side, as the CLI's figure has always had it


def grid_aspect(image: np.ndarray, n: int, columns: int) -> float:
    """Height ÷ width of the picture of `mosaic_axes` for `n` maps, `columns` to a row."""
    th, tw = tile_size(image, MOSAIC_TILE)
    rows, shown = -(-n // columns), min(n, columns)
    return (rows * (th + TILE_GAP) - TILE_GAP) / (shown * (tw + TILE_GAP) - TILE_GAP)


MOSAIC_MARGIN = 0.55  # inches below and beside a mosaic: its tick labels and the axis label


def mosaic_axes(
    ax: Axes,
    image: np.ndarray,
    maps: np.ndarray,
    *,
    colormap: str,
    alpha: float,
    scale: str,
    value_range: tuple[float, float] | None,
    columns: int,
    first: int = 0,
    what: str = "group",
    highlight: int | None = None,
) -> None:
    """Maps (N, h, w) over the image as one picture of tiles, `columns` to a row; which map a
    tile is, by its row's and column's tick labels (`first` + row start + column)."""
    n = len(maps)
    grid = tile_grid(
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=columns,
        tile=MOSAIC_TILE,
        band=0,
    )
    ax.imshow(grid, interpolation="none")
    th, tw = tile_size(image, MOSAIC_TILE)
    shown = min(n, columns)
    ax.set_xticks(
        [c * (tw + TILE_GAP) + tw / 2 for c in range(shown)], [f"+{c}" for c in range(shown)]
    )
    rows = -(-n // columns)
    step = max(1, rows // 8)
    ax.set_yticks(
        [r * (th + TILE_GAP) + th / 2 for r in range(0, rows, step)],
        [str(first + r * columns) for r in range(0, rows, step)],
    )
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel(f"{what}: the row's first + the column")
    if highlight is not None and 0 <= highlight < n:
        r, c = divmod(highlight, columns)
        ax.add_patch(
            Rectangle(
                (c * (tw + TILE_GAP) - 0.5, r * (th + TILE_GAP) - 0.5),
                tw,
                th,
                fill=False,
                edgecolor="white",
                linewidth=1.5,
            )
        )


def _scale_bar(
    owner: Figure | SubFigure,
    ax: Axes,
    scale: str,
    value_range: tuple[float, float] | None,
    colormap: str,
) -> None:
    """The colour bar of spatial gates coloured with `scale` (`panels.unit_range`)."""
    if value_range is None:  # "per group": each map from its own lowest to its highest value
        bar = ScalarMappable(Normalize(0, 1), colormap)
        label = "spatial gate: each map, min → max"
    else:
        bar = ScalarMappable(Normalize(*value_range), colormap)
        label = f"spatial gate ({scale})"
    owner.colorbar(bar, ax=ax, label=label)


def gate_mosaic_figure(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    highlight: int | None = None,
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """The groups' spatial gates (each the mean over its c channels) over the image, 8 to a
    row, with the colour bar of `scale`. A unit needs spatial gates (SE has none)."""
    if gates.spatial is None:
        raise ValueError(f"{unit} has no spatial gates")
    maps = gates.spatial_mean()[0].numpy()
    inches = 9.0 if width is None else width
    fig = Figure(layout="compressed")
    ax = fig.subplots()
    value_range = unit_range(gates, scale)
    mosaic_axes(
        ax,
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=8,
        highlight=highlight,
    )
    _scale_bar(fig, ax, scale, value_range, colormap)
    lines = title(
        ax,
        f"{unit}: spatial gates of the {gates.groups} groups, each averaged over its "
        f"{gates.channels} channels",
        untrained,
        width,
        inches * 0.8,
    )
    share = 1 - (MOSAIC_MARGIN + 1.0) / inches  # less the tick labels and the colour bar
    fig.set_size_inches(
        paper.pictures_figsize(
            width,
            inches,
            grid_aspect(image, len(maps), 8),
            share=share,
            extra=lines * paper.line_height() + MOSAIC_MARGIN + 0.1,
        )
    )
    return paper.styled(fig, width)


def channel_rows(gates: UnitGates) -> tuple[np.ndarray, str, str]:
    """A unit's channel gates as heatmap rows, with the rows' and the columns' labels: one row
    per group, or for one group (SE) rows of up to 64 consecutive channels."""
    values = gates.channel[0].numpy()
    if gates.groups > 1:
        return values, "group", f"channel 0–{gates.channels - 1} of the group"
    columns = row_width(values.shape[1])
    return values.reshape(-1, columns), f"channels (row × {columns})", f"+ 0–{columns - 1}"


def heatmap_axes(
    owner: Figure | SubFigure,
    ax: Axes,
    values: np.ndarray,
    *,
    row_label: str,
    col_label: str,
    highlight_row: int | None = None,
) -> None:
    """values (R, C) as cells, rows top to bottom, with a colour bar of the channel gates."""
    heat = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="none")
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    step = max(1, len(values) // 8)
    ax.set_yticks(range(0, len(values), step))
    if highlight_row is not None:
        ax.add_patch(
            Rectangle(
                (-0.5, highlight_row - 0.5),
                values.shape[1],
                1,
                fill=False,
                edgecolor="red",
                linewidth=1.2,
            )
        )
    owner.colorbar(heat, ax=ax, label="channel gate", shrink=0.9)


def channel_heatmap_figure(
    gates: UnitGates,
    unit: str,
    *,
    highlight_row: int | None = None,
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """One unit's channel gates, a groups × channels heatmap (`channel_rows`), `highlight_row`
    framed."""
    values, row_label, col_label = channel_rows(gates)
    fig = Figure(figsize=paper.figsize(width, (4.5, 3.6)), layout="constrained")
    ax = fig.subplots()
    heatmap_axes(
        fig,
        ax,
        values,
        row_label=row_label,
        col_label=col_label,
        highlight_row=highlight_row if gates.groups > 1 else None,
    )
    title(ax, f"{unit}: channel gates", untrained, width, fig.get_size_inches()[0] * 0.8)
    return paper.styled(fig, width)


def _bars(ax: Axes, values: np.ndarray, first: int, reference: float | None, label: str) -> None:
    """One bar per channel gate, with the value of an untrained unit's gates dotted."""
    ax.bar(np.arange(first, first + len(values)), values, width=0.7, color=BLUE)
    if reference is not None:  # said in the axis label: a legend would cover bars
        ax.axhline(reference, color="grey", ls=":", lw=0.8)
        label += f"\ndotted: {reference:.3f}, the gate of an untrained unit"
    ax.set_ylim(0, 1)
    ax.set_ylabel("gate value")
    ax.set_xlabel(label)


def group_figure(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    group: int,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """One group: the spatial gate of each of its c second-half channels over the image, above
    the channel gate of each of its c first-half channels (`panels.group_panel`); a unit
    without spatial gates (SE), its channel gates alone."""
    channel = gates.channel[0, group].numpy()
    c = len(channel)
    reference = gates.layout.untrained_value if gates.layout else None
    if gates.spatial is None:
        fig = Figure(figsize=paper.figsize(width, (8, 3)), layout="constrained")
        ax = fig.subplots()
        _bars(ax, channel, 0, reference, f"channel (one σ each), 0–{c - 1}")
        title(ax, f"{unit}: channel gates of all {c} channels", untrained, width, 6)
        return paper.styled(fig, width)
    spatial = gates.spatial[0, group].numpy()
    columns = min(c, 4)
    inches = 6.5 if width is None else width
    fig = Figure(layout="compressed")
    top, bottom = fig.subplots(2, 1)
    value_range = unit_range(gates, scale)
    mosaic_axes(
        top,
        image,
        spatial,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=columns,
        first=c,
        what="channel",
    )
    _scale_bar(fig, top, scale, value_range, colormap)
    lines = title(
        top,
        f"{unit}, group {group}: spatial gates (σ per pixel) of channels {c}–{2 * c - 1}",
        untrained,
        width,
        inches * 0.8,
    )
    _bars(bottom, channel, 0, reference, f"channel (one σ each), 0–{c - 1}")
    bottom.set_title(paper.wrap("channel gates of the group's first half", inches * 0.8, width))
    # The maps' height from their picture, the bars' a third of the width (1.2 in at least)
    grid = paper.pictures_figsize(
        width,
        inches,
        grid_aspect(image, c, columns),
        share=1 - (MOSAIC_MARGIN + 1.0) / inches,
        extra=lines * paper.line_height() + MOSAIC_MARGIN,
    )[1]
    bars = max(1.2, min(2.2, inches / 3))
    fig.set_size_inches(inches, grid + bars)
    top.get_gridspec().set_height_ratios([grid, bars])
    return paper.styled(fig, width)


def gate_summary_figure(
    all_gates: dict[str, UnitGates], *, untrained: bool = False, width: float | None = None
) -> Figure:
    """Per unit: mean ± std (within groups) of the channel gates, and of the spatial gates
    where the units have them; shaded, the spread of the group means; dotted, the value every
    gate of an untrained unit takes, where there is one."""
    names = list(all_gates)
    first = all_gates[names[0]]
    kind_name = first.layout.kind if first.layout else ""
    reference = first.layout.untrained_value if first.layout else None
    stats = [gate_stats(all_gates[n]).summary() for n in names]
    kinds = ("channel", "spatial") if first.has_spatial else ("channel",)
    inches = 7.0 if width is None else width
    per_chart = 2.4 if width is None else max(1.0, inches / 4)
    fig = Figure(layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(kinds), 1, sharex=True))
    x = np.arange(len(names))
    for ax, kind in zip(axes, kinds, strict=True):
        mean = np.array([s[f"{kind}_mean"] for s in stats])
        within = np.array([s[f"{kind}_std"] for s in stats])
        across = np.array([s[f"{kind}_group_spread"] for s in stats])
        if first.groups > 1:
            ax.fill_between(x, mean - across, mean + across, color=BLUE, alpha=0.2, lw=0)
        ax.errorbar(x, mean, within, fmt="o", color=ORANGE, ecolor=BLUE, ms=3, capsize=2)
        if reference is not None:
            ax.axhline(reference, color="grey", ls=":", lw=0.8)
        for i in range(1, len(names)):  # a new stage: a separator
            if names[i].split(".")[0] != names[i - 1].split(".")[0]:
                ax.axvline(i - 0.5, color="#dddddd", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{kind} gate")
    axes[-1].set_xticks(x, [n.removeprefix("layer") for n in names], rotation=90)
    axes[-1].set_xlabel("unit (stage.block)")
    legend = "dot: mean; bar: ± std within groups" + (
        "; shading: ± std of the group means" if first.groups > 1 else ""
    )
    if reference is not None:
        legend += f"; dotted: {reference:.3f}, every gate of an untrained unit"
    lines = title(
        axes[0],
        f"Gate statistics of all {len(names)} {kind_name} units\n{legend}",
        untrained,
        width,
        inches * 0.9,
    )
    # the charts, the title's lines, the unit names (turned) and the axis label
    fig.set_size_inches(inches, per_chart * len(kinds) + lines * paper.line_height() + 0.75)
    return paper.styled(fig, width)


def gate_grid_figure(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """One attention unit: its groups' spatial gates (mean over each group's channels) over the
    image, with their colour scale, beside the groups × c channel-gate heatmap. A unit without
    spatial gates (SE) gets its channel gates alone, in rows of up to 64 channels."""
    kind = gates.layout.kind if gates.layout else ""
    values, row_label, col_label = channel_rows(gates)
    if gates.spatial is None:
        size = paper.figsize(width, (9, 1.5 + 0.12 * len(values)))
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.subplots()
        heatmap_axes(fig, ax, values, row_label=row_label, col_label=col_label)
        title(
            ax,
            f"{unit}: channel gates of the {kind} unit ({gates.channels} channels)",
            untrained,
            width,
            size[0] * 0.8,
        )
        return paper.styled(fig, width)
    maps = gates.spatial_mean()[0].numpy()
    inches = 12.0 if width is None else width
    fig = Figure(layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[4, 1])
    ax = left.subplots()
    value_range = unit_range(gates, scale)
    mosaic_axes(
        ax,
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=8,
    )
    _scale_bar(left, ax, scale, value_range, colormap)
    lines = title(
        ax,
        f"{unit}: spatial gates of the {gates.groups} groups (colours: {scale})",
        untrained,
        width,
        inches * 0.6,
    )
    hx = right.subplots()
    heatmap_axes(right, hx, values, row_label=row_label, col_label="channel (c)")
    lines = max(lines, title(hx, "channel gates", untrained, width, inches * 0.2))
    fig.set_size_inches(
        paper.pictures_figsize(
            width,
            inches,
            grid_aspect(image, len(maps), 8),
            share=0.8 - (MOSAIC_MARGIN + 1.0) / inches,
            extra=lines * paper.line_height() + MOSAIC_MARGIN + 0.1,
        )
    )
    return paper.styled(fig, width)
