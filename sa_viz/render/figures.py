"""Figures with axes, titles and colour bars, made with matplotlib's object API (no pyplot, so
no global figure state): the CLI's outputs, for papers and slides. The app draws with the faster
`render.overlays` and `render.panels`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from sa_viz.probes import UnitGates
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    UNTRAINED_STAMP,
    mosaic,
    overlay,
    row_width,
)
from sa_viz.render.panels import unit_range


def figure_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 image."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _title(ax: Axes, text: str, untrained: bool) -> None:
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
    """One attention unit: its groups' spatial gates (mean over each group's channels) over the
    image, with their colour scale, beside the groups × c channel-gate heatmap. A unit without
    spatial gates (SE) gets its channel gates alone, in rows of up to 64 channels."""
    channel = gates.channel[0].numpy()
    kind = gates.layout.kind if gates.layout else ""
    if gates.spatial is None:
        columns = row_width(channel.shape[1])
        rows = channel.reshape(-1, columns)
        fig = Figure(figsize=(9, 1.5 + 0.12 * len(rows)), layout="constrained")
        ax = fig.subplots()
        heat = ax.imshow(rows, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xlabel(f"channel (+ column), {columns} per row")
        ax.set_ylabel(f"row (channels row × {columns})")
        fig.colorbar(heat, ax=ax, label="channel gate")
        _title(
            ax, f"{unit}: channel gates of the {kind} unit ({channel.shape[1]} channels)", untrained
        )
        return fig
    spatial = gates.spatial_mean()[0].numpy()
    value_range = unit_range(gates, scale)
    grid = mosaic(
        image, spatial, colormap=colormap, alpha=alpha, scale=scale, value_range=value_range
    )
    fig = Figure(figsize=(12, 7.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[4, 1])
    ax = left.subplots()
    ax.imshow(grid)
    ax.axis("off")
    if value_range is not None:
        left.colorbar(
            ScalarMappable(Normalize(*value_range), colormap),
            ax=ax,
            shrink=0.6,
            label=f"spatial gate ({scale}; tiles: the mean over each group's channels)",
        )
    _title(ax, f"{unit}: spatial gates of the {gates.groups} groups (colours: {scale})", untrained)
    hx = right.subplots()
    heat = hx.imshow(channel, aspect="auto", cmap="viridis", interpolation="nearest")
    hx.set_xlabel("channel (c)")
    hx.set_ylabel("group")
    hx.set_yticks(range(0, len(channel), max(1, len(channel) // 8)))
    right.colorbar(heat, ax=hx, label="channel gate", shrink=0.8)
    _title(hx, "channel gates", untrained)
    return fig


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
