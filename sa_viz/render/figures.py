"""Figures with axes, titles and colour bars, made with matplotlib's object API (no pyplot, so
no global figure state): the CLI's outputs, for papers and slides. The app draws with the faster
`render.overlays` and `render.panels`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from sa_viz.probes import UnitGates
from sa_viz.render.gate_words import (
    channel_how,
    channel_name,
    count,
    kind_of,
    layout_of,
    maps_of_row,
    row_word,
    softmax_over_rows,
    softmax_spatial,
    spatial_how,
    spatial_name,
)
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    UNTRAINED_STAMP,
    mosaic,
    overlay,
    row_width,
    to_unit,
)
from sa_viz.render.panels import unit_range


def figure_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 image."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _title(ax: Axes, text: str, untrained: bool, chars: int = 90) -> None:
    # Wrapped at `chars` (about 11 a 9-point inch): a wider title is cut off at the figure's edge.
    text = "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))
    if untrained:
        text = f"{UNTRAINED_STAMP}\n{text}"
    ax.set_title(text, fontsize=9, color="#b00020" if untrained else "black")


def comparison_figure(
    image: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, bool]],
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    suptitle: str = "",
) -> Figure:
    """The image, then one CAM overlay per (title, cam, untrained) panel, side by side."""
    fig = Figure(figsize=(3.2 * (len(panels) + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels) + 1)
    axes[0].imshow(image)
    axes[0].set_title("input (as the models see it)", fontsize=9)
    for ax, (text, cam, untrained) in zip(axes[1:], panels, strict=True):
        ax.imshow(overlay(image, cam, colormap, alpha))
        _title(ax, text, untrained)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(
        ScalarMappable(Normalize(0, 1), colormap),
        ax=axes[1:],
        shrink=0.7,
        label="CAM (each map: its min → max)",
    )
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def gate_grid_figure(
    image: np.ndarray,
    gates: UnitGates,
    unit: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    untrained: bool = False,
) -> Figure:
    """One attention unit, titled in its kind's words: its spatial gates over the image (each
    row's mean over its maps, with their colour scale; one map large), beside its channel gates
    as a heatmap (rows × c; one row in lines of up to 64 channels; a softmax over kernel paths or
    radix splits as one block of lines per row). A unit without spatial gates (SE, ECA, SK)
    gets its channel gates alone, one without channel gates (Global Context, `gca`) its map."""
    layout = layout_of(gates)
    if gates.spatial is None:
        fig = Figure(figsize=(9, 2.2 + 0.12 * _heat_rows(gates)), layout="constrained")
        _channel_heat(fig, fig.subplots(), gates, unit, untrained, full=True)
        return fig
    one_map = gates.groups == 1
    size = (11, 5.2) if one_map else (12, 7.2)
    fig = Figure(figsize=size if gates.channel is not None else (7, 5.2), layout="constrained")
    if gates.channel is not None:
        left, right = fig.subfigures(1, 2, width_ratios=[3, 2] if one_map else [4, 1])
    else:
        left, right = fig, None
    maps = gates.spatial_mean()[0].numpy()
    value_range = unit_range(gates, scale)
    ax = left.subplots()
    if one_map:
        h, w = maps.shape[-2:]
        shown = to_unit(maps, scale, value_range)[0]
        ax.imshow(overlay(image, shown, colormap, alpha))
        what = f"{kind_of(layout)} {spatial_name(layout)}, {maps_of_row(layout)}"
        how = spatial_how(layout, h, w)
    else:
        ax.imshow(
            mosaic(
                image, maps, colormap=colormap, alpha=alpha, scale=scale, value_range=value_range
            )
        )
        rows = count(gates.groups, row_word(layout))
        what = f"{kind_of(layout)} {spatial_name(layout)} of the {rows}"
        how = f"{spatial_how(layout)}; colours: {scale}"
    ax.axis("off")
    if value_range is not None:
        name = "softmax weight" if softmax_spatial(layout) else "spatial gate"
        each = "" if one_map else "; tiles: the mean over each row's maps"
        left.colorbar(
            ScalarMappable(Normalize(*value_range), colormap),
            ax=ax,
            shrink=0.6,
            label=f"{name} ({scale}{each})",
        )
    _title(ax, f"{unit}: {what}\n{how}", untrained, chars=60 if right is not None else 70)
    if right is not None:
        _channel_heat(right, right.subplots(), gates, unit, untrained, full=False)
    return fig


def _heat_rows(gates: UnitGates) -> int:
    layout = layout_of(gates)
    if gates.groups == 1 or softmax_over_rows(layout):
        return gates.groups * (gates.channels // row_width(gates.channels))
    return gates.groups


def _channel_heat(
    fig: Figure | SubFigure, ax: Axes, gates: UnitGates, unit: str, untrained: bool, full: bool
) -> None:
    """The channel gates as one heatmap: rows × c, or each row in lines of up to 64 channels
    (one row, or a softmax over the rows: the lines of each row one block)."""
    layout = layout_of(gates)
    channel = gates.channel[0].numpy()  # (G, c)
    g, c = channel.shape
    row = row_word(layout)
    if g == 1 or softmax_over_rows(layout):
        columns = row_width(c)
        lines = c // columns
        heat = ax.imshow(
            channel.reshape(-1, columns), aspect="auto", cmap="viridis", interpolation="nearest"
        )
        ax.set_xlabel(f"channel (+ line × {columns})" if lines > 1 else "channel")
        if g > 1:
            ax.set_yticks(
                [i * lines - 0.5 + lines / 2 for i in range(g)], [str(i) for i in range(g)]
            )
            for i in range(1, g):
                ax.axhline(i * lines - 0.5, color="white", linewidth=2)
            ax.set_ylabel(f"{row} ({lines} lines each)" if lines > 1 else row)
        else:
            ax.set_ylabel(f"line ({columns} channels each)" if lines > 1 else "")
            if lines == 1:
                ax.set_yticks([])
    else:
        heat = ax.imshow(channel, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xlabel("channel (c)")
        ax.set_ylabel(row)
        ax.set_yticks(range(0, g, max(1, g // 8)))
    label = "weight" if softmax_over_rows(layout) else "channel gate"
    fig.colorbar(heat, ax=ax, label=label, shrink=0.8)
    name = channel_name(layout)
    how = channel_how(layout)
    if full:
        text = f"{unit}: {kind_of(layout)} {name} ({count(c, 'channel')})\n{how}"
    else:
        text = f"{name}\n{how}"
    _title(ax, text, untrained, chars=90 if full else 40)


def mprt_figure(
    curves: Mapping[str, Mapping[str, Any]], measure: str = "spearman", order: str = "cascade"
) -> Figure:
    """The model parameter randomisation test of several models on one chart: per model (title
    → the MPRT's details, `sa_viz.analyses.mprt`, or a study's means as `mprt.curve` gives
    them), the similarity of its map after each randomisation step to its own map, from the
    head down (`order`: "cascade" or "independent"), and its baseline as a dashed line.

    Step 0 is the model as trained (similarity 1). The steps are named on the axis when every
    model has the same ones, else numbered."""
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    names = [list(c["steps"]) for c in curves.values()]
    shared = bool(names) and all(n == names[0] for n in names)
    for i, (title, c) in enumerate(curves.items()):
        values = [1.0, *c[order][measure]]
        ax.plot(range(len(values)), values, marker="o", markersize=3, color=f"C{i}", label=title)
        baseline = c.get("baseline", {}).get(measure)
        if baseline is not None and baseline == baseline:
            ax.axhline(baseline, color=f"C{i}", linestyle="--", linewidth=1)
    if shared:
        ax.set_xticks(range(len(names[0]) + 1), ["trained", *names[0]], rotation=60, fontsize=7)
    how = {
        "cascade": "randomised from the head down, cumulatively",
        "independent": "one step randomised at a time, from the head down",
    }
    ax.set_xlabel(f"{how[order]} (dashed: the baseline)")
    ax.set_ylabel(f"{measure} with the model's own map")
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
    ax.axhline(0, color="#999999", linewidth=0.5)
    ax.set_title(
        "Model parameter randomisation test: partial similarity is expected "
        "(Binder et al., 2023); compare each curve with its baseline",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    return fig


def clusters_figure(
    eigenvalues: np.ndarray,
    k: int,
    means: np.ndarray,
    embedding: np.ndarray,
    clusters: np.ndarray,
    title: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
) -> Figure:
    """One class's strategies under one model (`sa_viz.studies.clusters`): the normalised
    Laplacian's first eigenvalues with the gap that chose k, the t-SNE map of the images
    coloured by cluster, and each cluster's mean CAM (k, h, w) in the same colours."""
    shown = min(len(eigenvalues), max(10, k + 3))
    columns = max(k, 2)
    fig = Figure(figsize=(max(8.0, 1.7 * columns), 7.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.5, 1])
    gap_ax, map_ax = top.subplots(1, 2)
    gap_ax.plot(range(1, shown + 1), eigenvalues[:shown], marker="o", markersize=4, color="C7")
    gap_ax.plot([k, k + 1], eigenvalues[k - 1 : k + 1], color="#b00020", linewidth=2.5,
                label=f"largest gap: k = {k}")  # fmt: skip
    gap_ax.set_xlabel("i")
    gap_ax.set_ylabel("eigenvalue λᵢ of the normalised Laplacian")
    gap_ax.set_title("eigengap", fontsize=9)
    gap_ax.legend(fontsize=8)
    for c in range(k):
        members = clusters == c
        map_ax.scatter(*embedding[members].T, s=18, color=f"C{c % 10}", label=f"{c}")
    map_ax.set_title("t-SNE of the CAMs, by cluster", fontsize=9)
    map_ax.set_xticks([])
    map_ax.set_yticks([])
    if k > 1:
        map_ax.legend(fontsize=7, title="cluster", title_fontsize=7, markerscale=0.8)
    axes = np.atleast_1d(bottom.subplots(1, columns))
    for c, ax in enumerate(axes):
        ax.axis("off")
        if c < k:
            ax.imshow(means[c], cmap=colormap, vmin=0)
            size = int(np.sum(clusters == c))
            ax.set_title(f"cluster {c}: {size} images", fontsize=9, color=f"C{c % 10}")
    bottom.suptitle("each cluster's mean CAM (unit-norm maps, resized)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig
