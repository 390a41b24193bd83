"""The map of a study's explanations: the images the browser shows (its filtered view, the first
`MAX_POINTS`), each as its CAM (unit-norm, resized: `clusters.cam_features`), as one unit's
channel gates, or as one unit's spatial gates as the rows keep them (per group the peak's
position and the map's entropy: a study keeps no spatial map), laid out in 2-D by t-SNE and
clustered by spectral clustering with the eigengap's k (`clusters.cluster_features`:
scikit-learn's, the same as `sa-viz cluster`), one point per image and model. Points are
coloured by cluster, class, model or whether the model is right.

Spectral relevance analysis proper is one class and one model: choose the class in the browser
and one model, and the clusters are that class's strategies (with each cluster's mean CAM).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sa_viz.data.imagenet import label as class_name
from sa_viz.outputs.rows import read_rows
from sa_viz.studies.browse import StudyTable
from sa_viz.studies.clusters import Strategies, cam_features, cluster_features

MAX_POINTS = 1000  # points on one map (images × models): seconds; 50,000 would take hours
CAM = "cam"  # the features: the CAMs, a unit's channel gates ("layer3.0") or spatial ones
SPATIAL = ":spatial"  # "layer3.0:spatial": per group the peak (y, x) and the entropy
COLOURINGS = ("cluster", "class", "model", "right")
MOST_CLASSES = 9  # classes coloured by name; the others are "other classes"


@dataclass(frozen=True)
class Map:
    """One point per (image, model): `keys[i]` under `models[i]` at `xy[i]`, `groups` by
    colouring (`COLOURINGS`) the group each point belongs to, `strategies` the clustering (its
    means are the clusters' mean CAMs when `features` is `CAM`)."""

    keys: list[str]
    models: list[str]
    xy: np.ndarray
    groups: dict[str, list[str]]
    strategies: Strategies
    features: str
    dropped: int  # images of the view left out (past `MAX_POINTS`, or without the features)


def nearest(positions: np.ndarray, x: float, y: float, radius: float) -> int | None:
    """The index of the point of `positions` (n, 2) nearest (x, y), within `radius`."""
    if not len(positions):
        return None
    distances = np.hypot(positions[:, 0] - x, positions[:, 1] - y)
    best = int(np.argmin(distances))
    return best if distances[best] <= radius else None


def gated_units(table: StudyTable) -> dict[str, list[str]]:
    """Each model's features of its units, read from one of its rows: "layer3.0" where the
    unit has channel gates, "layer3.0:spatial" where it has spatial ones."""
    found: dict[str, list[str]] = {}
    first = table.view().slice(0, 1)["image"].to_pylist()
    if not first:
        return found
    rows = read_rows(table.study, columns=["model", "units"], filters=[("key", "=", first[0])])
    for row in rows.to_pylist():
        features = []
        for u in row["units"] or []:
            features += [u["unit"]] if u["channel"] else []
            features += [u["unit"] + SPATIAL] if u.get("peak_y") else []
        if features:
            found[row["model"]] = features
    return found


def features_title(features: str) -> str:
    """What a map compares, in words."""
    if features == CAM:
        return "Grad-CAMs"
    if features.endswith(SPATIAL):
        return f"{features.removesuffix(SPATIAL)} spatial gates (peak, entropy)"
    return f"{features} channel gates"


def draw_map(
    table: StudyTable,
    view: pa.Table,
    models: Sequence[str],
    features: str = CAM,
    *,
    max_points: int = MAX_POINTS,
    seed: int = 0,
) -> Map:
    """The map of `view`'s first `max_points` images under `models` (one model: SpRAy's view
    when `view` is one class). ValueError, one sentence, for fewer than 3 points."""
    # At most `max_points` points: with several models, fewer images each (the affinity and its
    # eigenvalues grow with the square and the cube of the points).
    images = max(1, max_points // len(models))
    keys = view["image"].slice(0, images).to_pylist()
    vectors = (
        _cams(table, keys, models) if features == CAM else _gates(table, keys, models, features)
    )
    points = [(k, m) for m in models for k in keys if (k, m) in vectors]
    if len(points) < 3:
        raise ValueError(
            f"{len(points)} images with {features_title(features)} in the filtered table: a map "
            "needs 3 at least"
        )
    lengths = {m: len(vectors[k, m]) for k, m in points}
    if len(set(lengths.values())) > 1:
        said = ", ".join(f"{m}: {n}" for m, n in lengths.items())
        raise ValueError(
            f"the models' {features_title(features)} differ in length ({said}): choose one model"
        )
    matrix = np.stack([vectors[p] for p in points])
    size = round(np.sqrt(matrix.shape[1])) if features == CAM else 0  # the maps' side
    chosen = view.slice(0, images).select(_columns(table, models))
    labels = {r["image"]: r for r in chosen.to_pylist()}
    label = labels[points[0][0]]["label"]
    one_class = all(labels[k]["label"] == label for k, _ in points) and label is not None
    strategies = cluster_features(
        [f"{k}\n{m}" for k, m in points],
        matrix,
        label=label if one_class else -1,
        model=models[0] if len(models) == 1 else "",
        seed=seed,
        size=size,
    )
    groups = _groups(table, points, labels, strategies)
    dropped = len(view) - len({k for k, _ in points})
    return Map(
        [k for k, _ in points],
        [m for _, m in points],
        strategies.embedding,
        groups,
        strategies,
        features,
        dropped,
    )


def _columns(table: StudyTable, models: Sequence[str]) -> list[str]:
    return ["image", "label", *(f"{m}.right" for m in models)]


def _cams(table: StudyTable, keys: list[str], models: Sequence[str]) -> dict:
    cams = table.cams(keys)
    chosen = [(k, m) for (k, m) in cams if m in models]
    if not chosen:
        return {}
    rows = cam_features([cams[p] for p in chosen])
    return dict(zip(chosen, rows, strict=True))


def _gates(table: StudyTable, keys: list[str], models: Sequence[str], features: str) -> dict:
    """Each image's gates of a unit under each model that has them: its channel gates, or per
    group its spatial gate's peak (y, x) and entropy (`SPATIAL`)."""
    if not keys:
        return {}
    rows = read_rows(table.study, columns=["key", "model", "units"], filters=[("key", "in", keys)])
    rows = rows.filter(pc.is_in(rows["model"], pa.array(list(models))))
    unit, spatial = features.removesuffix(SPATIAL), features.endswith(SPATIAL)
    found = {}
    for row in rows.to_pylist():
        for u in row["units"] or []:
            if u["unit"] != unit:
                continue
            if spatial and u.get("peak_y"):
                parts = [u["peak_y"], u["peak_x"], u["spatial_entropy"]]
                found[row["key"], row["model"]] = np.concatenate(parts).astype(np.float64)
            elif not spatial and u["channel"]:
                found[row["key"], row["model"]] = np.asarray(u["channel"], np.float64)
    return found


def _groups(
    table: StudyTable, points: list[tuple[str, str]], rows: dict, strategies: Strategies
) -> dict[str, list[str]]:
    titles = table.titles
    labels = [rows[k]["label"] for k, _ in points]
    counts: dict[int, int] = {}
    for label in labels:
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
    common = set(sorted(counts, key=lambda c: -counts[c])[:MOST_CLASSES])

    def of_class(label: int | None) -> str:
        if label is None:
            return "unlabelled"
        return f"{label} {class_name(label)}" if label in common else "other classes"

    def right(key: str, model: str) -> str:
        value = rows[key].get(f"{model}.right")
        return "unlabelled" if value is None else ("right" if value else "wrong")

    return {
        "cluster": [f"cluster {c}" for c in strategies.clusters],
        "class": [of_class(label) for label in labels],
        "model": [titles[m] for _, m in points],
        "right": [right(k, m) for k, m in points],
    }
