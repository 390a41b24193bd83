"""The analyses of one explanation as matplotlib figures: deletion and insertion curves of the
compared models, and the change of the class's probability when each group of a unit is
knocked out. The Analyses tab shows them; the export writes them as PNG, SVG and PDF.

Both take the analyses' documents (`sa_viz.analyses`), as the tab keeps them. `width` (inches,
`render.paper`) draws a figure for a paper; None: for the screen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sa_viz.models import get_model
from sa_viz.render import paper

# The knockout chart's fixed geometry on the page, so that a click's x finds its bar.
CHART_SIZE = (8.0, 3.0)  # inches, at 100 dpi: 800 × 300 pixels
CHART_DPI = 100
CHART_LEFT, CHART_RIGHT = 0.11, 0.98  # room for the y-axis's label and its 5-digit ticks


def faithfulness_figure(found: dict[str, Any], width: float | None = None) -> Figure:
    """Deletion and insertion curves, one line per model, each with its area in the legend."""
    fig = Figure(figsize=paper.figsize(width, (8, 3.2)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for i, f in enumerate(found.values()):
            d = f["details"]
            area = f["numbers"][f"{kind}_auc"]
            ax.plot(d["fractions"], d[kind], color=f"C{i}", label=f"{f['title']}: {area:.3f}")
        ax.set_title(f"{kind} (area)", fontsize=10)
        ax.set_xlabel(paper.wrap("fraction of pixels, most important first", 1.6, width, 8))
        ax.legend(fontsize=8)
    # Fitted to the curves, not 0–1: an untrained model's or a rare class's probabilities
    # (~0.001) were flat lines on the floor (issue 27). The label says the axis is fitted.
    axes[0].margins(y=0.08)
    axes[0].set_ylabel("probability of the CAM's class\n(axis fitted to the curves)", fontsize=9)
    return paper.styled(fig, width)


def knockout_figure(found: dict[str, Any], width: float | None = None) -> Figure:
    """A bar per group of the unit: the change of the class's probability when the group's
    gates are replaced; dashed, the whole unit's. For the screen, at `CHART_SIZE` with the
    axes at `CHART_LEFT`–`CHART_RIGHT` (the page finds a clicked bar by them)."""
    if width is None:
        fig = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
        ax = fig.add_axes((CHART_LEFT, 0.2, CHART_RIGHT - CHART_LEFT, 0.68))
    else:
        fig = Figure(figsize=paper.figsize(width, CHART_SIZE), layout="constrained")
        ax = fig.subplots()
    dp = np.asarray(found["group_dp"])
    ax.bar(np.arange(len(dp)), dp, width=0.8, color=np.where(dp < 0, "#b2182b", "#2166ac"))
    ax.axhline(found["unit_dp"], color="black", lw=0.8, ls="--", label="whole unit")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlim(-0.5, len(dp) - 0.5)
    # groups are whole numbers: a tick each where they are few (SE's one), else whole steps
    if len(dp) <= 16:
        ax.set_xticks(range(len(dp)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("group")
    ax.set_ylabel("Δ probability")
    text = (
        f"{get_model(found['model']).title} {found['unit']}: {found['gates']} gates → "
        f"{found['value']}, class {found['target']}"
    )
    ax.set_title(paper.wrap(text, fig.get_size_inches()[0] * 0.9, width), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return paper.styled(fig, width)
