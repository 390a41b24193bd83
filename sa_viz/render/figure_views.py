"""The views of one explanation (`render.views`) as matplotlib figures, for the export's
PNG, SVG and PDF: the same maps, scales and settings, drawn with text as text and each map one
image (`render.figures`, `render.gate_figures`, `render.analysis_figures`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from matplotlib.figure import Figure

from sa_viz import render
from sa_viz.pipeline.explain import Explanation
from sa_viz.render.analysis_figures import faithfulness_figure, knockout_figure
from sa_viz.render.figures import cam_figure, difference_figure, mprt_figure
from sa_viz.render.gate_figures import (
    channel_heatmap_figure,
    gate_mosaic_figure,
    gate_summary_figure,
    group_figure,
)
from sa_viz.render.views import cam_maps, check_group, seen_by, unit_gates


def cam_figures(
    result: Explanation,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
    width: float | None = None,
    pair: tuple[str, str] | None = None,
) -> dict[str, Figure]:
    """Each model's CAM (by its name) and the difference of two of them ("difference"; `pair`:
    first, second, None: the first two), on the `normalization` scale, as `views.cam_view`
    shows them."""
    image = result.image.display
    found = cam_maps(result, normalization, pair)
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
            untrained=any(models[i].untrained for i in found.pair),
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
    image = seen_by(result, m.name)
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


# The registered analyses (`sa_viz.analyses`) with a chart of every model on one figure, by
# name: model title → the analysis's details for one image (`Result.details`), or for a study
# its `details_of_means`. The page, the CLI, the ZIP and a study's report draw these; an
# analysis with a chart of its own adds one entry here.
CHARTS: dict[str, Callable[[Mapping[str, Mapping[str, Any]], float | None], Figure]] = {
    "mprt": lambda curves, width: mprt_figure(curves, width=width),
}


def analysis_charts(
    found: Mapping[str, Mapping[str, Any]],
    titles: Mapping[str, str] | None = None,
    width: float | None = None,
) -> dict[str, Figure]:
    """The `CHARTS` of the analyses in `found` (model → analysis → its numbers and details, as
    `pipeline.explain.analyse_explanation` gives them), each with every model that has it, by
    its title (`titles`: model → title; default the model's name)."""
    charts = {}
    for name, chart in CHARTS.items():
        curves = {
            (titles or {}).get(model, model): done[name]["details"]
            for model, done in found.items()
            if name in done
        }
        if curves:
            charts[name] = chart(curves, width)
    return charts


def analysis_figures(
    analyses: dict[str, Any],
    width: float | None = None,
    titles: Mapping[str, str] | None = None,
) -> dict[str, Figure]:
    """The figures of the analyses computed for this image, as the Analyses tab keeps their
    documents (analysis → model → its document): the deletion and insertion curves
    ("faithfulness"), the group knockout ("knockout") and the `CHARTS` of the others."""
    figures = {}
    if analyses.get("faithfulness"):
        figures["faithfulness"] = faithfulness_figure(analyses["faithfulness"], width)
    if analyses.get("group_knockout"):
        figures["knockout"] = knockout_figure(analyses["group_knockout"], width)
    by_model: dict[str, dict[str, Any]] = {}
    for name in CHARTS:
        for model, doc in (analyses.get(name) or {}).items():
            by_model.setdefault(model, {})[name] = doc
    return figures | analysis_charts(by_model, titles, width)
