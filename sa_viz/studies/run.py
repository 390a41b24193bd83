"""`run_study`: a study's images in batches through the models, written part by part, resumed
where an earlier run stopped (the images already in a part are skipped; other settings than the
first run's are refused), then `study.json` and the report.

The rows' schema and the files are `sa_viz.outputs.study`'s and `sa_viz.outputs.rows`'s; the
computation is `sa_viz.pipeline.study`'s (`local_batches`) or, with `engine="ray"`,
`sa_viz.pipeline.study_ray`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sa_viz.cam import DEFAULT_LAYER
from sa_viz.data.preprocess import DEFAULT_LIMITS, Limits
from sa_viz.data.sources import Source, read_source, with_images
from sa_viz.models.weights import LoadedModel
from sa_viz.outputs import files
from sa_viz.outputs.rows import SCHEMA, study_parts
from sa_viz.outputs.study import describe, describe_analyses, write_part
from sa_viz.outputs.study_report import write_report
from sa_viz.pipeline.study import local_batches
from sa_viz.pipeline.study_ray import ray_batches

PART_SIZE = 256  # images per Parquet part: what an interruption can cost at most


class SettingsChanged(ValueError):
    """A study folder resumed with other models, layer, crop or analyses than it began with."""


def same_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write the study's settings on its first run; on a later one (a resume), refuse other
    settings: the rows already written would not match the new ones."""
    path = out / "settings.json"
    if not path.exists() or not any((out / "rows").glob("part-*.parquet")):
        files.write_json(path, settings)
        return
    before = json.loads(path.read_text())
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        was = ", ".join(f"{k} {before.get(k)}" for k in changed)
        raise SettingsChanged(
            f"{out} holds a study begun with {was}; resume it with those settings, or choose "
            "another --out"
        )


def done_keys(parts: Sequence[Path]) -> dict[str, str | None]:
    """The images already in the study's parts (what a resumed run skips), with their files'
    sha256."""
    keys: dict[str, str | None] = {}
    for part in parts:
        table = pq.read_table(part, columns=["key", "sha256"])
        keys.update(zip(*(table.column(c).to_pylist() for c in ("key", "sha256")), strict=True))
    return keys


def first_keys(done: dict[str, str | None]) -> dict[str, str]:
    """sha256 → the first key with it, of the images already studied."""
    seen: dict[str, str] = {}
    for key, digest in done.items():
        if digest is not None:
            seen.setdefault(digest, key)
    return seen


def duplicates(records: Sequence[dict[str, Any]], seen: dict[str, str]) -> list[str]:
    """Problems for the images in `records` whose file is one already seen under another key
    (`seen`: sha256 → the first key, updated); both are studied, as the dataset has them."""
    found: list[str] = []
    for record in records:
        digest, key = record["sha256"], record["key"]
        first = key if digest is None else seen.setdefault(digest, key)
        problem = f"{key}: the same file as {first} (both studied)"
        if first != key and problem not in found:
            found.append(problem)
    return found


def run_study(
    source: str | Path | Source,
    out: str | Path,
    models: Mapping[str, LoadedModel],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    layer: str = DEFAULT_LAYER,
    crop: bool = True,
    workers: int | None = None,
    progress: bool = True,
    engine: str = "local",
    address: str | None = None,
    report_classes: Sequence[int] | None = None,
    report: bool = True,
    analyses: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    title: str | None = None,
    figure_formats: Sequence[str] = ("png",),
    figure_width: float | None = None,
) -> dict[str, Any]:
    """Study `source` with `models` into the folder `out`; returns what `study.json` holds.

    `engine` "local" computes in this process with `workers` decoding processes (None: see
    `decoding_processes`); "ray" on a Ray cluster (at `address`, or a local instance) with
    `workers` actors, each holding the models (None: one per GPU, else 2).
    `report_classes`: the classes of the report's per-class gate figure (default: the most
    frequent labels); `report=False` writes no report (`write_report` writes it later).
    `analyses`: the analyses (`sa_viz.analyses`) to run on every image and model. `limits`:
    the images' bounds (the local engine; the server passes its own). `title`: what the report
    calls the source (default: its path). A source without images is an `EmptySource` (a
    ValueError) naming where it looked and the layouts `read_source` knows. `figure_formats`,
    `figure_width`: the report's figures (PNG always, for its page; SVG, PDF besides) and their
    width in inches (`render.paper`).
    """
    from tqdm import tqdm

    started = time.monotonic()
    # A source without images ends here, naming where it looked (before: 0 images studied, 0
    # problems, nothing said).
    source = with_images(source) if isinstance(source, Source) else read_source(source)
    out = Path(out)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    parts = study_parts(out)  # before anything is written
    same_settings(out, {"models": list(models), "layer": layer, "crop": crop,
                        "analyses": list(analyses)})  # fmt: skip
    items = source.items[:limit] if limit is not None else list(source.items)
    done = done_keys(parts)
    todo = [item for item in items if item.key not in done]
    seen = first_keys(done)
    problems_file = out / "problems.txt"
    # Each problem once, in the order met (a resumed run meets its unreadable files again).
    problems = dict.fromkeys(source.problems)
    if problems_file.exists():  # from an earlier run of this study
        problems.update(dict.fromkeys(problems_file.read_text().splitlines()))
    # After the last part's number: their count would be the last one's after a gap.
    part = int(parts[-1].stem.removeprefix("part-")) + 1 if parts else 0
    bar = tqdm(total=len(items), initial=len(items) - len(todo), unit="image", disable=not progress)
    options = {"batch_size": batch_size, "layer": layer, "crop": crop, "workers": workers}
    options["analyses"] = tuple(analyses)
    if engine == "ray":
        batches = ray_batches(todo, models, address=address, **options)
    elif engine == "local":
        batches = local_batches(todo, models, limits=limits, **options)
    else:
        raise ValueError(f"unknown engine {engine!r}: local or ray")
    # Each batch's records become a columnar table at once (float32 columns): as Python lists
    # of floats, a part's 512 records held ~115 MB until it was written.
    tables: list[pa.Table] = []
    pending = 0  # images in `tables`
    try:
        for images, batch_records, batch_problems in batches:
            problems.update(dict.fromkeys(batch_problems + duplicates(batch_records, seen)))
            tables.append(pa.Table.from_pylist(batch_records, schema=SCHEMA))
            del batch_records
            pending += images
            bar.update(images)
            if pending >= PART_SIZE:
                write_part(out, part, tables, problems_file, problems)
                part, tables, pending = part + 1, [], 0
        write_part(out, part, tables, problems_file, problems)  # the rest, if any
    finally:
        bar.close()
        batches.close()
    summary = describe(out, source, models, items, list(problems), layer, crop, batch_size)
    summary["settings"] |= {"engine": engine, "analyses": list(analyses)}
    if title:  # what the report calls the source (the page's uploads live in a temp folder)
        summary["source"]["title"] = title
    summary |= {
        "analyses": describe_analyses(out, list(models), analyses),
        "seconds": round(time.monotonic() - started, 1),
    }
    files.write_json(out / "study.json", summary)
    if report:
        write_report(out, report_classes, formats=figure_formats, width=figure_width)
    return summary
