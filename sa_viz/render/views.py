"""What the app shows for one explanation, as pictures and tables, from cached results only.

Every function here is a pure function of an `Explanation` and view settings (opacity, colormap,
unit, group, scales): changing a view setting never runs a model. No gradio in this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sa_viz import render
from sa_viz.cam import METHODS, cam_agreement, joint_scale
from sa_viz.models.weights import WeightsStatus
from sa_viz.pipeline.explain import Explanation, ModelExplanation, preprocessing_for, region_of
from sa_viz.probes import UnitGates, is_constant, unread_lines
from sa_viz.render import gate_words as words

NORMALIZATIONS = ("per model", "joint")
DISAGREE = "≠"
FLAT = "flat map: one value everywhere (no evidence for the class here)"
UNSEEN = "; dark gray: outside its centre crop"
TARGET = "▶"  # marks the class the CAMs explain in the prediction tables
METHOD_TITLES = {key: m.title for key, m in METHODS.items()}


@dataclass(frozen=True)
class CamView:
    overlays: dict[str, np.ndarray]  # model name → RGB overlay with its colour bar
    difference: np.ndarray  # the second model's map minus the first's, diverging colours
    agreement: dict[str, float]
    order: tuple[str, ...] = ()  # the difference's models' titles, first then second
    normalization: str = "per model"
    limit: float = 1.0  # the difference's largest |value|: its colour bar's ends
    flat: tuple[str, ...] = ()  # the titles of the models whose map is one value everywhere
    partial: bool = False  # the two maps cover different parts of the image (centre crops)


def difference_label(titles: tuple[str, ...] | list[str]) -> str:
    """What the difference map shows, in the order the models were chosen."""
    if len(titles) != 2:
        return "Difference (needs two models)"
    return f"{titles[1]} − {titles[0]}"


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


@dataclass(frozen=True)
class CamMaps:
    """The compared models' CAMs on the chosen scale, as `cam_view` draws them."""

    maps: list[np.ndarray]  # per model, in order: (H, W) at the image's size
    labels: list[str]  # per model: what its colour bar's 0–1 means
    titles: tuple[str, ...]
    flat: tuple[str, ...]  # the titles of the models whose map is one value everywhere
    difference_label: str
    difference: np.ndarray | None  # the second map less the first (None: fewer than two models)
    limit: float = 1.0  # the difference's largest |value|
    pair: tuple[int, int] = (0, 1)  # the positions of the difference's first and second models


def cam_maps(
    result: Explanation, normalization: str = "per model", pair: tuple[str, str] | None = None
) -> CamMaps:
    """Each model's map on the `normalization` scale and the difference of two of them: `pair`
    (first, second: model names; None: the first two), second − first.

    "per model": each map min-max scaled on its own (pytorch-grad-cam's convention); "joint": all
    raw maps divided by the largest maximum, so the weaker evidence looks weaker.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
    names, models = list(result.models), list(result.models.values())
    if normalization == "joint":
        regions = [region_of(result.image, name) for name in names]
        maps = joint_scale([m.cam_raw for m in models], result.image.size, regions)
        scale_label = "CAM ÷ the largest maximum of the maps (joint)"
    else:
        maps = [m.cam for m in models]
        scale_label = "CAM, each map from its min to its max"
    titles = tuple(m.title for m in models)
    flat = tuple(m.title for m in models if np.ptp(m.cam_raw) == 0)
    labels = [
        FLAT if m.title in flat else scale_label + (UNSEEN if region_of(result.image, n) else "")
        for n, m in zip(names, models, strict=True)
    ]
    if len(models) < 2:
        label = difference_label(titles)
        return CamMaps(list(maps), labels, titles, flat, label, None)
    first, second = pair_indices(names, pair)
    label = f"{titles[second]} − {titles[first]} ({normalization} scale)"
    # The difference of the maps as shown, on the chosen scale: second − first, zero in white.
    difference = maps[second] - maps[first]
    limit = render.symmetric_limit(difference)
    return CamMaps(list(maps), labels, titles, flat, label, difference, limit, (first, second))


def pair_indices(names: list[str], pair: tuple[str, str] | None) -> tuple[int, int]:
    """The positions of the difference's `pair` (first, second) among the models `names`: the
    first two when None; a name that is not among them is refused."""
    if pair is None:
        return 0, 1
    missing = [n for n in pair if n not in names]
    if missing or pair[0] == pair[1]:
        raise ValueError(
            f"the difference compares two of the explained models ({', '.join(names)}); "
            f"got {' and '.join(pair)}"
        )
    return names.index(pair[0]), names.index(pair[1])


def cam_view(
    result: Explanation,
    *,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    normalization: str = "per model",
    pair: tuple[str, str] | None = None,
) -> CamView:
    """Every model's CAM overlay on the same image at the same size, and the signed difference
    of two of them (`pair`: first, second; None: the first two) with their agreement, on the
    `normalization` scale (`cam_maps`)."""
    image = result.image.display
    models = list(result.models.values())
    found = cam_maps(result, normalization, pair)
    titles, flat = found.titles, found.flat
    # One strip height for the pictures, which stand side by side.
    lines = render.strip_lines(image.shape[1], [*found.labels, found.difference_label])
    overlays = {}
    for m, values, label in zip(models, found.maps, found.labels, strict=True):
        picture = render.overlay(image, values, colormap, alpha)
        if m.untrained:
            picture = render.stamp_untrained(picture)
        overlays[m.name] = render.with_colour_strip(picture, 0.0, 1.0, colormap, label, lines=lines)
    if found.difference is None:
        nothing = {"pearson": float("nan"), "iou_top": float("nan")}
        return CamView(overlays, np.zeros_like(image), nothing, titles, normalization, flat=flat)
    limit = found.limit
    first, second = (models[i] for i in found.pair)
    picture = render.signed_overlay(image, found.difference, alpha, limit)
    if first.untrained or second.untrained:
        picture = render.stamp_untrained(picture)
    picture = render.with_colour_strip(
        picture, -limit, limit, render.DIVERGING, found.difference_label, signed=True, lines=lines
    )
    agreement = cam_agreement(first.cam, second.cam)
    flat = tuple(t for t in flat if t in (first.title, second.title))
    order = (first.title, second.title)
    partial = any(region_of(result.image, m.name) for m in (first, second))
    return CamView(overlays, picture, agreement, order, normalization, limit, flat, partial)


def agreement_text(view: CamView) -> str:
    r, iou = view.agreement["pearson"], view.agreement["iou_top"]
    if len(view.order) != 2:
        return ""
    first, second = view.order
    if np.isnan(r):
        which = " and ".join(view.flat) or "a model"
        return (
            f"**Agreement:** n/a: {which}'s map is flat (one value everywhere: no evidence for "
            "the class at this layer), so there is nothing to compare."
        )
    where = " over the pixels both saw (their centre crops differ)" if view.partial else ""
    return (
        f"**Agreement of the two maps{where}:** Pearson r = {r:.3f} · IoU of the top-20% regions = "
        f"{iou:.3f}. Difference map ({second} − {first}, {view.normalization} scale): red where "
        f"{second} looks more, blue where {first} does, white where they agree; the strongest "
        f"colours are ±{view.limit:.2f}."
    )


def prediction_rows(result: Explanation, name: str) -> list[list]:
    """One model's top-5 as table rows: "index · label", probability, and the class's rank in
    each other model's top-5, in the models' order ("no" where it is not there; "–" among
    several others, so that the ranks stand out). The class the CAMs explain is marked
    (`TARGET`); a chosen class outside the top-5 follows as a sixth row."""
    this = result.models[name]
    others = [m for n, m in result.models.items() if n != name]
    rows = []
    shown = list(this.top5)
    if this.target.index not in [p.index for p in shown]:
        shown.append(this.target)
    for p in shown:
        marks = []
        for other in others:
            ranks = [q.index for q in other.top5]
            absent = "no" if len(others) == 1 else "–"
            marks.append(f"#{ranks.index(p.index) + 1}" if p.index in ranks else absent)
        mark = f"{TARGET} " if p.index == this.target.index else ""
        text = f"{mark}{p.index} · {p.label}"
        if p not in this.top5:  # the chosen class outside the top-5: where it stands
            probabilities = this.probabilities
            text += f" (rank {1 + int(np.sum(probabilities > probabilities[p.index]))})"
        rows.append([text, probability_text(p.probability), " ".join(marks)])
    return rows


def probability_text(p: float) -> str:
    """A probability with three decimals, or two significant digits below 0.001 (a chosen
    class far down the list read "0.000", issue 27)."""
    return f"{p:.3f}" if p >= 0.001 or p == 0 else f"{p:.1e}"


def prediction_summary(result: Explanation) -> str:
    """Whether the models agree on the top-1 class (nothing for one model), and the image's
    notes."""
    models = list(result.models.values())
    if len(models) < 2:
        return ""
    tops = {m.top5[0].index for m in models}
    if len(tops) == 1:
        who = "Both models" if len(models) == 2 else f"All {len(models)} models"
        line = f"{who} predict **{models[0].top5[0].label}** (top-1)."
    else:
        said = ", ".join(
            f"{m.title} says **{m.top5[0].label}** ({m.top5[0].probability:.3f})" for m in models
        )
        line = f"{DISAGREE} **The models disagree:** {said}."
    notes = list(result.image.notes)
    if notes:
        line += "  \nImage: " + "; ".join(notes) + "."
    return line


def seen_by(result: Explanation, name: str) -> np.ndarray:
    """The pixels model `name` took (its own centre crop, its input grid): its spatial gates
    lie on them exactly. The display image where every model saw the same region."""
    if region_of(result.image, name) is None:
        return result.image.display
    return result.image.view_for(preprocessing_for(name))


def gated_models(result: Explanation) -> list[str]:
    """The names of the explained models that have gates, in order."""
    return [name for name, m in result.models.items() if m.gates]


def gate_views(
    result: Explanation,
    unit: str,
    group: int,
    *,
    model: str | None = None,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For one attention unit of `model` (default: the first with gates): the groups'
    spatial-gate mosaic, the channel-gate heatmap, one group."""
    look = {"colormap": colormap, "alpha": alpha, "scale": scale}
    return (
        gate_mosaic(result, unit, group, model=model, **look),
        channel_gates(result, unit, group, model=model),
        group_detail(result, unit, group, model=model, **look),
    )


def gate_mosaic(
    result: Explanation,
    unit: str,
    group: int,
    *,
    model: str | None = None,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> np.ndarray:
    """One unit's spatial gates (each row's averaged over its maps; a unit with one map at a
    larger size) over the image; a note for a unit without spatial gates."""
    m, gates = unit_gates(result, unit, model)
    layout = words.layout_of(gates)
    if flat_gates(m, gates):
        tiles = (
            f"The {words.count(gates.groups, words.row_word(layout))}' tiles would all look the "
            "same."
            if gates.has_spatial and gates.groups > 1
            else "Its pictures would all be one colour."
        )
        return render.note_panel(
            f"{m.title}, {unit}: every gate is {words.number(flat_value(gates))}",
            f"{tiles} The text above says why, and how to get the weights.",
        )
    if not gates.has_spatial:
        if words.softmax_over_rows(layout):
            what = (
                f"The unit weighs its {words.count(gates.groups, words.row_word(layout))} with "
                f"one weight per channel for the whole image: see the "
                f"{words.channel_name(layout)}."
            )
        else:
            what = "Each channel has one gate value for the whole image: see the channel gates."
        return render.note_panel(
            f"{m.title}, {unit}: {words.kind_of(layout)} units have no spatial gate", what
        )
    return render.gate_mosaic_panel(
        seen_by(result, m.name),
        gates,
        unit,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        highlight=group,
        untrained=m.untrained,
    )


def group_at(
    result: Explanation, unit: str, x: float, y: float, *, model: str | None = None
) -> int | None:
    """The group whose tile of `gate_mosaic` is at pixel (x, y); None where there is none (a
    unit without spatial gates or with flat gates is a note, not tiles; a unit with one row has
    one map and nothing to choose)."""
    m, gates = unit_gates(result, unit, model)
    if flat_gates(m, gates) or not gates.has_spatial or gates.groups == 1:
        return None
    return render.mosaic_tile_at(seen_by(result, m.name).shape, gates.groups, x, y)


def channel_gates(
    result: Explanation, unit: str, group: int, *, model: str | None = None
) -> np.ndarray:
    """One unit's channel gates as a heatmap, `group`'s row marked (`render.channel_panel`); a
    note for a unit without channel gates (Global Context in timm's `gca` setting)."""
    m, gates = unit_gates(result, unit, model)
    if not gates.has_channel:
        layout = words.layout_of(gates)
        gated = f" What it does: {layout.gated}." if layout.gated else ""
        return render.note_panel(
            f"{m.title}, {unit}: this {words.kind_of(layout)} unit has no channel gate",
            f"Its only gate is its {words.spatial_name(layout)}, in the spatial picture.{gated}",
        )
    return render.channel_panel(gates, unit, group, untrained=m.untrained)


def group_detail(
    result: Explanation,
    unit: str,
    group: int,
    *,
    model: str | None = None,
    colormap: str = render.DEFAULT_COLORMAP,
    alpha: float = render.DEFAULT_ALPHA,
    scale: str = "unit range",
) -> np.ndarray:
    """One group of one unit: its spatial gates channel by channel and its channel gates."""
    m, gates = unit_gates(result, unit, model)
    check_group(gates, group)
    return render.group_panel(
        seen_by(result, m.name),
        gates,
        unit,
        group,
        colormap=colormap,
        alpha=alpha,
        scale=scale,
        untrained=m.untrained,
    )


def gate_range_text(result: Explanation, unit: str, scale: str, *, model: str | None = None) -> str:
    """What the gate explorer's pictures of `unit` show, in the words of its kind: its gates,
    how each is made, their values and colour range, what they weigh; and the compared models'
    attention that no probe reads."""
    m, gates = unit_gates(result, unit, model)
    head = f"**{m.title} · {unit}**"
    flat = flat_gates(m, gates)
    if flat:
        return f"{head}: {flat}" + unread_note(result)
    layout = words.layout_of(gates)
    parts = [f"{head} ({words.describe_unit(layout)})."]
    if gates.has_channel:
        values = gates.channel[0].numpy()
        low, high = float(values.min()), float(values.max())
        parts.append(
            f"{words.sentence(words.channel_name(layout))}: {words.channel_how(layout)}; values "
            f"{words.number(low, high)} to {words.number(high)}."
        )
    if gates.has_spatial:
        h, w = gates.spatial.shape[-2:]
        value_range = render.unit_range(gates, scale)
        maps = layout.spatial_maps
        tiles = (
            f"; tiles show each {words.row_word(layout)}'s map averaged over its {maps} maps"
            if gates.groups > 1 and maps > 1
            else ""
        )
        colours = (
            "each map scaled to its own min–max"
            if value_range is None
            else f"colours span {words.number(value_range[0], value_range[1])} to "
            f"{words.number(value_range[1])} ({scale}, the same in the "
            f"{words.row_word(layout) if gates.groups > 1 else 'enlarged'} view)"
        )
        parts.append(
            f"{words.sentence(words.spatial_name(layout))}: "
            f"{words.spatial_how(layout, h, w)}{tiles}; {colours}."
        )
        if words.softmax_spatial(layout) and scale == "0–1":
            parts.append("On the 0–1 scale a softmax over positions looks black: use unit range.")
        if region_of(result.image, m.name) is not None:
            crop = preprocessing_for(m.name).crop_fraction
            parts.append(
                f"Drawn over the part of the image {m.title} saw (its {crop:.1%} centre crop, "
                f"exactly its input); the CAMs show the {result.image.protocol.crop_fraction:.1%}"
                " crop, dark gray where this model saw nothing."
            )
    if layout.gated:
        parts.append(f"What the gates weigh: {layout.gated}.")
    return " ".join(parts) + unread_note(result)


def unread_note(result: Explanation) -> str:
    """A line per compared model and class of module that looks like attention but that no
    probe reads (`sa_viz.probes.unread_lines`); empty when there are none."""
    return "".join(
        f"  \n**{m.title}** has {line}."
        for m in result.models.values()
        for line in unread_lines(m.unread)
    )


NO_UNITS = "Neither chosen model has attention units."


def no_gates_text(result: Explanation) -> str:
    """Why the gate explorer is empty for these models, naming attention no probe reads."""
    note = unread_note(result)
    if not note:
        return NO_UNITS
    return "Neither chosen model has attention units that SA-Viz reads." + note


def summary_picture(result: Explanation, model: str | None = None) -> np.ndarray:
    m = gated_model(result, model)
    return render.summary_panel(m.gates, untrained=m.untrained)


def gated_model(result: Explanation, model: str | None = None) -> ModelExplanation:
    """The model whose gates to show: `model`, or the first explained model with gates."""
    names = gated_models(result)
    if not names:
        raise ValueError("none of the explained models has attention gates")
    if model is None:
        model = names[0]
    if model not in names:
        raise ValueError(f"{model!r} has no gates in this explanation; choose {', '.join(names)}")
    return result.models[model]


def unit_gates(
    result: Explanation, unit: str, model: str | None = None
) -> tuple[ModelExplanation, UnitGates]:
    """(the model's explanation, its `UnitGates` at `unit`)."""
    m = gated_model(result, model)
    if unit not in m.gates:
        raise ValueError(
            f"{unit!r} is not an attention unit of {m.title}; choose one of "
            f"{next(iter(m.gates))} … {next(reversed(m.gates))}"
        )
    return m, m.gates[unit]


def check_group(gates: UnitGates, group: int) -> None:
    if not 0 <= int(group) < gates.groups:
        raise ValueError(
            f"Group {group} does not exist; this unit's groups are numbered 0–{gates.groups - 1}."
        )


def flat_value(gates: UnitGates) -> float:
    """The first gate value of a unit (its channel gates', or its spatial gates' without)."""
    values = gates.channel if gates.channel is not None else gates.spatial
    return float(values.flatten()[0])


def flat_gates(m: ModelExplanation, gates: UnitGates) -> str | None:
    """Why a unit's gates are all one value, and how to get weights that make them differ; None
    when they vary. An SA unit with the paper's init gates everything by σ(1) = 0.731: 64
    identical tiles said nothing, and the reason was in a footnote."""
    if not is_constant(gates):
        return None
    value = words.number(flat_value(gates))
    why = (
        f"every gate of this unit is {value}, because {m.title} runs with untrained gate weights"
        if m.untrained
        else f"every gate of this unit is {value} for this image"
    )
    how = f" How to get the weights: {m.weights.how_to_get}" if m.weights.how_to_get else ""
    return why + "." + how
