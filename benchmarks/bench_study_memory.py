"""A study's resident memory over many images (issue 16, point 6: growth ≤ 50 MB over 2,000).

Runs `run_study` (the local engine, as `sa-viz study` runs it, report included) on `--images`
copies of the example photos and samples this process's resident memory (VmRSS) every half
second. Prints its peak and median while each part of 256 images is computed, and the growth
from the second part (by then the models, the batches and the libraries' working memory are in
place) to the last, and to the highest later peak. The end (the last part, study.json and the
report, which reads the whole study) is printed apart. Decoding processes, when there are
any, are separate processes and not counted.

    SA_VIZ_WEIGHTS_DIR=DIR python benchmarks/bench_study_memory.py [--images 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="default: as sa-viz study")
    args = parser.parse_args()

    from bench_study import example_copies  # this folder: the script's own

    from sa_viz import studies
    from sa_viz.models.weights import load_models

    models = load_models(allow_download=False, names=["resnet50", "sa_resnet50"], device="cpu")
    samples: list[tuple[float, int, float]] = []  # (time, parts written, RSS in MB)
    done = threading.Event()
    with tempfile.TemporaryDirectory() as folder:
        root = example_copies(Path(folder) / "images", args.images)
        out = Path(folder) / "study"

        def sample() -> None:
            while not done.wait(0.5):
                parts = len(list((out / "rows").glob("part-*.parquet")))
                samples.append((time.monotonic(), parts, rss_mb()))

        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        studies.run_study(root, out, models, batch_size=args.batch_size, workers=args.workers,
                        progress=False)  # fmt: skip
        done.set()
        seconds = time.monotonic() - started
    by_part: dict[int, list[float]] = {}
    for _, parts, rss in samples:
        by_part.setdefault(parts, []).append(rss)
    *computing, end = sorted(by_part)
    print(f"{args.images} images in {seconds:.0f} s ({args.images / seconds:.2f} images/s)")
    for what, stat in (("peak", max), ("median", statistics.median)):
        print(
            f"{what} RSS (MB) while each part is computed: "
            + ", ".join(f"{k + 1}: {stat(by_part[k]):.0f}" for k in computing)
            + f"; the end (last part, study.json, report): {stat(by_part[end]):.0f}"
        )
    median = {k: statistics.median(by_part[k]) for k in computing}
    peak = {k: max(by_part[k]) for k in computing}
    second, last = computing[1], computing[-1]
    highest = max(peak[k] for k in computing[2:])
    print(
        f"growth from the second part to the last: median {median[last] - median[second]:+.0f} "
        f"MB, peak {peak[last] - peak[second]:+.0f} MB; highest later peak less the second "
        f"part's: {highest - peak[second]:+.0f} MB (target: growth ≤ 50)"
    )


if __name__ == "__main__":
    main()
