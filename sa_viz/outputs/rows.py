"""A study's rows: the Parquet schema of its parts (one row per image and model), reading them
(as a table, or as one explanation document per image), and refusing a rows folder that holds
anything else."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sa_viz.outputs.document import study_document

PART = re.compile(r"part-\d{5}\.parquet")

UNIT = pa.struct(
    [
        ("unit", pa.string()),
        ("groups", pa.int32()),
        ("channel", pa.list_(pa.float32())),
        *((name, pa.list_(pa.float32())) for name in ("spatial_mean", "spatial_std")),
        *((name, pa.list_(pa.float32())) for name in ("spatial_entropy", "peak_y", "peak_x")),
    ]
)
SIZE = pa.struct([("width", pa.int32()), ("height", pa.int32())])
SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("sha256", pa.string()),
        ("model", pa.string()),
        ("label", pa.int32()),
        ("top5", pa.list_(pa.int32())),
        ("top5_p", pa.list_(pa.float32())),
        ("correct1", pa.bool_()),
        ("correct5", pa.bool_()),
        ("target", pa.int32()),
        ("target_p", pa.float32()),
        ("cam_raw", pa.list_(pa.float32())),
        ("cam_shape", pa.list_(pa.int32())),
        ("pearson", pa.float32()),
        ("iou_top20", pa.float32()),
        ("units", pa.list_(UNIT)),
        ("analyses", pa.map_(pa.string(), pa.float64())),
        # Added later (`ADDED_LATER`): a part written before has none (read as null).
        ("input_size", SIZE),
        ("original_size", SIZE),
        ("notes", pa.list_(pa.string())),
    ]
)


def read_rows(out: Path, **options: Any) -> pa.Table:
    """The study's rows (`pq.read_table` options: columns, filters), with the study's schema:
    an empty table, not an error, when no image could be read. `ForeignRows` if the rows
    folder holds anything but the study's parts."""
    study_parts(out)
    return pq.read_table(out / "rows", schema=SCHEMA, **options)


def read_documents(out: str | Path) -> Iterator[dict[str, Any]]:
    """Each image of the study in `out` as an explanation document (`sa_viz.outputs.document`),
    in the order studied, reading one part at a time. What a study does not keep is not in
    them: analysis details, and the sizes and notes of a study written before they were
    recorded (null)."""
    out = Path(out)
    summary = json.loads((out / "study.json").read_text())
    columns = [name for name in SCHEMA.names if name not in ("cam_raw", "cam_shape")]
    for part in sorted((out / "rows").glob("part-*.parquet")):
        images: dict[str, list[dict[str, Any]]] = {}  # an image's rows are all in one part
        for row in pq.read_table(part, schema=SCHEMA, columns=columns).to_pylist():
            images.setdefault(row["key"], []).append(row)
        for rows in images.values():
            yield study_document(rows, summary)


# The columns a part written by an earlier version lacks: such a part is the study's still.
ADDED_LATER = ("input_size", "original_size", "notes")
EARLIER_SCHEMA = pa.schema([field for field in SCHEMA if field.name not in ADDED_LATER])


class ForeignRows(ValueError):
    """A study's rows folder holding a file that is not one of its parts."""


def study_parts(out: Path) -> list[Path]:
    """The study's parts, in order. `ForeignRows`, naming it, for any other file in the rows
    folder that readers of the rows would read with them (pyarrow and pandas skip only names
    that start with "." or "_"), and for a part whose schema is not the study's: mixed in, its
    rows would be read as rows of nulls (pandas: NaN), or end the reading in Arrow's words."""
    parts = []
    for path in sorted((out / "rows").iterdir()):
        if path.name.startswith((".", "_")):
            continue
        if not PART.fullmatch(path.name) or not path.is_file():
            raise ForeignRows(f"{path} is not a part of this study; {MOVE_IT}")
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError):
            raise ForeignRows(f"{path} is not a Parquet file; {MOVE_IT}") from None
        if not any(schema.remove_metadata().equals(s) for s in (SCHEMA, EARLIER_SCHEMA)):
            raise ForeignRows(
                f"{path} is not a part of this study: it {_differences(schema)}; {MOVE_IT}"
            )
        parts.append(path)
    return parts


MOVE_IT = "move it out of the rows folder, or choose another --out"


def _differences(schema: pa.Schema) -> str:
    """How a part's columns differ from a study's, in a few words."""

    def names(found: list[str]) -> str:
        return ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")

    missing = [n for n in SCHEMA.names if n not in schema.names]
    extra = [n for n in schema.names if n not in SCHEMA.names]
    other = [n for n in SCHEMA.names if n in schema.names and schema.field(n) != SCHEMA.field(n)]
    said = [f"lacks the columns {names(missing)}"] if missing else []
    said += [f"has columns a study has not ({names(extra)})"] if extra else []
    said += [f"has {names(other)} of another type"] if other else []
    return ", and ".join(said) or "has its columns in another order"
