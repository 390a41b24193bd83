"""The attention gates as matplotlib figures, from the gate arrays: the units' spatial-gate
mosaic, the channel-gate heatmap, one row of a unit's gates, the per-unit summary, and the
CLI's gate grid, for every layout a probe gives (SA's groups, SE's and ECA's one row of channel
gates, CBAM's and Global Context's one map, the softmax over kernel paths or radix splits of SK
and ResNeSt), titled in each kind's words (`render.gate_words`), as the app's pictures are.

The app draws the same views with `render.panels` and `render.gate_panels` (milliseconds, text
baked into pixels); these draw them for PNG, SVG and PDF alike: each map one image
(`interpolation="none"`: embedded at its own resolution in SVG and PDF), every word a text
element, every colour scale a colour bar. `width` (inches, `render.paper`) draws a figure for a
paper; None: for the screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Rectangle

from sa_viz.probes import GateLayout, GateStats, UnitGates, gate_stats
from sa_viz.render import paper
from sa_viz.render.figures import aspect, title
from sa_viz.render.gate_words import (
    channel_how,
    channel_name,
    count,
    kind_of,
    layout_of,
    maps_of_row,
    row_word,
    sentence,
    softmax_over_rows,
    softmax_spatial,
    spatial_how,
    spatial_name,
)
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    TILE_GAP,
    overlay,
    row_width,
    tile_grid,
    tile_size,
    to_unit,
)
from sa_viz.render.panels import map_label, unit_range, value_name

BLUE, ORANGE = "#3b6ea8", "#dd8452"
MOSAIC_TILE = 96  # pixels: a tile's shorter side, as the CLI's figure has always had it
ONE_MAP = 4.2  # inches: a figure of a unit's one map (CBAM, Global Context), for the screen


def _title(ax: Axes, text: str, untrained: bool, width: float | None, inches: float) -> int:
    """`figures.title`, wrapped to `inches` for the screen too: the titles in a kind's words
    are long, and a wider one is cut off at the figure's edge."""
    return title(ax, paper.wrap(text, inches, inches), untrained, width, inches)


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
    tile is (a `what`), by its row's and column's tick labels (`first` + row start + column)."""
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


def map_axes(
    ax: Axes,
    image: np.ndarray,
    values: np.ndarray,
    *,
    colormap: str,
    alpha: float,
    scale: str,
    value_range: tuple[float, float] | None,
) -> None:
    """One spatial map (h, w) over the whole image (a unit with one map: CBAM, Global
    Context), coloured as the mosaic colours its tiles."""
    shown = to_unit(values[None], scale, value_range)[0]
    ax.imshow(overlay(image, shown, colormap, alpha), interpolation="none")
    ax.axis("off")


def _scale_bar(
    owner: Figure | SubFigure,
    ax: Axes,
    scale: str,
    value_range: tuple[float, float] | None,
    colormap: str,
    name: str = "spatial gate",
    **where: object,
) -> None:
    """The colour bar of spatial maps coloured with `scale` (`panels.unit_range`), named as
    their values are (`panels.value_name`: a spatial gate, a softmax weight)."""
    if value_range is None:  # "per group": each map from its own lowest to its highest value
        bar = ScalarMappable(Normalize(0, 1), colormap)
        label = f"{name}: each map, min → max"
    else:
        bar = ScalarMappable(Normalize(*value_range), colormap)
        label = f"{name} ({scale})"
    owner.colorbar(bar, ax=ax, label=label, **where)


def _one_map_text(gates: UnitGates, unit: str, scale: str) -> str:
    """The title of a unit's one spatial map: what it is, how it is made, its value."""
    layout = layout_of(gates)
    values = gates.spatial_mean()[0, 0].numpy()
    h, w = values.shape
    text = (
        f"{unit}: {kind_of(layout)} {spatial_name(layout)}, {maps_of_row(layout)}\n"
        f"{sentence(spatial_how(layout, h, w))}; {map_label(layout, values)}"
    )
    return text + ("; colours: the map's own range" if scale == "per group" else "")


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
    """The rows' spatial gates (each the mean over its maps) over the image, 8 to a row, with
    the colour bar of `scale`; a unit with one map (CBAM, Global Context) gets it at a larger
    size, with what it is in words. A unit needs spatial gates (SE, ECA, SK have none)."""
    if gates.spatial is None:
        raise ValueError(f"{unit} has no spatial gates")
    layout = layout_of(gates)
    maps = gates.spatial_mean()[0].numpy()
    value_range = unit_range(gates, scale)
    if gates.groups == 1:
        return _one_map_figure(
            image,
            maps[0],
            _one_map_text(gates, unit, scale),
            name=value_name(gates),
            colormap=colormap,
            alpha=alpha,
            scale=scale,
            value_range=value_range,
            untrained=untrained,
            width=width,
        )
    inches = 9.0 if width is None else width
    fig = Figure(layout="compressed")
    ax = fig.subplots()
    row = row_word(layout)
    mosaic_axes(
        ax,
        image,
        maps,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=8,
        what=row,
        highlight=highlight,
    )
    _scale_bar(fig, ax, scale, value_range, colormap, value_name(gates))
    each = layout.spatial_maps
    lines = _title(
        ax,
        f"{unit}: {spatial_name(layout)} of the {count(gates.groups, row)}"
        + (f", each averaged over its {each} maps" if each > 1 else ""),
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


def _one_map_figure(
    image: np.ndarray,
    values: np.ndarray,
    text: str,
    *,
    name: str,
    colormap: str,
    alpha: float,
    scale: str,
    value_range: tuple[float, float] | None,
    untrained: bool,
    width: float | None,
) -> Figure:
    """One spatial map over the image, titled, its colour bar under it (as `cam_figure`)."""
    inches = ONE_MAP if width is None else width
    fig = Figure(layout="compressed")
    ax = fig.subplots()
    map_axes(
        ax, image, values, colormap=colormap, alpha=alpha, scale=scale, value_range=value_range
    )
    lines = _title(ax, text, untrained, width, inches * 0.9)
    _scale_bar(fig, ax, scale, value_range, colormap, name, orientation="horizontal", shrink=0.8)
    extra = lines * paper.line_height() + 0.9
    fig.set_size_inches(
        paper.pictures_figsize(width, inches, aspect(image), share=0.95, extra=extra)
    )
    return paper.styled(fig, width)


@dataclass(frozen=True)
class ChannelRows:
    """A unit's channel gates as heatmap rows: `values` (R, C); the rows' and the columns'
    labels; `ticks` (row, label) on the rows' axis; `lines` heatmap rows per row of gates
    (a row of gates wrapped at 64 channels a line); `separators`: rows a line is drawn above."""

    values: np.ndarray
    row_label: str
    col_label: str
    ticks: Sequence[tuple[int, str]]
    lines: int
    separators: Sequence[int]


def channel_rows(gates: UnitGates) -> ChannelRows:
    """A unit's channel gates as heatmap rows (as `gate_panels.channel_panel` draws them): one
    row per group (SA); one row (SE, ECA, CBAM) in lines of up to 64 consecutive channels; a
    softmax over rows (SK's kernel paths, ResNeSt's radix splits) as one block of such lines
    per row. A unit needs channel gates (Global Context's `gca` has none)."""
    if gates.channel is None:
        raise ValueError("the unit has no channel gates")
    layout = layout_of(gates)
    values = gates.channel[0].numpy()  # (G, c)
    g, c = values.shape
    row = row_word(layout)
    if g > 1 and not softmax_over_rows(layout):
        ticks = [(r, str(r)) for r in range(0, g, max(1, g // 8))]
        return ChannelRows(values, row, f"channel 0–{c - 1} of the {row}", ticks, 1, [])
    columns = row_width(c)
    lines = c // columns
    blocks = values.reshape(g * lines, columns)
    col_label = f"+ 0–{columns - 1}" if lines > 1 else f"channel 0–{c - 1}"
    if g == 1:
        ticks = [(r, str(r)) for r in range(0, lines, max(1, lines // 8))] if lines > 1 else []
        row_label = f"channels (row × {columns})" if lines > 1 else "channels"
        return ChannelRows(blocks, row_label, col_label, ticks, lines, [])
    ticks = [(i * lines, str(i)) for i in range(g)]
    row_label = f"{row} (lines of {columns} channels)" if lines > 1 else row
    return ChannelRows(blocks, row_label, col_label, ticks, lines, [i * lines for i in range(1, g)])


def heatmap_axes(
    owner: Figure | SubFigure,
    ax: Axes,
    rows: ChannelRows,
    *,
    colour_label: str = "channel gate",
    highlight: int | None = None,
) -> None:
    """The rows' values as cells, top to bottom, with their colour bar; the row of gates
    `highlight` (all its lines) framed."""
    values = rows.values
    heat = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="none")
    ax.set_xlabel(rows.col_label)
    ax.set_ylabel(rows.row_label)
    ax.set_yticks([r for r, _ in rows.ticks], [label for _, label in rows.ticks])
    for r in rows.separators:
        ax.axhline(r - 0.5, color="white", linewidth=1.5)
    if highlight is not None:
        ax.add_patch(
            Rectangle(
                (-0.5, highlight * rows.lines - 0.5),
                values.shape[1],
                rows.lines,
                fill=False,
                edgecolor="red",
                linewidth=1.2,
            )
        )
    owner.colorbar(heat, ax=ax, label=colour_label, shrink=0.9)


def _colour_label(layout: GateLayout) -> str:
    return "weight" if softmax_over_rows(layout) else "channel gate"


def channel_heatmap_figure(
    gates: UnitGates,
    unit: str,
    *,
    highlight_row: int | None = None,
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """One unit's channel gates as a heatmap (`channel_rows`), the row `highlight_row` framed
    where there are several. A unit needs channel gates (Global Context's `gca` has none)."""
    layout = layout_of(gates)
    rows = channel_rows(gates)
    fig = Figure(figsize=paper.figsize(width, (4.5, 3.6)), layout="constrained")
    ax = fig.subplots()
    heatmap_axes(
        fig,
        ax,
        rows,
        colour_label=_colour_label(layout),
        highlight=highlight_row if gates.groups > 1 else None,
    )
    text = f"{unit}: {kind_of(layout)} {channel_name(layout)}\n{sentence(channel_how(layout))}"
    _title(ax, text, untrained, width, fig.get_size_inches()[0] * 0.8)
    return paper.styled(fig, width)


def _bars(
    ax: Axes, values: np.ndarray, reference: float | None, label: str, y_label: str, why: str
) -> None:
    """One bar per channel, with the `reference` value dotted (`why` it is drawn)."""
    ax.bar(np.arange(len(values)), values, width=0.7, color=BLUE)
    if reference is not None:  # said in the axis label: a legend would cover bars
        ax.axhline(reference, color="grey", ls=":", lw=0.8)
        label += f"\ndotted: {why}"
    ax.set_ylim(0, 1)
    ax.set_ylabel(y_label)
    ax.set_xlabel(label)


def _row_bars(ax: Axes, gates: UnitGates, group: int) -> str:
    """The channel gates of row `group` as bars; returns their heading."""
    layout = layout_of(gates)
    channel = gates.channel[0, group].numpy()  # (c,)
    c, g, row = len(channel), layout.groups, row_word(layout)
    if softmax_over_rows(layout):
        heading = (
            f"{sentence(row)} {group}: its weight for each of the {c} channels "
            f"({channel_how(layout)})"
        )
        _bars(ax, channel, 1 / g, f"channel 0–{c - 1}", "weight", f"1/{g}, equal weights")
        return heading
    of = f" of the {row}" if g > 1 else ""
    heading = f"{sentence(channel_name(layout))}, channels 0–{c - 1}{of}: {channel_how(layout)}"
    reference = layout.untrained_value
    why = "" if reference is None else f"{reference:.3f}, every gate of an untrained unit"
    _bars(ax, channel, reference, f"channel 0–{c - 1}", "gate value", why)
    return heading


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
    """One row of a unit's gates (a group of SA, a kernel path of SK; the whole unit where
    there is one row), as `gate_panels.group_panel` shows it: its spatial maps over the image,
    above its channel gates as bars, each headed by what it is, with what the gates weigh.
    A unit without spatial gates (SE, ECA, SK) gets its bars alone, one without channel gates
    (Global Context, `gca`) its map alone."""
    layout = layout_of(gates)
    row, g = row_word(layout), layout.groups
    where = f"{unit}, {row} {group} of {g}" if g > 1 else unit
    # For the screen, what the gates weigh (an SA group's halves); a paper's caption says it.
    weigh = f"\nWhat the gates weigh: {layout.gated}." if layout.gated and width is None else ""
    inches = 6.5 if width is None else width
    value_range = unit_range(gates, scale)
    if gates.spatial is None:
        inches = 8.0 if width is None else width
        fig = Figure(layout="constrained")
        ax = fig.subplots()
        heading = _row_bars(ax, gates, group)
        text = f"{where} · {kind_of(layout)} unit\n{heading}{weigh}"
        lines = _title(ax, text, untrained, width, inches * 0.9)
        # the bars (1.2 in at least), the title's lines, the ticks and the two-line axis label
        bars = max(1.2, min(2.2, inches / 3))
        fig.set_size_inches(inches, bars + lines * paper.line_height() + 0.8)
        return paper.styled(fig, width)
    spatial = gates.spatial[0, group].numpy()  # (maps, h, w)
    maps, (h, w) = len(spatial), spatial.shape[-2:]
    whose = f"the {row}'s {count(maps, 'map')}" if g > 1 else maps_of_row(layout)
    heading = f"{sentence(spatial_name(layout))}, {whose}: {spatial_how(layout, h, w)}"
    if maps == 1:
        heading += f"; {map_label(layout, spatial[0])}"
    maps_title = f"{where} · {kind_of(layout)} unit\n{heading}"
    if gates.channel is None:
        return _one_map_figure(
            image,
            spatial[0],
            maps_title + weigh,
            name=value_name(gates),
            colormap=colormap,
            alpha=alpha,
            scale=scale,
            value_range=value_range,
            untrained=untrained,
            width=width,
        )
    fig = Figure(layout="compressed")
    top, bottom = fig.subplots(2, 1)
    look = {"colormap": colormap, "alpha": alpha, "scale": scale, "value_range": value_range}
    if maps == 1:
        map_axes(top, image, spatial[0], **look)
        columns, picture, margin = 1, aspect(image), 0.1
    else:
        columns = min(maps, 4)
        mosaic_axes(top, image, spatial, columns=columns, what="map", **look)
        picture, margin = grid_aspect(image, maps, columns), MOSAIC_MARGIN
    _scale_bar(fig, top, scale, value_range, colormap, value_name(gates))
    lines = _title(top, maps_title, untrained, width, inches * 0.8)
    heading = _row_bars(bottom, gates, group)
    bars_lines = _title(bottom, heading + weigh, False, width, inches * 0.75)
    # The maps' height from their picture, the bars' a third of the width (1.2 in at least),
    # with their heading's lines.
    grid = paper.pictures_figsize(
        width,
        inches,
        picture,
        share=(0.8 if columns == 1 else 1) - (margin + 1.0) / inches,
        extra=lines * paper.line_height() + margin,
    )[1]
    bars = max(1.2, min(2.2, inches / 3)) + (bars_lines + 1) * paper.line_height()
    fig.set_size_inches(inches, grid + bars)
    top.get_gridspec().set_height_ratios([grid, bars])
    return paper.styled(fig, width)


@dataclass(frozen=True)
class _Chart:
    """One chart of `gate_summary_figure`: per unit a dot, a bar and a band (NaN: none)."""

    mean: np.ndarray
    within: np.ndarray
    across: np.ndarray
    reference: float | None
    y_label: str
    heading: str


def _figure(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _means(values: Sequence[np.ndarray | None]) -> np.ndarray:
    """Each unit's mean over its rows (NaN for a unit without the figure)."""
    return _figure([None if v is None else float(v.mean()) for v in values])


def _channel_chart(stats: Sequence[GateStats], layout: GateLayout, kinds: str) -> _Chart:
    means = [s.channel_mean for s in stats]
    mean = _means(means)
    within = _means([s.channel_std for s in stats])
    across = _figure([None if m is None or len(m) < 2 else float(m.std()) for m in means])
    row = row_word(layout)
    if softmax_over_rows(layout):
        g = layout.groups
        heading = (
            f"{sentence(row)} weights per {kinds} unit: {channel_how(layout)}\n"
            f"dot: mean (1/{g} by construction); bar: ± std over the channels of each {row}; "
            f"shading: ± std of the {row}s' means; dotted: 1/{g}, the {row}s weighed equally"
        )
        return _Chart(mean, within, across, 1 / g, f"{row} weight", heading)
    heading = (
        f"Channel gates per {kinds} unit: {channel_how(layout)}\ndot: mean; bar: ± std over "
        "the channels"
        + (f" of each {row}; shading: ± std of the {row}s' means" if layout.groups > 1 else "")
    )
    reference = layout.untrained_value
    if reference is not None:
        heading += f"; dotted: {reference:.3f}, every gate of an untrained unit"
    return _Chart(mean, within, across, reference, "channel gate", heading)


def _spatial_chart(stats: Sequence[GateStats], layout: GateLayout, kinds: str) -> _Chart:
    row = row_word(layout)
    several = layout.groups > 1
    if softmax_spatial(layout):
        entropy = [s.spatial_entropy for s in stats]
        mean = _means(entropy)
        across = _figure([None if e is None or len(e) < 2 else float(e.std()) for e in entropy])
        heading = (
            f"Attention over positions per {kinds} unit: the entropy of its softmax "
            "(0: all on one position, 1: uniform)\ndot: entropy"
            + (f" (mean over the {row}s; shading: ± std)" if several else "")
        )
        return _Chart(mean, np.full(len(stats), np.nan), across, None, "entropy", heading)
    means = [s.spatial_mean for s in stats]
    mean = _means(means)
    within = _means([s.spatial_std for s in stats])
    across = _figure([None if m is None or len(m) < 2 else float(m.std()) for m in means])
    heading = (
        f"Spatial gates per {kinds} unit: {spatial_how(layout)}\ndot: mean; bar: ± std over "
        "the positions"
        + (f" of each {row}'s map; shading: ± std of the {row}s' means" if several else "")
    )
    reference = layout.untrained_value
    if reference is not None:
        heading += f"; dotted: {reference:.3f}, every gate of an untrained unit"
    return _Chart(mean, within, across, reference, "spatial gate", heading)


def gate_summary_figure(
    all_gates: dict[str, UnitGates], *, untrained: bool = False, width: float | None = None
) -> Figure:
    """Per unit, the figures people compare across depth (as `gate_panels.summary_panel`), one
    chart per kind of gate the units have, each headed by what it plots and its legend: channel
    gates and sigmoid spatial gates as mean ± std (within each row; shaded: the spread of the
    rows' means); a softmax over kernel paths or radix splits as its weights' spread; a softmax
    over positions as its entropy (0: one position, 1: uniform). The dotted line is the value
    every gate of an untrained unit takes, or the rows' equal share."""
    names = list(all_gates)
    layouts = [layout_of(g) for g in all_gates.values()]
    stats = [gate_stats(g) for g in all_gates.values()]
    kinds = "/".join(dict.fromkeys(kind_of(layout) for layout in layouts))
    charts = []
    channel = [i for i, g in enumerate(all_gates.values()) if g.has_channel]
    if channel:
        charts.append(_channel_chart(stats, layouts[channel[0]], kinds))
    spatial = [i for i, g in enumerate(all_gates.values()) if g.has_spatial]
    if spatial:
        charts.append(_spatial_chart(stats, layouts[spatial[0]], kinds))
    inches = 7.0 if width is None else width
    per_chart = 2.4 if width is None else max(1.0, inches / 4)
    fig = Figure(layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(charts), 1, sharex=True))
    x = np.arange(len(names))
    lines = 0
    for i, (ax, chart) in enumerate(zip(axes, charts, strict=True)):
        banded = ~np.isnan(chart.mean) & ~np.isnan(chart.across)
        if banded.any():
            low, high = chart.mean - chart.across, chart.mean + chart.across
            ax.fill_between(x, low, high, where=banded, color=BLUE, alpha=0.2, lw=0)
        within = np.nan_to_num(chart.within)  # a unit without a figure has no bar
        ax.errorbar(x, chart.mean, within, fmt="o", color=ORANGE, ecolor=BLUE, ms=3, capsize=2)
        if chart.reference is not None:
            ax.axhline(chart.reference, color="grey", ls=":", lw=0.8)
        for j in range(1, len(names)):  # a new stage: a separator
            if layouts[j].stage != layouts[j - 1].stage:
                ax.axvline(j - 0.5, color="#dddddd", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(chart.y_label)
        head = f"Gate statistics of all {len(names)} {kinds} units\n" if i == 0 else ""
        lines += _title(ax, head + chart.heading, untrained and i == 0, width, inches * 0.9)
    axes[-1].set_xticks(
        x, [n.removeprefix("layer").removeprefix("stages.") for n in names], rotation=90
    )
    axes[-1].set_xlabel("unit (stage.block)")
    # the charts, the titles' lines, the unit names (turned) and the axis label
    fig.set_size_inches(inches, per_chart * len(charts) + lines * paper.line_height() + 0.75)
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
    """One attention unit, titled in its kind's words: its spatial gates over the image (each
    row's mean over its maps, with their colour scale; one map large), beside its channel gates
    as a heatmap (rows × c; one row in lines of up to 64 channels; a softmax over kernel paths or
    radix splits as one block of lines per row). A unit without spatial gates (SE, ECA, SK)
    gets its channel gates alone, one without channel gates (Global Context, `gca`) its map."""
    layout = layout_of(gates)
    look = {"colormap": colormap, "alpha": alpha, "scale": scale}
    if gates.spatial is None:
        rows = channel_rows(gates)
        inches = 9.0 if width is None else width
        fig = Figure(layout="constrained")
        ax = fig.subplots()
        heatmap_axes(fig, ax, rows, colour_label=_colour_label(layout))
        text = (
            f"{unit}: {kind_of(layout)} {channel_name(layout)} "
            f"({count(gates.channels, 'channel')})\n{sentence(channel_how(layout))}"
        )
        lines = _title(ax, text, untrained, width, inches * 0.8)
        # the cells (0.12 in a row for the screen, to scale at a paper width; 0.6 in at least),
        # the title's lines, the ticks and the axis label
        cells = max(0.6, 0.12 * len(rows.values) * inches / 9)
        fig.set_size_inches(inches, cells + lines * paper.line_height() + 0.9)
        return paper.styled(fig, width)
    if gates.channel is None:
        return gate_mosaic_figure(image, gates, unit, untrained=untrained, width=width, **look)
    maps = gates.spatial_mean()[0].numpy()
    one_map = gates.groups == 1
    inches = (11.0 if one_map else 12.0) if width is None else width
    left_share = 0.6 if one_map else 0.8
    fig = Figure(layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[3, 2] if one_map else [4, 1])
    ax = left.subplots()
    value_range = unit_range(gates, scale)
    if one_map:
        map_axes(ax, image, maps[0], value_range=value_range, **look)
        text = _one_map_text(gates, unit, scale)
        picture, margin = aspect(image), 0.1
    else:
        row = row_word(layout)
        mosaic_axes(ax, image, maps, value_range=value_range, columns=8, what=row, **look)
        text = (
            f"{unit}: {kind_of(layout)} {spatial_name(layout)} of the "
            f"{count(gates.groups, row)}\n{sentence(spatial_how(layout))}; colours: {scale}"
        )
        picture, margin = grid_aspect(image, len(maps), 8), MOSAIC_MARGIN
    _scale_bar(left, ax, scale, value_range, colormap, value_name(gates))
    lines = _title(ax, text, untrained, width, inches * (left_share - 0.15))
    hx = right.subplots()
    heatmap_axes(right, hx, channel_rows(gates), colour_label=_colour_label(layout))
    heading = f"{channel_name(layout)}\n{channel_how(layout)}"
    lines = max(lines, _title(hx, heading, untrained, width, inches * (0.85 - left_share)))
    fig.set_size_inches(
        paper.pictures_figsize(
            width,
            inches,
            picture,
            share=left_share - (margin + 1.0) / inches,
            extra=lines * paper.line_height() + margin + 0.1,
        )
    )
    return paper.styled(fig, width)
