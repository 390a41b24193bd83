"""Everything about one explanation in one ZIP: the pictures, its document, and the raw arrays as
NPZ; on request, the same views as figures for papers (PNG, SVG, PDF)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sa_viz import render
from sa_viz.outputs import files
from sa_viz.outputs.document import explanation_document, page_analyses
from sa_viz.pipeline.explain import Explanation
from sa_viz.render import figure_views, views
from sa_viz.render.panels import labelled


def arrays(result: Explanation) -> dict[str, np.ndarray]:
    """Raw and scaled CAMs of each model and every gate array, under flat names."""
    out: dict[str, np.ndarray] = {"input_image": result.image.display}
    for name, m in result.models.items():
        out[f"{name}/cam"] = m.cam
        out[f"{name}/cam_raw"] = m.cam_raw
        out[f"{name}/probabilities"] = m.probabilities
        for unit, gates in m.gates.items():
            if gates.channel is not None:
                out[f"{name}/{unit}/channel_gate"] = gates.channel[0].numpy()  # (G, c)
            if gates.spatial is not None:
                out[f"{name}/{unit}/spatial_gate"] = gates.spatial[0].numpy()  # (G, c, h, w)
    return out


def write_zip(
    result: Explanation,
    path: str | Path,
    *,
    unit: str,
    group: int,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
    scale: str = "unit range",
    gate_model: str | None = None,
    analyses: dict[str, Any] | None = None,
    figure_formats: Sequence[str] = (),
    figure_width: float | None = None,
    pair: tuple[str, str] | None = None,
    file: str | None = None,
) -> Path:
    """Write the ZIP for what is on screen: the same pictures with the same view settings;
    the gates of every compared model that has the unit (`gate_model`, the one in the gate
    explorer, is recorded in the view settings; before, only its gates were exported, issue
    27); and the `analyses` computed for this result (name → its JSON
    document, as the Analyses tab keeps it: in analyses.json as they are, in explanation.json
    per model, and their lists of numbers as arrays in arrays.npz).

    `figure_formats` (png, svg, pdf): the same views, and the analyses' charts, also as
    matplotlib figures in figures/ (text as text, each map one image at its own resolution),
    `figure_width` inches wide (`render.paper`; None: each figure's own size). `pair`: the
    difference map's models (first, second; None: the first two). `file`: the image's file name,
    for explanation.json (None: not known)."""
    path = Path(path)
    look = {"colormap": colormap, "alpha": alpha}
    cams = views.cam_view(result, normalization=normalization, pair=pair, **look)
    pictures = cam_pictures(result, cams)
    drawn = {}  # stem → figure, for figure_formats
    if figure_formats:
        found = figure_views.cam_figures(
            result, normalization=normalization, width=figure_width, pair=pair, **look
        )
        drawn = {f"cam_{name}": fig for name, fig in found.items()}
    settings: dict[str, Any] = {
        "colormap": colormap,
        "opacity": alpha,
        "cam_normalization": normalization,
        "gate_unit": unit,
        "gate_group": group,
        "gate_colour_scale": scale,
    }
    if len(result.models) > 1:  # the difference map's models, first and second
        settings["difference"] = list(pair or list(result.models)[:2])
    gated = views.gated_models(result)
    if gate_model in gated:  # the explorer's; every model's gates are exported
        settings["gate_model"] = gate_model
    for name in gated:
        # `group` is the one on screen (for the model on screen); a model with fewer groups
        # shows its last one.
        if unit not in result.models[name].gates:
            continue
        shown = min(int(group), result.models[name].gates[unit].groups - 1)
        prefix = f"gates_{name}_" if len(gated) > 1 else "gates_"
        stems = {
            "spatial": f"{prefix}{unit}_spatial",
            "channel": f"{prefix}{unit}_channel",
            "group": f"{prefix}{unit}_group{shown}",
            "summary": f"{prefix}summary",
        }
        grid, heat, detail = views.gate_views(result, unit, shown, model=name, scale=scale, **look)
        on_screen = {"spatial": grid, "channel": heat, "group": detail}
        on_screen["summary"] = views.summary_picture(result, name)
        gates = result.models[name].gates[unit]
        if not gates.has_spatial:
            del on_screen["spatial"]  # a note that the unit has none
        if not gates.has_channel:
            del on_screen["channel"]  # a note that the unit has none (Global Context, gca)
        pictures |= {f"{stems[kind]}.png": picture for kind, picture in on_screen.items()}
        if figure_formats:
            found = figure_views.gate_figures(
                result, unit, shown, model=name, scale=scale, width=figure_width, **look
            )
            drawn |= {stems[kind]: fig for kind, fig in found.items()}
    analyses = analyses or {}
    if figure_formats:
        titles = {name: m.title for name, m in result.models.items()}
        found = figure_views.analysis_figures(analyses, figure_width, titles)
        drawn |= {f"analysis_{name}": fig for name, fig in found.items()}
    members: dict[str, bytes | str] = {n: files.png_bytes(p) for n, p in pictures.items()}
    for stem, fig in drawn.items():
        members |= files.figure_files(f"figures/{stem}", fig, figure_formats)
    members["explanation.json"] = files.json_text(
        explanation_document(
            result,
            analyses=page_analyses(analyses, list(result.models)),
            view=settings,
            file=file,
        )
    )
    if analyses:
        members["analyses.json"] = files.json_text(analyses)
    members["arrays.npz"] = files.npz_bytes(arrays(result) | analysis_arrays(analyses))
    members["README.txt"] = _readme(result, cams.order)
    return files.write_zip(path, members)


def cam_pictures(result: Explanation, cams: views.CamView) -> dict[str, np.ndarray]:
    """The CAM overlays and the difference as on screen, each under a line that says what it
    is: the PNGs leave the page, where the panels' labels said it (issue 27: the exported
    heatmaps named no model and no class)."""
    method = views.METHOD_TITLES.get(result.method, result.method)
    pictures = {}
    for name, picture in cams.overlays.items():
        m = result.models[name]
        said = (
            f"{m.title}: {method} at {result.layer} of class {m.target.index} "
            f"{m.target.label} (p = {views.probability_text(m.target.probability)})"
        )
        pictures[f"cam_{name}.png"] = labelled(picture, said, bold=False)
    if len(cams.order) == 2:
        said = f"{cams.order[1]} − {cams.order[0]}: {method} at {result.layer}"
        pictures["cam_difference.png"] = labelled(cams.difference, said, bold=False)
    return pictures


def analysis_arrays(analyses: dict[str, Any], prefix: str = "analyses") -> dict[str, np.ndarray]:
    """Every list of numbers in the analyses' documents, as arrays named by their path
    (analyses/faithfulness/sa_resnet50/details/deletion, …)."""
    found: dict[str, np.ndarray] = {}
    for key, value in analyses.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            found |= analysis_arrays(value, name)
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            found[name] = np.asarray(value)
    return found


def _readme(result: Explanation, pair: Sequence[str]) -> str:
    """`pair`: the difference map's models' titles, first and second."""
    difference = (
        f"{pair[1]} minus {pair[0]} on one scale: red = {pair[1]} looks more"
        if len(pair) == 2
        else "(needs two models)"
    )
    return (
        "SA-Viz export\n\n"
        "cam_<model>.png        CAM overlay of each model (see explanation.json for the class)\n"
        f"cam_difference.png     {difference}\n"
        "gates_*                attention gates of the unit on screen: spatial mosaic (where the\n"
        "                       unit has spatial gates), channel heatmap (where it has channel\n"
        "                       gates), a group (or kernel path, radix split), summary\n"
        "explanation.json       the explanation document (schema sa-viz/explanation/1, as the\n"
        "                       CLI's and /explain_json's): predictions, CAM targets, weights\n"
        "                       status, settings, agreement, every unit's gate summary, the\n"
        "                       analyses computed for this image; sizes as width and height\n"
        "arrays.npz             numpy arrays: <model>/cam (H, W) in [0, 1] (NaN outside the\n"
        "                       model's centre crop where it was narrower than the image shown:\n"
        "                       explanation.json's seen_region),\n"
        "                       <model>/cam_raw (h, w) unscaled, <model>/<unit>/channel_gate\n"
        "                       (G, c) where the unit has one,\n"
        "                       <model>/<unit>/spatial_gate (G, c, h, w) where the unit has one,\n"
        "                       input_image (H, W, 3); analyses/… the curves and per-group\n"
        "                       values of the analyses computed for this image\n"
        "analyses.json          the analyses computed for this image (Analyses tab), if any\n"
        "figures/               if asked for: the same views (and the analyses' charts) as\n"
        "                       figures for papers, in PNG, SVG and/or PDF: text as text,\n"
        "                       each map one image at its own resolution, colour bars\n"
        f"\nCAM method {result.method} at {result.layer}.\n"
    )
