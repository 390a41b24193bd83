"""A study's files: the records as a Parquet dataset, `study.json`, and the problems met.

`sa_viz.studies.run_study` writes the records in parts (`rows/part-NNNNN.parquet`,
`write_part`), each written whole or not at all (a temporary name that readers skip, then a
rename); running the same command again skips the images already in a part, so an interrupted
study resumes where it stopped and Ctrl+C never leaves a half-written file. The rows folder
holds nothing but the parts (anything else would be read with them): a study whose folder holds
another file is not resumed (`ForeignRows`). Memory stays that of a few batches, whatever the
dataset's size.

Schema, one row per image and model:

| column | type | meaning |
| --- | --- | --- |
| key | string | the image's path relative to the source |
| sha256 | string | of the image file's bytes (the same picture under two keys: problems.txt) |
| model | string | the model's registry name |
| label | int32, null | the ImageNet class from the source (null: unknown) |
| top5, top5_p | list<int32>, list<float> | the model's top-5 classes and probabilities |
| correct1, correct5 | bool, null | whether the label is the top-1 / in the top-5 (null: no label) |
| target, target_p | int32, float | the CAM's class (the label if known, else the top-1) and its p |
| cam_raw, cam_shape | list<float>, list<int32> | the raw Grad-CAM at the layer, row by row |
| pearson, iou_top20 | float, null | the pair's CAM agreement (the same on both models' rows) |
| units | list<struct> | per attention unit: see below |
| analyses | map<string, double> | the numbers of the `--analyses` (`sa_viz.analyses`) by name |
| input_size | struct<width, height> | the model input's size (null: an older study) |
| original_size | struct<width, height> | the image's, upright, as decoded (null: older) |
| notes | list<string> | what decoding did to the image (null: an older study) |

Each unit: `unit` ("layer3.0"), `groups` (G), `channel` (its G·c channel-gate values, group by
group), and per group `spatial_mean`, `spatial_std`, `spatial_entropy` (0: one position, 1:
uniform), `peak_y`, `peak_x` (the peak's position, 0–1 from the top left); the spatial columns
are null for a unit without spatial gates (SE).

`read_documents` turns the rows and `study.json` into one explanation document per image, of the
schema of the CLI's and the API's (`sa_viz.outputs.document`).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sa_viz.data.sources import Source
from sa_viz.models.weights import LoadedModel
from sa_viz.outputs import files
from sa_viz.outputs.document import weights_entry

# Where they were before sa_viz.outputs.rows: callers may still import them from here.
from sa_viz.outputs.rows import (  # noqa: F401
    PART,
    SCHEMA,
    ForeignRows,
    read_documents,
    read_rows,
    study_parts,
)


def write_part(
    out: Path,
    part: int,
    tables: Sequence[pa.Table],
    problems_file: Path,
    problems: Iterable[str],
) -> None:
    """One part of the rows (none: no tables), whole or not at all, then the problems met so
    far (also those of a source none of whose images could be read)."""
    if tables:
        files.write_parquet(out / "rows" / f"part-{part:05d}.parquet", pa.concat_tables(tables))
    files.write_text(problems_file, "".join(f"{p}\n" for p in problems))


def describe_analyses(
    out: Path, names: Sequence[str], analyses: Sequence[str]
) -> dict[str, Any] | None:
    """Per analysis number: each model's mean with its 95 % bootstrap interval, the paired
    difference of the two models (second − first) with its interval and permutation p-value,
    and per labelled class each model's mean."""
    if not analyses:
        return None
    from sa_viz.analyses import analyses as registry

    rows = read_rows(out, columns=["key", "model", "label", "analyses"]).to_pylist()
    values: dict[str, dict[str, dict[str, float]]] = {}  # model → key → numbers
    labels = {}
    for row in rows:
        values.setdefault(row["model"], {})[row["key"]] = dict(row["analyses"] or [])
        labels[row["key"]] = row["label"]
    found: dict[str, Any] = {}
    for analysis in (registry()[a] for a in analyses):
        if analysis.dataset_view is not None:
            found[f"{analysis.name}_view"] = {
                m: analysis.dataset_view(values.get(m, {}), labels) for m in names
            }
        for number in analysis.numbers:
            per_model = {
                m: {k: v[number] for k, v in values.get(m, {}).items() if number in v}
                for m in names
            }
            found[number] = {
                **_number_entry(per_model, names, labels),
                "higher_is_better": analysis.higher_is_better.get(number),
            }
    return found


def _number_entry(
    per_model: dict[str, dict[str, float]], names: Sequence[str], labels: dict[str, int | None]
) -> dict[str, Any]:
    from sa_viz.analyses.stats import mean_interval, paired

    entry: dict[str, Any] = {m: mean_interval(list(v.values())) for m, v in per_model.items()}
    if len(names) == 2:
        a, b = (per_model[m] for m in names)
        both = [k for k in a if k in b]
        entry["paired"] = paired([a[k] for k in both], [b[k] for k in both])
    classes: dict[int, dict[str, list[float]]] = {}
    for m, v in per_model.items():
        for key, value in v.items():
            if labels.get(key) is not None:
                classes.setdefault(labels[key], {}).setdefault(m, []).append(value)
    entry["per_class"] = {
        str(c): {m: _mean(xs) for m, xs in classes[c].items()} for c in sorted(classes)
    }
    return entry


def _mean(values: Sequence[float]) -> float | None:
    """The mean of the values that are numbers (None when none is: JSON has no NaN)."""
    kept = [v for v in values if v == v]
    return float(np.mean(kept)) if kept else None


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def describe(
    out: Path,
    source: Source,
    models: Mapping[str, LoadedModel],
    items: Sequence[Any],
    problems: Sequence[str],
    layer: str,
    crop: bool,
    batch_size: int,
) -> dict[str, Any]:
    """`study.json`: the models and their weights, the settings, versions, counts and accuracy
    (with 95 % intervals, the paired difference and who is right where both are labelled)."""
    import timm
    import torch

    import sa_viz

    table = read_rows(out, columns=["key", "model", "correct1", "correct5"])
    rows = table.to_pylist()
    names = list(models)
    right = {name: {r["key"]: r["correct1"] for r in rows if r["model"] == name} for name in names}
    accuracy = {}
    for name in names:
        for k in ("correct1", "correct5"):
            values = [r[k] for r in rows if r["model"] == name and r[k] is not None]
            low, high = wilson(sum(values), len(values))
            accuracy.setdefault(name, {})[k.replace("correct", "top")] = {
                "n": len(values),
                "accuracy": sum(values) / len(values) if values else None,
                "ci95": [low, high] if values else None,
            }
    paired = None
    if len(names) == 2:
        a, b = (right[n] for n in names)
        both = [k for k in a if k in b and a[k] is not None and b[k] is not None]
        cells = {
            "both_right": sum(a[k] and b[k] for k in both),
            f"only_{names[0]}": sum(a[k] and not b[k] for k in both),
            f"only_{names[1]}": sum(b[k] and not a[k] for k in both),
            "both_wrong": sum(not a[k] and not b[k] for k in both),
        }
        paired = {"n": len(both), "matrix": cells}
        if both:
            paired["difference_top1"] = (
                cells[f"only_{names[1]}"] - cells[f"only_{names[0]}"]
            ) / len(both)
    return {
        "source": {"path": str(source.root), "layout": source.layout},
        "models": {
            name: {
                "title": m.title,
                "weights_file": Path(m.status.path).name if m.status.path else None,
                "sha256": m.status.sha256,
                "pretrained": m.status.pretrained,
                "weights": weights_entry(m.status),  # as the explanation documents give it
            }
            for name, m in models.items()
        },
        "settings": {"layer": layer, "crop": crop, "batch_size": batch_size, "method": "gradcam"},
        "versions": {
            "sa_viz": getattr(sa_viz, "__version__", None),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "python": platform.python_version(),
        },
        "counts": {
            "listed": len(items),
            "labelled": sum(item.label is not None for item in items),
            "studied": len({r["key"] for r in rows}),
            "problems": len(problems),
        },
        "accuracy": accuracy,
        "paired": paired,
        "problems_file": "problems.txt",
    }


def __getattr__(name: str) -> Any:
    """The study runner's old address: `run_study` and its settings moved to `sa_viz.studies`
    (running a study is not writing its files); resolved only when asked for."""
    if name in {"run_study", "SettingsChanged", "PART_SIZE"}:
        import importlib
        import warnings

        warnings.warn(
            f"sa_viz.outputs.study.{name} is an old address: import from sa_viz.studies "
            "(run_study: from sa_viz)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("sa_viz.studies"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
