"""Browsing a study: its images as one table (one row per image, each model's columns side by side),
sorted, filtered and paged on the server, as CSV, and each image found again for the explorer.

`StudyTable(study)` reads the light columns of the study's rows (never the CAMs nor the gates) and
turns them into one Arrow table: the image, its label, per model its top-1 class, that class's
probability and whether it is right, the first two models' CAM agreement, and per model every
analysis number the rows hold. `view(...)` filters (by class, by who is right, by the image's
name, by ranges of any number) and sorts it with Arrow's compute functions, which keeps a study
of ImageNet's 50,000 validation images under the app's budget (`benchmarks/bench_browse.py`).
`cams(keys)` reads the CAMs of a page's images only; `image_path(key)` finds an image where the
study read it.

A study written by an earlier version (without the columns added later) is read the same way;
a rows folder holding anything else is refused with `ForeignRows`, naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sa_viz.data.imagenet import NUM_CLASSES
from sa_viz.data.imagenet import label as class_name
from sa_viz.data.sources import IMAGE_SUFFIXES
from sa_viz.outputs.rows import read_rows
from sa_viz.studies.clusters import study_models

READ = ["key", "model", "label", "top5", "top5_p", "correct1", "pearson", "iou_top20", "analyses"]
EVERY = ""  # the outcome filter's "every image"


@dataclass(frozen=True)
class Column:
    """One column of the table: its name in the Arrow table (and the CSV's header), its title on
    the page, its kind ("text", "class", "number", "right")."""

    name: str
    title: str
    kind: str


@dataclass(frozen=True)
class Query:
    """What the browser shows of the table: a class (None: all), an outcome (`outcomes()`), a part
    of the image's name, ranges of number columns ((name, low, high), a bound None: open), and a
    sort column (None: the study's order)."""

    label: int | None = None
    outcome: str = EVERY
    name: str = ""
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    sort: str | None = None
    descending: bool = False


class StudyTable:
    """A study's images as one table; see the module's docstring."""

    def __init__(self, study: str | Path) -> None:
        self.study = Path(study)
        self.models = study_models(self.study)  # NotAStudy for a folder that is not one
        self.summary = json.loads((self.study / "study.json").read_text())
        rows = read_rows(self.study, columns=READ)  # ForeignRows for an unknown file
        self.numbers = _analysis_numbers(rows)
        self.table = self._images(rows)
        self.columns = self._columns()

    @property
    def titles(self) -> dict[str, str]:
        """Each model's title, as the study recorded it."""
        described = self.summary.get("models", {})
        return {m: (described.get(m) or {}).get("title") or m for m in self.models}

    @property
    def untrained(self) -> list[str]:
        """The titles of the study's models that ran without trained weights."""
        described = self.summary.get("models", {})
        return [
            self.titles[m]
            for m in self.models
            if (described.get(m) or {}).get("pretrained") is False
        ]

    @property
    def settings(self) -> dict[str, Any]:
        return self.summary.get("settings", {})

    def __len__(self) -> int:
        return self.table.num_rows

    def _images(self, rows: pa.Table) -> pa.Table:
        """One row per image: the first model's rows give the image's own columns, each model's
        are joined by the image's key (an image a model has no row for: nulls)."""
        first = rows.filter(pc.equal(rows["model"], self.models[0]))
        table = pa.table(
            {
                "order": pa.array(np.arange(first.num_rows, dtype=np.int64)),
                "image": first["key"],
                "label": first["label"],
                **(
                    {"pearson": first["pearson"], "iou_top20": first["iou_top20"]}
                    if len(self.models) >= 2
                    else {}
                ),
            }
        )
        for model in self.models:
            own = rows.filter(pc.equal(rows["model"], model))
            columns = {
                "image": own["key"],
                f"{model}.top1": pc.list_element(own["top5"], 0),
                f"{model}.p": pc.list_element(own["top5_p"], 0),
                f"{model}.right": own["correct1"],
            }
            for number in self.numbers:
                value = pc.map_lookup(own["analyses"], number, "first")
                # NaN (a constant map's correlation) is no value: shown as –, sorted last
                columns[f"{model}.{number}"] = pc.if_else(pc.is_nan(value), None, value)
            table = table.join(pa.table(columns), "image", join_type="left outer")
        return table.sort_by("order")

    def _columns(self) -> list[Column]:
        columns = [Column("image", "image", "text"), Column("label", "class", "class")]
        titles = self.titles
        for model in self.models:
            title = titles[model]
            columns += [
                Column(f"{model}.top1", f"{title} top-1", "class"),
                Column(f"{model}.p", f"{title} p", "number"),
                Column(f"{model}.right", f"{title} right", "right"),
            ]
        if len(self.models) >= 2:
            pair = f"{titles[self.models[0]]}, {titles[self.models[1]]}"
            columns += [
                Column("pearson", f"CAM Pearson ({pair})", "number"),
                Column("iou_top20", f"CAM IoU top 20 % ({pair})", "number"),
            ]
        for number in self.numbers:
            columns += [
                Column(f"{model}.{number}", f"{titles[model]} {number}", "number")
                for model in self.models
            ]
        return columns

    # --- what the page offers ------------------------------------------------------------------

    def classes(self) -> list[tuple[int, int]]:
        """(class, images) of each labelled class, by class."""
        labels = self.table["label"].drop_null()
        counts = pc.value_counts(labels).to_pylist()
        return sorted((c["values"], c["counts"]) for c in counts)

    def outcomes(self) -> list[tuple[str, str]]:
        """(title, value) of the outcome filter: who is right where."""
        titles = self.titles
        found = [("every image", EVERY)]
        if len(self.models) >= 2:
            for a in self.models:
                for b in self.models:
                    if a != b:
                        found.append((f"{titles[a]} right, {titles[b]} wrong", f"{a}>{b}"))
            found.append(("the models' top-1 classes differ", "differ"))
        found += [("every model right", "all"), ("every model wrong", "none")]
        return found

    def number_columns(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "number"]

    # --- the view -------------------------------------------------------------------------------

    def view(self, query: Query = Query()) -> pa.Table:
        """The rows `query` keeps, in its order. ValueError, one sentence, for what the table
        does not have."""
        table = self.table
        mask = pa.array(np.ones(len(table), dtype=bool))
        if query.label is not None:
            mask = pc.and_kleene(mask, pc.equal(table["label"], query.label))
        if query.outcome:
            mask = pc.and_kleene(mask, self._outcome(query.outcome))
        if query.name.strip():
            found = pc.match_substring(table["image"], query.name.strip(), ignore_case=True)
            mask = pc.and_kleene(mask, found)
        numbers = {c.name for c in self.number_columns()}
        for name, low, high in query.ranges:
            if name not in numbers:
                raise ValueError(f"{name}: not a number column of this study")
            if low is not None:
                mask = pc.and_kleene(mask, pc.greater_equal(table[name], low))
            if high is not None:
                mask = pc.and_kleene(mask, pc.less_equal(table[name], high))
        kept = table.filter(pc.fill_null(mask, False))
        if query.sort is None:
            return kept
        if query.sort not in {c.name for c in self.columns}:
            raise ValueError(f"{query.sort}: not a column of this study")
        order = "descending" if query.descending else "ascending"
        # Ties keep the study's order; images without a value go last either way.
        indices = pc.sort_indices(kept, sort_keys=[(query.sort, order), ("order", "ascending")])
        return kept.take(indices)

    def _outcome(self, outcome: str) -> pa.Array:
        t = self.table
        right = {m: t[f"{m}.right"] for m in self.models}
        if outcome in ("all", "none"):
            wanted = outcome == "all"
            found = pa.array(np.ones(len(t), dtype=bool))
            for column in right.values():
                found = pc.and_kleene(found, pc.equal(column, wanted))
            return found
        if outcome == "differ":  # not every model's top-1 the same
            first = t[f"{self.models[0]}.top1"]
            found = pa.array(np.zeros(len(t), dtype=bool))
            for m in self.models[1:]:
                found = pc.or_kleene(found, pc.not_equal(first, t[f"{m}.top1"]))
            return found
        a, _, b = outcome.partition(">")
        if a not in right or b not in right or a == b:
            raise ValueError(f"{outcome}: not an outcome of this study")
        return pc.and_kleene(pc.equal(right[a], True), pc.equal(right[b], False))

    def page(self, view: pa.Table, number: int, size: int) -> list[list[Any]]:
        """Page `number` (from 0) of `view`, `size` rows, as the page's cells (text): class
        names, numbers to three decimals, ✓ / ✗ / – for right, wrong, unlabelled."""
        rows = view.slice(number * size, size).to_pylist()
        return [[_cell(c, row.get(c.name)) for c in self.columns] for row in rows]

    def write_csv(self, view: pa.Table, path: Path) -> Path:
        """`view` as CSV: every column under its title, classes as "281 tabby"."""
        out = {}
        for column in self.columns:
            values = view[column.name]
            if column.kind == "class":
                out[column.title] = _class_names(values)
            else:
                out[column.title] = values
        path.parent.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(pa.table(out), path)
        return path

    # --- the images -----------------------------------------------------------------------------

    def cams(self, keys: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
        """The raw CAMs of `keys` under each model, by (key, model): read for these images only."""
        if not keys:
            return {}
        table = read_rows(
            self.study,
            columns=["key", "model", "cam_raw", "cam_shape"],
            filters=[("key", "in", list(keys))],
        )
        return {
            (r["key"], r["model"]): np.reshape(np.asarray(r["cam_raw"], np.float32), r["cam_shape"])
            for r in table.to_pylist()
            if r["cam_raw"] is not None
        }

    def row(self, key: str) -> dict[str, Any]:
        """The table's row of the image `key`. KeyError for an image the study does not have."""
        found = self.table.filter(pc.equal(self.table["image"], key))
        if found.num_rows == 0:
            raise KeyError(key)
        return found.slice(0, 1).to_pylist()[0]

    def image_path(self, key: str) -> Path | None:
        """Where the study read the image `key` (None: no longer there): an image file (by its
        suffix) inside the study's source folder (a list's: its folder), or one its list or
        label file names. A key never leads out of the source, and nothing but an image is
        returned."""
        root = Path((self.summary.get("source") or {}).get("path") or "")
        if not str(root):
            return None
        listed = root.suffix.lower() in (".csv", ".jsonl")
        folder = root.parent if listed else root  # a list's relative paths: from its folder
        candidate = (folder / key).resolve()
        found = None
        if candidate.is_relative_to(folder.resolve()) and candidate.is_file():
            found = candidate
        else:
            found = self._listed(root).get(key)
        return found if found is not None and found.suffix.lower() in IMAGE_SUFFIXES else None

    def _listed(self, root: Path) -> dict[str, Path]:
        """The source's images by key, read once (a layout whose keys are not paths from the
        source's root: the Kaggle download's, a list's)."""
        if not hasattr(self, "_paths"):
            from sa_viz.data.sources import SourceError, read_source

            try:
                items = read_source(root).items
            except (SourceError, OSError):
                items = []
            self._paths = {item.key: item.path for item in items}
        return self._paths


def _analysis_numbers(rows: pa.Table) -> list[str]:
    """The analysis numbers the rows hold, in the order first met."""
    names: dict[str, None] = {}
    for chunk in rows["analyses"].chunks:
        names |= dict.fromkeys(chunk.keys.unique().to_pylist())
    return list(names)


def _class_names(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    names = pa.array([f"{i} {class_name(i)}" for i in range(NUM_CLASSES)])
    indices = pc.fill_null(values, -1).to_numpy(zero_copy_only=False)
    found = np.where(indices >= 0, indices, 0)
    return pc.if_else(pa.array(indices >= 0), names.take(pa.array(found)), None)


def _cell(column: Column, value: Any) -> Any:
    if column.kind == "class":
        return "–" if value is None else f"{value} {class_name(value)}"
    if column.kind == "right":
        return "–" if value is None else ("✓" if value else "✗")
    if column.kind == "number":
        return "–" if value is None or value != value else f"{value:.3f}"
    return value
