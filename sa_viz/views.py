"""What the app shows for one explanation, as pictures and tables, from cached results only.

Every function here is a pure function of an `Explanation` and view settings (opacity, colormap,
unit, group, scales): changing a view setting never runs a model. No gradio in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sa_viz import render
from sa_viz.cam import METHODS, cam_agreement, cam_difference, joint_scale
from sa_viz.explain import Explanation, ModelExplanation
from sa_viz.weights import WeightsStatus

NORMALIZATIONS = ("per model", "joint")
DISAGREE = "≠"
METHOD_TITLES = {key: m.title for key, m in METHODS.items()}


@dataclass(frozen=True)
class CamView:
    overlays: dict[str, np.ndarray]  # model name → RGB overlay
    difference: np.ndarray  # SA-ResNet-50 minus ResNet-50, diverging colours
    agreement: dict[str, float]


def model_caption(m: ModelExplanation | WeightsStatus) -> str:
    return f"{m.title}{' (UNTRAINED weights)' if m.untrained else ''}"


def targets_text(result: Explanation) -> str:
    """Which class each CAM explains, with the model's probability for it."""
    parts = [
        f"**{m.title}** explains *{t.label}* ({t.index}, p = {t.probability:.3f})"
        for m in result.models.values()
        for t in [m.target]
    ]
    return f"{METHOD_TITLES.get(result.method, result.method)} at {result.layer}: " + " · ".join(
        parts
    )


def cam_view(
    result: Explanation,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
) -> CamView:
    """Both CAM overlays on the same image at the same size, the signed difference, agreement.

    "per model": each map min-max scaled on its own (pytorch-grad-cam's convention); "joint": both
    raw maps divided by the larger maximum, so the weaker evidence looks weaker.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
    image = result.image.display
    models = list(result.models.values())
    if normalization == "joint":
        maps = joint_scale([m.cam_raw for m in models], result.image.size)
    else:
        maps = [m.cam for m in models]
    overlays = {}
    for m, values in zip(models, maps, strict=True):
        picture = render.overlay(image, values, colormap, alpha)
        overlays[m.name] = render.stamp_untrained(picture) if m.untrained else picture
    if len(models) == 2:
        difference = cam_difference(models[0].cam_raw, models[1].cam_raw, result.image.size)
        agreement = cam_agreement(models[0].cam, models[1].cam)
        picture = render.signed_overlay(image, difference)
        if any(m.untrained for m in models):
            picture = render.stamp_untrained(picture)
    else:
        picture, agreement = (
            np.zeros_like(image),
            {"pearson": float("nan"), "iou_top": float("nan")},
        )
    return CamView(overlays, picture, agreement)


def explanation_document(result: Explanation) -> dict:
    """Everything about one explanation as one JSON document, for scripts: the image, the
    settings, each model's top-5, CAM target and weights status, and the two CAMs' agreement
    (which model is first, so the order is explicit)."""
    document = result.to_json()
    for entry in document["models"].values():
        # The file's name, not its place on the server; and no "path" key, which
        # gradio_client takes for a file to download.
        weights = entry["weights"]
        path = weights.pop("path", None)
        weights["file"] = None if path is None else Path(path).name
    models = list(result.models.values())
    if len(models) == 2:
        agreement = cam_agreement(models[0].cam, models[1].cam)
        document["agreement"] = {
            "models": [m.name for m in models],
            "pearson": None if np.isnan(agreement["pearson"]) else agreement["pearson"],
            "iou_top20": None if np.isnan(agreement["iou_top"]) else agreement["iou_top"],
        }
    return document


def agreement_text(view: CamView) -> str:
    r, iou = view.agreement["pearson"], view.agreement["iou_top"]
    if np.isnan(r):
        return "Agreement: n/a (a map is constant)."
    return (
        f"**Agreement of the two maps:** Pearson r = {r:.3f} · IoU of the top-20% regions = "
        f"{iou:.3f}. Difference map: red where SA-ResNet-50 looks more, blue where ResNet-50 does "
        "(joint scale)."
    )


def prediction_rows(result: Explanation, name: str) -> list[list]:
    """One model's top-5 as table rows: "index · label", probability, and the class's rank in
    the other model's top-5 (or a mark where it is not there)."""
    this = result.models[name]
    others = [m for n, m in result.models.items() if n != name]
    rows = []
    for p in this.top5:
        marks = []
        for other in others:
            ranks = [q.index for q in other.top5]
            marks.append(f"#{ranks.index(p.index) + 1}" if p.index in ranks else f"{DISAGREE} no")
        rows.append([f"{p.index} · {p.label}", f"{p.probability:.3f}", ", ".join(marks)])
    return rows


def prediction_summary(result: Explanation) -> str:
    models = list(result.models.values())
    if len(models) != 2:
        return ""
    a, b = models
    if a.top5[0].index == b.top5[0].index:
        line = f"Both models predict **{a.top5[0].label}** (top-1)."
    else:
        line = (
            f"{DISAGREE} **The models disagree:** {a.title} says **{a.top5[0].label}** "
            f"({a.top5[0].probability:.2f}), {b.title} says **{b.top5[0].label}** "
            f"({b.top5[0].probability:.2f})."
        )
    notes = list(result.image.notes)
    if notes:
        line += "  \nImage: " + "; ".join(notes) + "."
    return line


def gate_views(
    result: Explanation,
    unit: str,
    group: int,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one SA unit: the 64-group spatial-gate mosaic, the channel-gate heatmap, one group."""
    look = {"colormap": colormap, "alpha": alpha, "scale": scale}
    return (
        gate_mosaic(result, unit, group, **look),
        channel_gates(result, unit, group),
        group_detail(result, unit, group, **look),
    )


def gate_mosaic(
    result: Explanation,
    unit: str,
    group: int,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> np.ndarray:
    """One SA unit's 64 spatial gates (each averaged over its channels) over the image."""
    sa = _sa(result)
    return render.gate_mosaic_panel(
        result.image.display,
        sa.gates[unit],
        unit,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        highlight=group,
        untrained=sa.untrained,
    )


def channel_gates(result: Explanation, unit: str, group: int) -> np.ndarray:
    """One SA unit's channel gates as a groups × channels heatmap, `group`'s row marked."""
    sa = _sa(result)
    gates = sa.gates[unit]
    return render.heatmap_panel(
        gates.channel[0].numpy(),
        highlight_row=group,
        title=f"{unit}: channel gates",
        col_label=f"channel 0–{gates.channels_per_half - 1} of the group",
        colour_label="channel gate",
        untrained=sa.untrained,
    )


def group_detail(
    result: Explanation,
    unit: str,
    group: int,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> np.ndarray:
    """One group of one SA unit: its spatial gates channel by channel and its channel gates."""
    sa = _sa(result)
    return render.group_panel(
        result.image.display,
        sa.gates[unit],
        unit,
        group,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        untrained=sa.untrained,
    )


def gate_range_text(result: Explanation, unit: str, scale: str) -> str:
    gates = _sa(result).gates[unit]
    spatial = gates.spatial_mean()[0].numpy()
    low, high = render.gate_range(spatial, scale)
    c = gates.channels_per_half
    h, w = spatial.shape[-2:]
    scale_text = (
        "each tile scaled to its own min–max"
        if scale == "per group"
        else f"colours span {low:.3f} (low) to {high:.3f} (high)"
    )
    return (
        f"**{unit}**: 64 groups × {c} channels per gate, spatial gates at {h}×{w}; "
        f"tiles show each group's spatial gate averaged over its {c} channels; {scale_text}."
    )


def summary_picture(result: Explanation) -> np.ndarray:
    sa = _sa(result)
    return render.summary_panel(sa.gates, untrained=sa.untrained)


def _sa(result: Explanation) -> ModelExplanation:
    sa = result.models.get("sa_resnet50")
    if sa is None or not sa.gates:
        raise ValueError("this explanation has no SA-ResNet-50 gates")
    return sa
