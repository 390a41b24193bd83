"""The study browser at ImageNet's scale (issue 28): a study of 50,000 images and two models,
its rows generated in the study's own schema and parts (1,000 images a part, as `sa-viz study`
writes them; 7 × 7 CAMs, the SA model's 16 units with 64 groups of gates, three analysis numbers
per model), opened as the app opens it (`StudyTable`), then sorted, filtered and paged.

Targets: the study opens in under 5 s; a sort or a filter answers in under 300 ms of server
time (medians of `--repeat` runs; the page's other work, drawing the thumbnails of one page, is
timed too but is a separate event). Prints one line per step.

    python benchmarks/bench_browse.py [--images 50000] [--repeat 5] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from sa_viz.outputs import files
from sa_viz.outputs.rows import SCHEMA

MODELS = ("resnet50", "sa_resnet50")
PART = 1000  # images per part, as the study writes them
UNITS = 16  # SA-ResNet-50's units
GROUPS = 64


def make_study(folder: Path, images: int, seed: int = 0) -> Path:
    """A study folder of `images` images under `MODELS` (rows in the study's schema, random but
    shaped as a real study's: labels, top-5, CAMs, gates, analyses) and its study.json."""
    rng = np.random.default_rng(seed)
    (folder / "rows").mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, images, PART)):
        keys = [
            f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(start, min(images, start + PART))
        ]
        labels = rng.integers(0, 1000, len(keys))
        rows: dict[str, list] = {name: [] for name in SCHEMA.names}
        for key, label in zip(keys, labels, strict=True):
            pearson, iou = float(rng.uniform(-1, 1)), float(rng.uniform(0, 1))
            for m, model in enumerate(MODELS):
                top5 = rng.choice(1000, 5, replace=False)
                if rng.uniform() < 0.75:
                    top5[0] = label
                p = np.sort(rng.dirichlet(np.ones(6)))[::-1][:5].astype(np.float32)
                gated = model == "sa_resnet50"
                units = [
                    {
                        "unit": f"layer{u}",
                        "groups": GROUPS,
                        "channel": rng.uniform(0, 1, GROUPS * 2).astype(np.float32).tolist(),
                        **{
                            name: rng.uniform(0, 1, GROUPS).astype(np.float32).tolist()
                            for name in ("spatial_mean", "spatial_std", "spatial_entropy")
                        },
                        "peak_y": rng.uniform(0, 1, GROUPS).astype(np.float32).tolist(),
                        "peak_x": rng.uniform(0, 1, GROUPS).astype(np.float32).tolist(),
                    }
                    for u in range(UNITS if gated else 0)
                ]
                values = {
                    "key": key,
                    "sha256": f"{hash((key, m)) & (2**64 - 1):016x}",
                    "model": model,
                    "label": int(label),
                    "top5": top5.tolist(),
                    "top5_p": p.tolist(),
                    "correct1": bool(top5[0] == label),
                    "correct5": bool(label in top5),
                    "target": int(label),
                    "target_p": float(p[0]),
                    "cam_raw": rng.uniform(0, 1, 49).astype(np.float32).tolist(),
                    "cam_shape": [7, 7],
                    "pearson": pearson,
                    "iou_top20": iou,
                    "units": units,
                    "analyses": [
                        ("deletion_auc", float(rng.uniform())),
                        ("insertion_auc", float(rng.uniform())),
                        ("pointing_hit", float(rng.integers(0, 2))),
                    ],
                    "input_size": {"width": 224, "height": 224},
                    "original_size": {"width": 500, "height": 375},
                    "notes": [],
                }
                for name, value in values.items():
                    rows[name].append(value)
        files.write_parquet(
            folder / "rows" / f"part-{part:05d}.parquet", pa.Table.from_pydict(rows, schema=SCHEMA)
        )
    files.write_json(
        folder / "study.json",
        {
            "source": {"path": str(folder / "images"), "layout": "imagenet-val"},
            "models": {m: {"title": m} for m in MODELS},
            "settings": {"layer": "layer4", "crop": True, "method": "gradcam"},
        },
    )
    return folder


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    from sa_viz.studies.browse import Query, StudyTable

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="make (or reuse) the study here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch) / "study"
        if not (folder / "study.json").exists():
            start = time.perf_counter()
            make_study(folder, args.images)
            print(f"generated {args.images} images' rows in {time.perf_counter() - start:.0f} s")
        size = sum(p.stat().st_size for p in (folder / "rows").iterdir()) / 2**20
        print(f"study: {args.images} images × {len(MODELS)} models, {size:.0f} MB of rows")

        def open_study() -> None:  # what the page's "Open" answers with, besides the report
            t = StudyTable(folder)
            t.classes()
            t.page(t.view(), 0, 20)

        opened = median_ms(open_study, args.repeat)
        print(
            f"open (the light columns as one row per image, its first page): {opened:.0f} ms "
            "(target 5000)"
        )
        table = StudyTable(folder)
        steps = {
            "sort by SA p, descending": Query(sort="sa_resnet50.p", descending=True),
            "sort by the image's name": Query(sort="image"),
            "filter: ResNet-50 right, SA wrong": Query(outcome="resnet50>sa_resnet50"),
            "filter: class 281 and a Pearson range": Query(
                label=281, ranges=(("pearson", 0.2, 0.8),)
            ),
            "filter and sort: every model wrong, by deletion AUC": Query(
                outcome="none", sort="sa_resnet50.deletion_auc"
            ),
        }
        for name, query in steps.items():
            ms = median_ms(lambda q=query: table.page(table.view(q), 0, 20), args.repeat)
            print(f"{name} (and its first page of 20): {ms:.0f} ms (target 300)")
        keys = [row[0] for row in table.page(table.view(), len(table) // 40, 20)]
        ms = median_ms(lambda: table.cams(keys), args.repeat)
        print(f"a page's CAMs (20 images × {len(MODELS)} models, read from the rows): {ms:.0f} ms")
        from sa_viz.studies.embedding import MAX_POINTS, draw_map

        ms = median_ms(lambda: draw_map(table, table.view(), ["sa_resnet50"]), 1)
        print(
            f"the map of the first {MAX_POINTS} images' CAMs (t-SNE, spectral clustering): "
            f"{ms / 1000:.1f} s (one run)"
        )


if __name__ == "__main__":
    main()
