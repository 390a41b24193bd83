"""The views of one explanation (`render.views`) as matplotlib figures, for the export's
PNG, SVG and PDF: the same maps, scales and settings, drawn with text as text and each map one
image (`render.figures`, `render.gate_figures`, `render.analysis_figures`)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from sa_viz import render
from sa_viz.pipeline.explain import Explanation
from sa_viz.render.analysis_figures import faithfulness_figure, knockout_figure
from sa_viz.render.figures import cam_figure, difference_figure
from sa_viz.render.gate_figures import (
    channel_heatmap_figure,
    gate_mosaic_figure,
    gate_summary_figure,
    group_figure,
)
from sa_viz.render.views import cam_maps, check_group, unit_gates


def cam_figures(
    result: Explanation,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
    width: float | None = None,
) -> dict[str, Figure]:
    """Each model's CAM (by its name) and, for two models, their difference ("difference"),
    on the `normalization` scale, as `views.cam_view` shows them."""
    image = result.image.display
    found = cam_maps(result, normalization)
    figures = {}
    models = list(result.models.values())
    for m, values, label in zip(models, found.maps, found.labels, strict=True):
        text = (
            f"{m.title}: CAM of {m.target.index} {m.target.label} (p = {m.target.probability:.2f})"
        )
        figures[m.name] = cam_figure(
            image,
            values,
            text,
            colormap=colormap,
            alpha=alpha,
            label=label,
            untrained=m.untrained,
            width=width,
        )
    if found.difference is not None:
        figures["difference"] = difference_figure(
            image,
            found.difference,
            found.limit,
            found.difference_label,
            alpha=alpha,
            untrained=any(m.untrained for m in models),
            width=width,
        )
    return figures


def gate_figures(
    result: Explanation,
    unit: str,
    group: int,
    *,
    model: str | None = None,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
    width: float | None = None,
) -> dict[str, Figure]:
    """One unit of `model` (default: the first with gates): its spatial-gate mosaic ("spatial",
    where it has spatial gates), its channel gates ("channel", where it has channel gates), the
    row of gates `group` ("group": a group, kernel path or radix split; the whole unit where it
    has one row) and every unit's statistics ("summary"), as the gate explorer shows them, in
    the words of the unit's kind (any layout a probe gives, as `views.gate_views`)."""
    m, gates = unit_gates(result, unit, model)
    check_group(gates, group)
    image = result.image.display
    look = {"colormap": colormap, "alpha": alpha, "scale": scale}
    figures = {}
    if gates.has_spatial:
        figures["spatial"] = gate_mosaic_figure(
            image, gates, unit, highlight=group, untrained=m.untrained, width=width, **look
        )
    if gates.has_channel:  # Global Context's `gca` units have none: the app shows a note
        figures["channel"] = channel_heatmap_figure(
            gates, unit, highlight_row=group, untrained=m.untrained, width=width
        )
    figures["group"] = group_figure(
        image, gates, unit, group, untrained=m.untrained, width=width, **look
    )
    figures["summary"] = gate_summary_figure(m.gates, untrained=m.untrained, width=width)
    return figures


def analysis_figures(analyses: dict[str, Any], width: float | None = None) -> dict[str, Figure]:
    """The figures of the analyses computed for this image, as the Analyses tab keeps their
    documents: the deletion and insertion curves ("faithfulness"), the group knockout
    ("knockout")."""
    figures = {}
    if analyses.get("faithfulness"):
        figures["faithfulness"] = faithfulness_figure(analyses["faithfulness"], width)
    if analyses.get("group_knockout"):
        figures["knockout"] = knockout_figure(analyses["group_knockout"], width)
    return figures
