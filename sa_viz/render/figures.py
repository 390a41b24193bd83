"""Figures with axes, titles and colour bars, made with matplotlib's object API (no pyplot, so
no global figure state): the CAMs of an explanation, for the CLI, the export's SVG and PDF, and
papers. The app draws with the faster `render.overlays` and `render.panels`; the gates' figures
are `render.gate_figures`.

Each map is one image drawn with `interpolation="none"` (embedded at its own resolution in SVG
and PDF); `width` (inches, `render.paper`) draws a figure for a paper, None for the screen.
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

from sa_viz.render import paper
from sa_viz.render.overlays import (
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    DIVERGING,
    UNTRAINED_STAMP,
    overlay,
    signed_overlay,
)

UNTRAINED_COLOUR = "#b00020"


def figure_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 image."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def title(ax: Axes, text: str, untrained: bool, width: float | None, inches: float) -> int:
    """An axes' title, wrapped to `inches` at a paper width; a model without trained weights
    says so, in red. Returns its number of lines."""
    if untrained:
        text = f"{UNTRAINED_STAMP}\n{text}"
    text = paper.wrap(text, inches, width)
    ax.set_title(text, fontsize=9, color=UNTRAINED_COLOUR if untrained else "black")
    return text.count("\n") + 1


def aspect(image: np.ndarray) -> float:
    """A picture's height ÷ width."""
    return image.shape[0] / image.shape[1]


def comparison_figure(
    image: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, bool]],
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    suptitle: str = "",
    width: float | None = None,
) -> Figure:
    """The image, then one CAM overlay per (title, cam, untrained) panel, side by side."""
    columns = len(panels) + 1
    inches = (3.2 * columns if width is None else width) / columns
    fig = Figure(layout="compressed")
    axes = fig.subplots(1, columns)
    axes[0].imshow(image, interpolation="none")
    lines = [title(axes[0], "input (as the models see it)", False, width, inches)]
    for ax, (text, cam, untrained) in zip(axes[1:], panels, strict=True):
        ax.imshow(overlay(image, cam, colormap, alpha), interpolation="none")
        lines.append(title(ax, text, untrained, width, inches))
    for ax in axes:
        ax.axis("off")
    # For the screen, the colour bar stands at the right; at a paper width, whose columns are
    # narrow, it lies under the maps, where its label has room.
    below = width is not None
    fig.colorbar(
        ScalarMappable(Normalize(0, 1), colormap),
        ax=axes[1:],
        shrink=0.7 if not below else 0.9,
        orientation="horizontal" if below else "vertical",
        label="CAM (each map: its min → max)",
    )
    # The pictures set the height (less the colour bar's width, or plus its height), then the
    # titles' lines.
    extra = max(lines) * paper.line_height() + (0.3 if suptitle else 0) + (0.8 if below else 0.3)
    share = 1 if below else 1 - 0.9 / (inches * columns)
    fig.set_size_inches(
        paper.pictures_figsize(
            width, 3.2 * columns, aspect(image) / columns, share=share, extra=extra
        )
    )
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return paper.styled(fig, width)


def cam_figure(
    image: np.ndarray,
    values: np.ndarray,
    text: str,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    label: str = "CAM, from its min to its max",
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """One model's CAM (values in [0, 1], any size: resized to the image) over the image, with
    its colour bar."""
    fig = Figure(layout="compressed")
    ax = fig.subplots()
    ax.imshow(overlay(image, values, colormap, alpha), interpolation="none")
    ax.axis("off")
    lines = title(ax, text, untrained, width, _inches(width) * 0.9)
    _size_below_title(fig, image, lines, width)
    fig.colorbar(
        ScalarMappable(Normalize(0, 1), colormap),
        ax=ax,
        orientation="horizontal",
        shrink=0.8,
        label=paper.wrap(label, _inches(width) * 0.8, width, paper.TEXT_PT),
    )
    return paper.styled(fig, width)


def difference_figure(
    image: np.ndarray,
    difference: np.ndarray,
    limit: float,
    text: str,
    *,
    alpha: float = 0.65,
    untrained: bool = False,
    width: float | None = None,
) -> Figure:
    """A signed map (the second model's CAM less the first's) in diverging colours over the
    image in gray, ±`limit` at the colour bar's ends, zero white."""
    fig = Figure(layout="compressed")
    ax = fig.subplots()
    ax.imshow(signed_overlay(image, difference, alpha, limit), interpolation="none")
    ax.axis("off")
    lines = title(ax, text, untrained, width, _inches(width) * 0.9)
    _size_below_title(fig, image, lines, width)
    fig.colorbar(
        ScalarMappable(Normalize(-limit, limit), DIVERGING),
        ax=ax,
        orientation="horizontal",
        shrink=0.8,
        label=paper.wrap(
            "difference of the maps (red: the second looks more)",
            _inches(width) * 0.8,
            width,
            paper.TEXT_PT,
        ),
    )
    return paper.styled(fig, width)


SINGLE_PICTURE = 4.2  # inches: a figure of one map, for the screen


def _inches(width: float | None) -> float:
    return SINGLE_PICTURE if width is None else width


def _size_below_title(fig: Figure, image: np.ndarray, lines: int, width: float | None) -> None:
    """A figure of one picture: its width, the picture's height, the title's `lines` and a
    horizontal colour bar with its label below."""
    extra = lines * paper.line_height() + 0.9
    fig.set_size_inches(
        paper.pictures_figsize(width, SINGLE_PICTURE, aspect(image), share=0.95, extra=extra)
    )


def mprt_figure(
    curves: Mapping[str, Mapping[str, Any]],
    measure: str = "spearman",
    order: str = "cascade",
    width: float | None = None,
) -> Figure:
    """The model parameter randomisation test of several models on one chart: per model (title
    → the MPRT's details, `sa_viz.analyses.mprt`, or a study's means as `mprt.curve` gives
    them), the similarity of its map after each randomisation step to its own map, from the
    head down (`order`: "cascade" or "independent"), and its baseline as a dashed line.

    Step 0 is the model as trained (similarity 1). The steps are named on the axis when every
    model has the same ones, else numbered. `width`: inches (`paper`; None: for the screen)."""
    fig = Figure(figsize=paper.figsize(width, (8, 3.6)), layout="constrained")
    inches = fig.get_figwidth()
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
    gaps = any(v != v for c in curves.values() for v in c[order][measure])
    gap = "; a gap: a constant map, which has no rank order" if gaps else ""
    ax.set_xlabel(
        # Wrapped on the screen too: at 8 in, the longer label ran past the figure's edge
        paper.wrap(f"{how[order]} (dashed: the baseline{gap})", inches - 0.4, inches, 10)
    )
    ax.set_ylabel(f"{measure} with the model's own map")
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
    ax.axhline(0, color="#999999", linewidth=0.5)
    title = (
        "Model parameter randomisation test: partial similarity is expected "
        "(Binder et al., 2023); compare each curve with its baseline"
    )
    ax.set_title(paper.wrap(title, inches - 0.4, inches), fontsize=9)
    ax.legend(fontsize=8)
    return paper.styled(fig, width)


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


# Groups that come last in a map's legend, whatever their names.
LAST_GROUPS = ("other classes", "unlabelled")


def map_figure(
    xy: np.ndarray, groups: Sequence[str], title: str, legend: str
) -> tuple[Figure, Axes]:
    """A 2-D map of points (a t-SNE), each coloured by its group (tab20's colours, groups in
    name order, `LAST_GROUPS` last), the legend beside it; returns the figure and its axes
    (`drawn_positions` finds each point in its picture)."""
    from matplotlib import colormaps

    fig = Figure(figsize=(7.6, 5.4), layout="constrained")
    ax = fig.subplots()
    names = sorted(set(groups), key=lambda g: (g in LAST_GROUPS, g))
    colours = colormaps["tab20"]
    chosen = np.asarray(groups)
    for i, name in enumerate(names):
        members = chosen == name
        colour = "#9e9e9e" if name in LAST_GROUPS else colours((2 * i) % 20 + (2 * i) // 20)
        ax.scatter(*xy[members].T, s=16, color=colour, label=name, alpha=0.85, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, title=legend, title_fontsize=7, loc="center left",
              bbox_to_anchor=(1.01, 0.5), markerscale=1.2)  # fmt: skip
    return fig, ax


def drawn_positions(fig: Figure, ax: Axes, xy: np.ndarray, dpi: int = 100) -> np.ndarray:
    """Where the points `xy` (data coordinates of `ax`) stand in `figure_array(fig, dpi)`: (n, 2)
    pixels, x from the left, y from the top."""
    fig.set_dpi(dpi)
    FigureCanvasAgg(fig).draw()
    found = ax.transData.transform(np.asarray(xy, dtype=float))
    return np.column_stack([found[:, 0], fig.bbox.height - found[:, 1]])
