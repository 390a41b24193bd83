"""A unit's gate pictures beside its spatial mosaic (`render.panels`): one row of its gates
enlarged, its channel gates as a heatmap, and the statistics of all of a model's units, for
every layout a probe gives (SA's groups, SE's and ECA's one row of channel gates, CBAM's and
Global Context's one map, the softmax over kernel paths or radix splits of SK and ResNeSt).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from sa_viz.probes import GateLayout, GateStats, UnitGates, gate_stats
from sa_viz.render.gate_words import (
    channel_how,
    channel_name,
    count,
    kind_of,
    layout_of,
    number,
    row_word,
    sentence,
    softmax_over_rows,
    softmax_spatial,
    spatial_how,
    spatial_name,
)
from sa_viz.render.overlays import DEFAULT_ALPHA, DEFAULT_COLORMAP, mosaic, row_width
from sa_viz.render.panels import (
    AXIS,
    BLUE,
    GRID,
    ORANGE,
    bar_panel,
    headed,
    heatmap_panel,
    labelled,
    map_label,
    scale_bar,
    side_by_side,
    single_tile,
    stacked,
    unit_range,
    value_name,
)
from sa_viz.render.text import text_width, write


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
    """One row of a unit's gates enlarged (a group of SA, a kernel path of SK; the whole unit
    where there is one row): its spatial maps over the image, each on its own, and its channel
    gates as bars, each headed by what it is; the caption says what the gates weigh.

    Within an SA group the channel gates and the spatial maps act on different channels (the
    group's two halves): the layout's `gated` says so, and the numbering follows each gate."""
    layout = layout_of(gates)
    row = row_word(layout)
    parts = []
    value_range = unit_range(gates, scale)
    if gates.spatial is not None:
        parts.append(_row_maps(image, gates, group, colormap, alpha, scale, value_range))
    if gates.channel is not None:
        parts.append(_row_bars(gates, group, min(720, max((p.shape[1] for p in parts), default=0))))
    body = stacked(parts, gap=8)
    where = f"{unit}, {row} {group} of {layout.groups}" if layout.groups > 1 else unit
    title = f"{where} · {kind_of(layout)} unit"
    if gates.spatial is not None:
        title += " · spatial colours: " + (
            "each map's own range"
            if value_range is None
            else f"{number(value_range[0], value_range[1])}–{number(value_range[1])} ({scale})"
        )
    caption = f"What the gates weigh: {layout.gated}." if layout.gated else ""
    return headed(body, title, caption, untrained=untrained)


def _row_maps(
    image: np.ndarray,
    gates: UnitGates,
    group: int,
    colormap: str,
    alpha: float,
    scale: str,
    value_range: tuple[float, float] | None,
) -> np.ndarray:
    layout = layout_of(gates)
    spatial = gates.spatial[0, group].numpy()  # (maps, h, w)
    maps, (h, w) = len(spatial), spatial.shape[-2:]
    picture = mosaic(
        image,
        spatial,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        value_range=value_range,
        columns=min(maps, 4),  # 4 to a row: the view fits an 800-px window at full size
        tile=single_tile(image) if maps == 1 else 128 if maps <= 2 else 96,
        labels=[
            map_label(layout, spatial[i]) if maps == 1 else f"map {i}: {spatial[i].mean():.2f}"
            for i in range(maps)
        ],
    )
    bar = scale_bar(
        scale, value_range, colormap, height=picture.shape[0] - 16, name=value_name(gates)
    )
    picture = side_by_side([picture, bar])
    whose = f"the {row_word(layout)}'s {count(maps, 'map')}" if layout.groups > 1 else "one map"
    heading = f"{sentence(spatial_name(layout))}, {whose}: {spatial_how(layout, h, w)}"
    return labelled(picture, heading, min_width=360)


def _row_bars(gates: UnitGates, group: int, width: int) -> np.ndarray:
    layout = layout_of(gates)
    channel = gates.channel[0, group].numpy()  # (c,)
    c, g, row = len(channel), layout.groups, row_word(layout)
    if softmax_over_rows(layout):
        heading = (
            f"{sentence(row)} {group}: its weight for each of the {c} channels (a softmax "
            f"over the {count(g, row)}; dashed: 1/{g}, equal weights)"
        )
        reference, y_label = 1 / g, "weight"
    else:
        of = f" of the {row}" if g > 1 else ""
        heading = f"{sentence(channel_name(layout))}, channels 0–{c - 1}{of}: {channel_how(layout)}"
        if layout.untrained_value is not None:
            heading += f"; dashed: {layout.untrained_value:.3f}, every gate of an untrained unit"
        reference, y_label = layout.untrained_value, "gate value"
    step = 1 if c <= 16 else c // 16
    bars = bar_panel(
        channel,
        [str(j) if j % step == 0 else "" for j in range(c)],
        y_label=y_label,
        width=max(width, 360, min(720, 6 * c)),
        reference=reference,
    )
    return labelled(bars, heading, min_width=360)


def channel_panel(
    gates: UnitGates, unit: str, group: int, *, untrained: bool = False
) -> np.ndarray:
    """A unit's channel gates as a heatmap, `group`'s row framed: rows × c for several rows
    (SA's groups); one row wrapped at 64 channels a line (SE, ECA, CBAM); a softmax over rows
    (SK's kernel paths, ResNeSt's radix splits) as one block of wrapped lines per row."""
    layout = layout_of(gates)
    values = gates.channel[0].numpy()  # (G, c)
    g, c = values.shape
    row = row_word(layout)
    how = channel_how(layout)
    if softmax_over_rows(layout) or g == 1:
        columns = row_width(c)
        lines = c // columns
        blocks = values.reshape(g * lines, columns)
        if g == 1:
            ticks = [(r, str(r)) for r in range(0, lines, max(1, lines // 8))] if lines > 1 else []
            row_label = f"channels (row × {columns})" if lines > 1 else "channels"
        else:
            ticks = [(i * lines, str(i)) for i in range(g)]
            row_label = f"{row} (lines of {columns} channels)" if lines > 1 else row
        heat = heatmap_panel(
            blocks,
            row_label=row_label,
            col_label=f"+ 0–{columns - 1}" if lines > 1 else f"channel 0–{c - 1}",
            row_ticks=ticks,
            highlight_rows=(group * lines, (group + 1) * lines) if g > 1 else None,
            separators=[i * lines for i in range(1, g)],
            cell_height=max(3, min(12, 256 // len(blocks))),
            width=256,
            colour_label="weight" if g > 1 else "channel gate",
        )
        if g > 1:
            caption = f"{sentence(how)}; rows: the {count(g, row)}, {row} {group} framed."
        else:
            caption = f"{sentence(how)}, one value for the whole image."
    else:
        heat = heatmap_panel(
            values,
            highlight_row=group,
            row_label=row,
            row_step=max(1, g // 8),
            col_label=f"channel 0–{c - 1} of the {row}",
            colour_label="channel gate",
        )
        caption = f"{sentence(how)}; rows: the {count(g, row)}, {row} {group} framed."
    title = f"{unit}: {kind_of(layout)} {channel_name(layout)}"
    return headed(heat, title, caption, untrained=untrained, min_width=360)


def summary_panel(all_gates: dict[str, UnitGates], *, untrained: bool = False) -> np.ndarray:
    """Per unit, the figures people compare across depth, one chart per kind of gate the units
    have, each headed by what it plots and followed by its legend: channel gates and sigmoid
    spatial gates as mean ± std (within each row; shaded: the spread of the rows' means); a
    softmax over kernel paths or radix splits as its weights' spread; a softmax over positions
    as its entropy (0: one position, 1: uniform). The dotted line is the value every gate of an
    untrained unit takes, or the rows' equal share."""
    names = list(all_gates)
    layouts = [layout_of(g) for g in all_gates.values()]
    stats = [gate_stats(g) for g in all_gates.values()]
    stages = [layout.stage for layout in layouts]
    kinds = "/".join(dict.fromkeys(kind_of(layout) for layout in layouts))
    charts = []
    channel = [i for i, g in enumerate(all_gates.values()) if g.has_channel]
    if channel:
        charts.append(_channel_chart(names, stages, stats, layouts[channel[0]], kinds))
    spatial = [i for i, g in enumerate(all_gates.values()) if g.has_spatial]
    if spatial:
        charts.append(_spatial_chart(names, stages, stats, layouts[spatial[0]], kinds))
    # One above the other: side by side (950 px) they were drawn at 3/4 size in an 800-px
    # window, their 10-px ticks at 7 px.
    body = stacked(charts, gap=10)
    return headed(body, f"Gate statistics of all {len(names)} {kinds} units", untrained=untrained)


def _channel_chart(
    names: Sequence[str],
    stages: Sequence[int],
    stats: Sequence[GateStats],
    layout: GateLayout,
    kinds: str,
) -> np.ndarray:
    means = [s.channel_mean for s in stats]
    mean = [None if m is None else float(m.mean()) for m in means]
    within = [None if s.channel_std is None else float(s.channel_std.mean()) for s in stats]
    # The spread of the rows' means: none for a unit with one row (SE), not a band of width 0.
    across = [None if m is None or len(m) < 2 else float(m.std()) for m in means]
    row = row_word(layout)
    if softmax_over_rows(layout):
        g = layout.groups
        heading = f"{sentence(row)} weights per {kinds} unit: {channel_how(layout)}"
        legend = (
            f"dot: mean (1/{g} by construction) · bar: ± std over the channels of each {row} · "
            f"shading: ± std of the {row}s' means · dotted: 1/{g}, the {row}s weighed equally"
        )
        reference = 1 / g
    else:
        heading = f"Channel gates per {kinds} unit: {channel_how(layout)}"
        legend = "dot: mean · bar: ± std over the channels" + (
            f" of each {row} · shading: ± std of the {row}s' means" if layout.groups > 1 else ""
        )
        reference = layout.untrained_value
        if reference is not None:
            legend += f" · dotted: {reference:.3f}, the value of every gate of an untrained unit"
    chart = _unit_chart(names, stages, mean, within, across, reference)
    return _legended(chart, heading, legend)


def _spatial_chart(
    names: Sequence[str],
    stages: Sequence[int],
    stats: Sequence[GateStats],
    layout: GateLayout,
    kinds: str,
) -> np.ndarray:
    row = row_word(layout)
    several = layout.groups > 1
    if softmax_spatial(layout):
        entropy = [s.spatial_entropy for s in stats]
        mean = [None if e is None else float(e.mean()) for e in entropy]
        within = [None] * len(stats)
        across = [None if e is None or len(e) < 2 else float(e.std()) for e in entropy]
        heading = (
            f"Attention over positions per {kinds} unit: the entropy of its softmax "
            "(0: all on one position, 1: uniform)"
        )
        legend = "dot: entropy" + (f" (mean over the {row}s; shading: ± std)" if several else "")
    else:
        means = [s.spatial_mean for s in stats]
        mean = [None if m is None else float(m.mean()) for m in means]
        within = [None if s.spatial_std is None else float(s.spatial_std.mean()) for s in stats]
        across = [None if m is None or len(m) < 2 else float(m.std()) for m in means]
        heading = f"Spatial gates per {kinds} unit: {spatial_how(layout)}"
        legend = "dot: mean · bar: ± std over the positions" + (
            f" of each {row}'s map · shading: ± std of the {row}s' means" if several else ""
        )
    reference = None if softmax_spatial(layout) else layout.untrained_value
    if reference is not None:
        legend += f" · dotted: {reference:.3f}, the value of every gate of an untrained unit"
    chart = _unit_chart(names, stages, mean, within, across, reference)
    return _legended(chart, heading, legend)


def _legended(chart: np.ndarray, heading: str, legend: str) -> np.ndarray:
    chart = labelled(chart, heading)
    width = chart.shape[1]
    lines = labelled(np.full((0, width, 3), 255, np.uint8), legend, size=11, bold=False, fill=AXIS)
    return stacked([chart, lines], gap=0)


def _unit_chart(
    names: Sequence[str],
    stages: Sequence[int],
    mean: Sequence[float | None],
    within: Sequence[float | None],
    across: Sequence[float | None],
    reference: float | None,
    width: int = 470,
    height: int = 246,
) -> np.ndarray:
    """Per unit a dot (`mean`), a bar (± `within`) and a shaded band (± `across`); None where a
    unit has no such figure (a unit of another kind)."""
    left, right, top, bottom = 44, 8, 10, 42
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
    banded = [i for i, (m, a) in enumerate(zip(mean, across, strict=True)) if None not in (m, a)]
    for run in _runs(banded):
        band = [(xs[i], y_of(mean[i] + across[i])) for i in run]
        band += [(xs[i], y_of(mean[i] - across[i])) for i in reversed(run)]
        if len(band) > 2:
            draw.polygon(band, fill=(*BLUE, 50))
    for x, m, s in zip(xs, mean, within, strict=True):
        if m is None:
            continue
        if s is not None:
            draw.line([(x, y_of(m - s)), (x, y_of(m + s))], fill=BLUE, width=2)
            draw.line([(x - 4, y_of(m - s)), (x + 4, y_of(m - s))], fill=BLUE)
            draw.line([(x - 4, y_of(m + s)), (x + 4, y_of(m + s))], fill=BLUE)
        draw.ellipse([x - 3.5, y_of(m) - 3.5, x + 3.5, y_of(m) + 3.5], fill=ORANGE)
    labels = [name.removeprefix("layer").removeprefix("stages.") for name in names]
    # Every k-th unit's name where all of them do not fit under their dots.
    every = -(-max(text_width(label, 10) for label in labels) // max(1, int(slot) - 2))
    for i, (x, label) in enumerate(zip(xs, labels, strict=True)):
        if i % every == 0:
            write(draw, (x, top + plot_h + 4), label, 10, anchor="mt")
        if i and stages[i] != stages[i - 1]:  # a new stage: a separator
            draw.line([(x - slot / 2, top), (x - slot / 2, top + plot_h)], fill=GRID)
    write(draw, (left + plot_w / 2, top + plot_h + 20), "unit (stage.block)", 11, anchor="mt")
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=AXIS)
    return np.asarray(canvas)


def _runs(indices: Sequence[int]) -> list[list[int]]:
    """Consecutive indices in runs: [0, 1, 3] → [[0, 1], [3]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
