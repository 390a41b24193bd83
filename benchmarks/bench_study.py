"""A study's rate against its floor, measured in one run (issue 16's point 6, first part).

The floor: the batched plain forward of the same two models on the same decoded batches (no
gates, no CAM, no decoding, no writing). The study: `run_study` on the same images, the way
`sa-viz study` runs it (decoding in worker processes, Grad-CAM, every gate summary, Parquet).
Prints images per second of each and their ratio; medians of `--runs` runs.

    SA_VIZ_WEIGHTS_DIR=DIR python benchmarks/bench_study.py [--images 64] [--batch-size 16]
        [--workers 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import torch

    from sa_viz.data.examples import EXAMPLES, EXAMPLES_DIR
    from sa_viz.data.preprocess import to_tensor
    from sa_viz.data.sources import read_source
    from sa_viz.models.weights import load_models
    from sa_viz.outputs.study import run_study
    from sa_viz.pipeline.study import decoded

    models = load_models(allow_download=False, names=["resnet50", "sa_resnet50"])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        root.mkdir()
        for i in range(args.images):
            name = EXAMPLES[i % len(EXAMPLES)]
            shutil.copy(EXAMPLES_DIR / name, root / f"{i:05d}-{name}")
        source = read_source(root)
        batches = list(decoded(source.items, None, args.batch_size))
        tensors = [torch.cat([to_tensor(d.pixels) for d in b]) for b in batches]
        floor, study = [], []
        for run in range(args.runs):
            started = time.perf_counter()
            with torch.inference_mode():
                for x in tensors:
                    for loaded in models.values():
                        loaded.module(x)
            floor.append(args.images / (time.perf_counter() - started))
            out = Path(folder) / f"study-{run}"
            started = time.perf_counter()
            run_study(
                source,
                out,
                models,
                batch_size=args.batch_size,
                workers=args.workers,
                progress=False,
            )
            study.append(args.images / (time.perf_counter() - started))
            print(f"run {run + 1}: floor {floor[-1]:.1f} images/s, study {study[-1]:.1f} images/s")
    f, s = statistics.median(floor), statistics.median(study)
    print(
        f"median: floor {f:.1f} images/s, study {s:.1f} images/s; study time / floor time "
        f"{f / s:.2f} (target ≤ 1.3)"
    )


if __name__ == "__main__":
    main()
