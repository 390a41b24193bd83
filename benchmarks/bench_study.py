"""A study's rate against its baselines, measured in one run (issue 16, point 6).

- floor: the batched plain forward of the same two models on the same decoded batches (no
  gates, no CAM, no decoding, no writing);
- study: `run_study` on the same images as `sa-viz study` runs it (decoding in worker
  processes, Grad-CAM, every gate summary, Parquet), without the report (a fixed cost, timed
  once and printed apart);
- loop (`--loop`): what a script does without SA-Viz: one image at a time, pytorch-grad-cam's
  `GradCAM` plus forward hooks on every SA unit's gates, for each model;
- ray (`--ray`): `run_study(engine="ray")` with 2 workers on a local Ray instance started here
  (the instance's start is not timed; the workers' start and model transfer are).

Each run measures every variant once, in turn; prints images per second and the ratios of the
medians of `--runs` runs.

    SA_VIZ_WEIGHTS_DIR=DIR python benchmarks/bench_study.py [--images 64] [--batch-size 16]
        [--workers 2] [--runs 3] [--loop] [--ray]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def example_copies(root: Path, count: int) -> Path:
    """`count` copies of the example photos in the new folder `root` (also bench_study_memory)."""
    from sa_viz.data.examples import EXAMPLES, EXAMPLES_DIR

    root.mkdir()
    for i in range(count):
        name = EXAMPLES[i % len(EXAMPLES)]
        shutil.copy(EXAMPLES_DIR / name, root / f"{i:05d}-{name}")
    return root


def loop_rate(models, items) -> float:
    """pytorch-grad-cam's GradCAM and gate hooks, one image at a time (the script SA-Viz
    replaces)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from sa_viz.data.preprocess import prepare_image
    from sa_viz.models.attention import ShuffleAttention

    cams = {name: GradCAM(m.module, target_layers=[m.module.layer4]) for name, m in models.items()}
    gates: list = []

    def keep(_module, _inputs, output) -> None:
        gates.append(output.detach())

    handles = [
        gate.register_forward_hook(keep)
        for m in models.values()
        for unit in m.module.modules()
        if isinstance(unit, ShuffleAttention)
        for gate in (unit.channel_gate, unit.spatial_gate)
    ]
    started = time.perf_counter()
    try:
        for item in items:
            x = prepare_image(item.path, crop=True).tensor
            for cam in cams.values():
                gates.clear()
                cam(input_tensor=x, targets=[ClassifierOutputTarget(int(item.label or 0))])
    finally:
        for handle in handles:
            handle.remove()
    return len(items) / (time.perf_counter() - started)


def timed(run: Callable[[], object], images: int) -> float:
    started = time.perf_counter()
    run()
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="default: as sa-viz study")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop", action="store_true", help="also the pytorch-grad-cam loop")
    parser.add_argument("--ray", action="store_true", help="also the Ray engine, 2 workers")
    args = parser.parse_args()

    import torch

    from sa_viz.data.preprocess import to_tensor
    from sa_viz.data.sources import read_source
    from sa_viz.models.weights import load_models
    from sa_viz.outputs.study_report import write_report
    from sa_viz.pipeline.study import decoded
    from sa_viz.studies import run_study

    if args.ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    models = load_models(allow_download=False, names=["resnet50", "sa_resnet50"], device="cpu")
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = example_copies(Path(folder) / "images", args.images)
        source = read_source(root)
        batches = list(decoded(source.items, None, args.batch_size))
        tensors = [torch.cat([to_tensor(d.pixels) for d in b]) for b in batches]

        def floor() -> None:
            with torch.inference_mode():
                for x in tensors:
                    for loaded in models.values():
                        loaded.module(x)

        def study(run: int, engine: str) -> Callable[[], object]:
            options = {"batch_size": args.batch_size, "workers": args.workers}
            out = Path(folder) / f"{engine}-{run}"
            return lambda: run_study(
                source, out, models, progress=False, report=False, engine=engine, **options
            )

        for run in range(args.runs):
            rates.setdefault("floor", []).append(timed(floor, args.images))
            rates.setdefault("study", []).append(timed(study(run, "local"), args.images))
            if args.ray:
                rates.setdefault("ray", []).append(timed(study(run, "ray"), args.images))
            if args.loop:
                rates.setdefault("loop", []).append(loop_rate(models, source.items))
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rates.items()))
        started = time.perf_counter()
        write_report(Path(folder) / "local-0")
        report_seconds = time.perf_counter() - started
    m = {k: statistics.median(v) for k, v in rates.items()}
    print("median images/s: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
    print(f"study time / floor time: {m['floor'] / m['study']:.2f} (target ≤ 1.3)")
    if "loop" in m:
        print(f"study rate / pytorch-grad-cam loop rate: {m['study'] / m['loop']:.2f} (target ≥ 4)")
    if "ray" in m:
        print(f"ray rate / local rate: {m['ray'] / m['study']:.2f} (target ≥ 0.8)")
    print(f"the report, once: {report_seconds:.1f} s")


if __name__ == "__main__":
    main()
