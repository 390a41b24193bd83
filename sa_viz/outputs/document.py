"""One image's explanation as one JSON document, built here for every producer: the CLI's
`<name>.json`, `/explain_json`, the ZIP's `explanation.json` and each image of a study.

Every document follows `schemas/explanation.schema.json` (JSON Schema 2020-12, shipped with the
package) and names its version in `schema` (`SCHEMA`). Sizes are {"width", "height"} objects, so
no reader has to guess an order.

From an `Explanation` (`explanation_document`) the document holds what was computed; from a
study's Parquet rows and `study.json` (`study_document`, read by
`sa_viz.outputs.study.read_documents`) what a study keeps: the same gate summary
(`sa_viz.probes.unit_summary`, with its channel gates reduced to each group's mean and standard
deviation, the figures `sa_viz.probes.gate_stats` gives), the analyses' numbers without
their details, and no image sizes for a study written before they were recorded.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sa_viz.analyses import analyses as registered_analyses
from sa_viz.cam import cam_agreement
from sa_viz.data.imagenet import label
from sa_viz.data.regions import crop_region, widest
from sa_viz.models.weights import WeightsStatus
from sa_viz.pipeline.explain import (
    Explanation,
    ModelExplanation,
    preprocessing_for,
    preprocessing_of,
    region_of,
)
from sa_viz.probes import SPATIAL_SUMMARIES, GateLayout, unit_layouts, unit_summary

SCHEMA = "sa-viz/explanation/1"
SCHEMA_FILE = "explanation.schema.json"
OWN_TOP1 = "each model's top-1"  # settings.class when each model explains its own top-1


def schema() -> dict[str, Any]:
    """The JSON Schema that every explanation document follows."""
    text = (resources.files(__package__) / "schemas" / SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def explanation_document(
    result: Explanation,
    *,
    analyses: Mapping[str, Mapping[str, Any]] | None = None,
    file: str | None = None,
    view: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`result` as a document: the image, the settings, per model its top-5, CAM target,
    weights status and every unit's gate summary, and the two maps' agreement (with two models).

    `analyses`: those run on the image, model → analysis → numbers and details (as
    `sa_viz.pipeline.explain.analyse_explanation` gives them; none: no `analyses` key).
    `file`: the image file's name, where it has one worth naming (only the name is kept).
    `view`: the view settings the pictures beside it were drawn with (the ZIP export).
    """
    image = result.image
    height, width = image.size
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {
            **({"file": Path(file).name} if file else {}),
            "input_size": size(width, height),
            "original_size": size(*image.original_size),
            "crop": image.crop,
            "notes": list(image.notes),
        },
        "settings": settings(result.layer, result.method, result.requested_class),
        "models": {
            name: _explained_model(m) | _seen_region(region_of(image, name))
            for name, m in result.models.items()
        },
    }
    models = list(result.models.values())
    if len(models) == 2:
        found = cam_agreement(models[0].cam, models[1].cam)
        document["agreement"] = agreement(list(result.models), found["pearson"], found["iou_top"])
    if analyses:
        document["analyses"] = dict(analyses)
    if view is not None:
        document["view"] = dict(view)
    return plain(document)


def study_document(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> dict[str, Any]:
    """One image of a study as a document: its rows (one per model, as
    `sa_viz.outputs.study.SCHEMA` reads them) and the study's `study.json` (`summary`). Its CAM
    explains the image's label where the source gives one, else each model's top-1."""
    first = rows[0]
    by_model = {row["model"]: row for row in rows}
    names = [name for name in summary["models"] if name in by_model]
    studied = summary["settings"]
    image: dict[str, Any] = {
        "file": first["key"],
        "sha256": first["sha256"],
        "label": first["label"],
        "input_size": first.get("input_size"),
        "original_size": first.get("original_size"),
        "crop": studied["crop"],
    }
    if first.get("notes") is not None:
        image["notes"] = list(first["notes"])
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "image": image,
        "settings": settings(studied["layer"], studied.get("method", "gradcam"), first["label"]),
        "models": {
            name: _studied_model(name, by_model[name], summary["models"][name])
            | _seen_region(_studied_region(first, studied["crop"], list(summary["models"]), name))
            for name in names
        },
    }
    if len(names) == 2:
        document["agreement"] = agreement(names, first["pearson"], first["iou_top20"])
    if studied.get("analyses"):
        document["analyses"] = {
            name: _studied_analyses(by_model[name]["analyses"], studied["analyses"])
            for name in names
        }
    return plain(document)


def page_analyses(kept: Mapping[str, Any], models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The analyses the page computed for a result, in the document's form (model → analysis
    → numbers, details). `kept`: analysis → the Analyses tab's document for it, either per
    model ({model: {numbers, details, …}}) or one model's, naming it in "model" (the group
    knockout: its top-level numbers become the numbers, the rest the details)."""
    found: dict[str, dict[str, Any]] = {}
    for name, doc in kept.items():
        if doc.get("model") in models:
            rest = {k: v for k, v in doc.items() if k != "model"}
            numbers = {k: v for k, v in rest.items() if isinstance(v, float)}
            details = {k: v for k, v in rest.items() if k not in numbers}
            found.setdefault(doc["model"], {})[name] = {"numbers": numbers, "details": details}
            continue
        for model, entry in doc.items():
            if model in models and isinstance(entry, Mapping):
                found.setdefault(model, {})[name] = {
                    "numbers": dict(entry.get("numbers", {})),
                    "details": dict(entry.get("details", {})),
                }
    return {model: found[model] for model in models if model in found}


def size(width: int, height: int) -> dict[str, int]:
    return {"width": int(width), "height": int(height)}


def settings(layer: str, method: str, class_idx: int | None) -> dict[str, Any]:
    return {"layer": layer, "method": method, "class": OWN_TOP1 if class_idx is None else class_idx}


def agreement(models: Sequence[str], pearson: float | None, iou: float | None) -> dict[str, Any]:
    """The two maps' agreement, with the models in the order compared (null: a map is flat)."""
    return {"models": list(models), "pearson": pearson, "iou_top20": iou}


def weights_entry(status: WeightsStatus) -> dict[str, Any]:
    """A model's weights status with the checkpoint's file name instead of its path: no path
    on a server leaves SA-Viz, and gradio_client takes a "path" key for a file to download."""
    entry = status.to_dict()
    path = entry.pop("path", None)
    return {**entry, "file": None if path is None else Path(path).name}


# A unit's layout as schema sa-viz/explanation/1 first described it (`layout`), and the rest of
# it (`details`: spatial maps, sigmoid or softmax, rows, what is gated), added to version 1 as an
# optional key so that every document written before still follows it.
LAYOUT_KEYS = ("kind", "stage", "groups", "channels", "spatial", "untrained_value")


def layout_entry(layout: GateLayout) -> dict[str, Any]:
    return {key: getattr(layout, key) for key in LAYOUT_KEYS}


def details_entry(layout: GateLayout) -> dict[str, Any]:
    return {"spatial_maps": layout.spatial_maps, **layout.details}


def unit_entry(layout: GateLayout, summary: Mapping[str, Any]) -> dict[str, Any]:
    """One unit's layout and gate summary, from `unit_summary` (or a study's row of it): per
    group, its channel gates' mean and standard deviation (None for a unit without a channel
    gate) and the spatial figures as they are."""
    channel = summary["channel"]
    if channel is not None:
        channel = np.asarray(channel, np.float64).reshape(layout.groups, -1)
    return {
        "layout": layout_entry(layout),
        "details": details_entry(layout),
        "summary": {
            "channel_mean": None if channel is None else channel.mean(1),
            "channel_std": None if channel is None else channel.std(1),
            **{name: summary[name] for name in SPATIAL_SUMMARIES},
        },
    }


def model_entry(
    title: str,
    weights: Mapping[str, Any],
    top5: list[dict[str, Any]],
    target: dict[str, Any],
    gates: dict[str, Any],
    unread: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One model's part of a document; `unread`: its modules that look like attention but that
    no probe reads (`ModelExplanation.unread`), kept only where there are some."""
    entry = {
        "title": title,
        "untrained": weights["untrained"],
        "top5": top5,
        "cam_target": target,
        "weights": dict(weights),
        "gates": gates,
    }
    return entry | ({"unread_attention": dict(unread)} if unread else {})


def _explained_model(m: ModelExplanation) -> dict[str, Any]:
    gates = {
        unit: unit_entry(g.layout or unit_layouts(m.name)[unit], unit_summary(g, 0))
        for unit, g in m.gates.items()
    }
    top5 = [dataclasses.asdict(p) for p in m.top5]
    target = dataclasses.asdict(m.target)
    return model_entry(m.title, weights_entry(m.weights), top5, target, gates, m.unread)


def _studied_region(
    row: Mapping[str, Any], crop: bool, models: Sequence[str], name: str
) -> tuple[float, float, float, float] | None:
    """The box of a study's image shown that model `name` saw, from the row's decoded size and
    the study's models' preprocessing, as the study computed it (`prepare_image`)."""
    size = row.get("original_size")
    if not crop or not size:
        return None
    shown = widest(preprocessing_of(models))
    return crop_region(size["width"], size["height"], preprocessing_for(name), shown)


def _seen_region(region: tuple[float, float, float, float] | None) -> dict[str, Any]:
    """{"seen_region": the box of the image shown that the model saw} where it saw less."""
    if region is None:
        return {}
    return {"seen_region": dict(zip(("x0", "y0", "x1", "y1"), map(float, region), strict=True))}


def _prediction(index: int, probability: float) -> dict[str, Any]:
    return {"index": int(index), "label": label(int(index)), "probability": float(probability)}


def _studied_model(name: str, row: Mapping[str, Any], described: Mapping[str, Any]) -> dict:
    """One model's part of a study's document: its row and its entry of study.json."""
    weights = described.get("weights") or {  # a study.json written before it held the status
        "model": name,
        "title": described["title"],
        "pretrained": described["pretrained"],
        "file": described.get("weights_file"),
        "sha256": described.get("sha256"),
        "untrained": not described["pretrained"],
    }
    layouts = unit_layouts(name)
    return model_entry(
        described["title"],
        weights,
        [_prediction(i, p) for i, p in zip(row["top5"], row["top5_p"], strict=True)],
        _prediction(row["target"], row["target_p"]),
        {unit["unit"]: unit_entry(layouts[unit["unit"]], unit) for unit in row["units"] or ()},
    )


def _studied_analyses(numbers: Any, run: Sequence[str]) -> dict[str, Any]:
    """A study's numbers of one image and model (its `analyses` column), by the analysis that
    gave them, for the analyses `run` that applied to it."""
    values = dict(numbers or ())  # Arrow reads a map as (key, value) pairs
    known = registered_analyses()
    found = {}
    for name in run:
        own = {k: v for k, v in values.items() if name in known and known[name].owns(k)}
        if own:
            found[name] = {"numbers": own, "details": {}}
    return found


def plain(value: Any) -> Any:
    """`value` in JSON's own types: NumPy numbers and arrays as Python's, tuples as lists, and
    NaN or infinity as null (JSON has neither)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
