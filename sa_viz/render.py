"""Pictures: CAM overlays, gate mosaics and the figures people export. The only module that draws.

Overlays and mosaics are composed with NumPy and OpenCV (a 64-panel matplotlib figure takes
seconds; these take milliseconds, so the app can re-render on every slider move). Figures with
axes, labels and colour bars use matplotlib's object API (no pyplot: no global figure state).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from sa_viz.gates import UnitGates, gate_stats

COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "cividis", "gray")
DEFAULT_COLORMAP = "jet"
DEFAULT_ALPHA = 0.5
DIVERGING = "RdBu_r"
UNTRAINED_STAMP = "UNTRAINED weights"
GATE_SCALES = ("unit range", "0–1", "per group")


def _lut(colormap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap."""
    cmap = matplotlib.colormaps[colormap]
    return np.round(cmap(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def colorize(values: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Values in [0, 1], (H, W) → (H, W, 3) uint8 colours."""
    index = np.clip(np.rint(np.asarray(values, np.float32) * 255), 0, 255).astype(np.uint8)
    return _lut(colormap)[index]


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    values = np.asarray(values, np.float32)
    return values if values.shape == (h, w) else cv2.resize(values, (w, h))


def overlay(
    image: np.ndarray,
    values: np.ndarray,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
) -> np.ndarray:
    """Blend a [0, 1] map, resized to the image, over an (H, W, 3) uint8 image."""
    heat = colorize(_resize(values, image.shape[:2]), colormap).astype(np.float32)
    return np.rint((1 - alpha) * image + alpha * heat).astype(np.uint8)


def signed_overlay(image: np.ndarray, values: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """A map in [−1, 1] in a diverging colormap (red > 0, blue < 0) over the image in gray."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    base = np.repeat(gray[:, :, None], 3, axis=2).astype(np.float32)
    colours = colorize((_resize(values, image.shape[:2]) + 1) / 2, DIVERGING).astype(np.float32)
    return np.rint((1 - alpha) * base + alpha * colours).astype(np.uint8)


def gate_range(maps: np.ndarray, scale: str) -> tuple[float, float]:
    """The value range a set of gate maps is coloured with (see `GATE_SCALES`)."""
    if scale == "0–1":
        return 0.0, 1.0
    return float(np.min(maps)), float(np.max(maps))


def _to_unit(maps: np.ndarray, scale: str) -> np.ndarray:
    maps = np.asarray(maps, np.float32)
    if scale == "per group":
        low = maps.min(axis=(-2, -1), keepdims=True)
        span = maps.max(axis=(-2, -1), keepdims=True) - low
        return (maps - low) / np.where(span > 0, span, 1)
    low, high = gate_range(maps, scale)
    return (maps - low) / (high - low) if high > low else np.zeros_like(maps)


def mosaic(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    scale: str = "unit range",
    columns: int = 8,
    tile: int = 96,
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
) -> np.ndarray:
    """Maps (N, h, w) as a grid of small overlays on the image, each tile labelled.

    `tile` is the tile's shorter side in pixels. `highlight` draws a frame around one tile.
    """
    n = len(maps)
    h, w = image.shape[:2]
    th, tw = (tile, round(w * tile / h)) if h <= w else (round(h * tile / w), tile)
    base = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    units = _to_unit(maps, scale)
    rows = -(-n // columns)
    gap = 2
    canvas = np.full((rows * (th + gap) - gap, columns * (tw + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = r * (th + gap), c * (tw + gap)
        canvas[y : y + th, x : x + tw] = overlay(base, units[i], colormap, alpha)
        text = labels[i] if labels is not None else str(i)
        _label(canvas, text, (x + 3, y + 13))
        if highlight == i:
            cv2.rectangle(canvas, (x, y), (x + tw - 1, y + th - 1), (255, 255, 255), 3)
            cv2.rectangle(canvas, (x, y), (x + tw - 1, y + th - 1), (0, 0, 0), 1)
    return canvas


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, text, origin, font, 0.38, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, font, 0.38, (255, 255, 255), 1, cv2.LINE_AA)


def stamp_untrained(image: np.ndarray) -> np.ndarray:
    """A red banner across the top of a picture made by an untrained model."""
    out = image.copy()
    band = max(16, image.shape[0] // 12)
    out[:band] = (0.35 * out[:band] + 0.65 * np.array([200, 30, 30])).astype(np.uint8)
    cv2.putText(
        out,
        UNTRAINED_STAMP,
        (6, band - 5),
        cv2.FONT_HERSHEY_SIMPLEX,
        band / 30,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return out


# Figures with axes ---------------------------------------------------------------------------


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def figure_array(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 image."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _title(ax, text: str, untrained: bool) -> None:
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
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def channel_gate_figure(
    gates: UnitGates, unit: str, *, colormap: str = "viridis", untrained: bool = False
) -> Figure:
    """The unit's channel gates as a 64 × c heatmap (rows: groups) with a colour bar."""
    values = gates.channel[0].numpy()
    g, c = values.shape
    fig = Figure(figsize=(2.2 + 0.12 * c, 6.0), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, aspect="auto", cmap=colormap, interpolation="nearest")
    ax.set_xlabel("channel in group (c)")
    ax.set_ylabel("group")
    ax.set_yticks(range(0, g, 8))
    ax.set_xticks(range(0, c, max(1, c // 8)))
    fig.colorbar(image, ax=ax, label="channel gate σ(·)", shrink=0.8)
    _title(ax, f"{unit}: channel gates", untrained)
    return fig


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
) -> Figure:
    """One group enlarged: its spatial gate for each of its c channels, and its channel gates."""
    spatial = gates.spatial[0, group].numpy()  # (c, h, w)
    channel = gates.channel[0, group].numpy()  # (c,)
    c = len(spatial)
    columns = min(c, 8)
    rows = -(-c // columns)
    fig = Figure(figsize=(1.7 * columns, 1.7 * rows + 2.2), layout="constrained")
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[1.0] * rows + [1.1])
    low, high = gate_range(gates.spatial[0].numpy(), scale)
    units = (
        _to_unit(spatial, scale)
        if scale == "per group"
        else (spatial - low) / max(high - low, 1e-12)
    )
    for i in range(c):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        ax.imshow(overlay(image, units[i], colormap, alpha))
        ax.set_title(f"ch {i}: mean {spatial[i].mean():.3f}", fontsize=7)
        ax.axis("off")
    bar = fig.add_subplot(grid[rows, :])
    bar.bar(range(c), channel, color="#3b6ea8")
    bar.set_ylim(0, 1)
    bar.set_xticks(range(c))
    bar.set_xlabel("channel in group")
    bar.set_ylabel("channel gate")
    suffix = f" (spatial colours: {scale})"
    fig.suptitle(
        (f"{UNTRAINED_STAMP} · " if untrained else "") + f"{unit}, group {group}{suffix}",
        fontsize=9,
        color="#b00020" if untrained else "black",
    )
    return fig


def unit_summary_figure(gates: dict[str, UnitGates], *, untrained: bool = False) -> Figure:
    """Per SA unit: mean and spread of the channel and spatial gates, and how groups differ."""
    names = list(gates)
    stats = [gate_stats(gates[n]).summary() for n in names]
    x = np.arange(len(names))
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, kind in zip(axes, ("channel", "spatial"), strict=True):
        mean = np.array([s[f"{kind}_mean"] for s in stats])
        within = np.array([s[f"{kind}_std"] for s in stats])
        across = np.array([s[f"{kind}_group_spread"] for s in stats])
        ax.errorbar(x, mean, yerr=within, fmt="o", capsize=3, label="mean ± std within groups")
        ax.fill_between(x, mean - across, mean + across, alpha=0.2, label="± std across groups")
        ax.axhline(1 / (1 + np.exp(-1)), color="gray", lw=0.8, ls=":", label="σ(1): untrained")
        ax.set_xticks(x, names, rotation=70, fontsize=7)
        ax.set_ylim(0, 1)
        _title(ax, f"{kind} gates per SA unit", untrained)
    axes[0].set_ylabel("gate value")
    axes[1].legend(fontsize=7, loc="lower right")
    return fig


def colorbar_figure(low: float, high: float, colormap: str, label: str) -> Figure:
    fig = Figure(figsize=(4.0, 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(
        np.linspace(0, 1, 256)[None, :], aspect="auto", cmap=colormap, extent=(low, high, 0, 1)
    )
    ax.set_yticks([])
    ax.set_xlabel(label, fontsize=8)
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
    """One SA unit: the 64 groups' spatial gates (mean over each group's channels) over the
    image, with their colour scale, beside the 64 × c channel-gate heatmap."""
    spatial = gates.spatial_mean()[0].numpy()
    channel = gates.channel[0].numpy()
    grid = mosaic(image, spatial, colormap=colormap, alpha=alpha, scale=scale)
    fig = Figure(figsize=(12, 7.2), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[4, 1])
    ax = left.subplots()
    ax.imshow(grid)
    ax.axis("off")
    low, high = gate_range(spatial, scale)
    if scale != "per group":
        left.colorbar(
            ScalarMappable(Normalize(low, high), colormap),
            ax=ax,
            shrink=0.6,
            label="spatial gate (mean over the group's channels)",
        )
    _title(ax, f"{unit}: spatial gates of the 64 groups (colours: {scale})", untrained)
    hx = right.subplots()
    heat = hx.imshow(channel, aspect="auto", cmap="viridis", interpolation="nearest")
    hx.set_xlabel("channel (c)")
    hx.set_ylabel("group")
    hx.set_yticks(range(0, len(channel), 8))
    right.colorbar(heat, ax=hx, label="channel gate", shrink=0.8)
    _title(hx, "channel gates", untrained)
    return fig
