"""Four models side by side: the explanation against the four plain forwards (issue 25).

    python benchmarks/bench_four.py [--runs 9] [--warmup 2]
        [--models sa_resnet50,seresnet50.ra2_in1k,ecaresnet50d.miil_in1k,gcresnet50t.ra2_in1k]

One photo, whole-image mode (shorter side 224); each model at its own preprocessing, as the app
runs them. Medians of `--runs` interleaved rounds after `--warmup` rounds:

- floor: each model's plain inference-mode forward on its own input tensor, no hooks;
- ours: `explain_models` on the four, as the server's engine runs it: top-5, Grad-CAM at each
  model's last CAM layer, every attention unit's gates, each CAM mapped onto the display image.

Memory: the peak resident set of a fresh process that loads the models and runs the floor, then
of one that runs ours (`resource.getrusage`, the same models loaded in both): the difference is
what the explanation adds beyond the peak of building and loading the models. Weights are
fixed-seed random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sa_viz.data.examples import EXAMPLES_DIR
from sa_viz.data.preprocess import prepare_image
from sa_viz.models import get_model, parse_models
from sa_viz.models.weights import LoadedModel, WeightsStatus
from sa_viz.pipeline.explain import explain_models

DEFAULT = "sa_resnet50,seresnet50.ra2_in1k,ecaresnet50d.miil_in1k,gcresnet50t.ra2_in1k"


def loaded(names: list[str]) -> dict[str, LoadedModel]:
    models = {}
    for i, name in enumerate(names):
        torch.manual_seed(i)
        status = WeightsStatus(
            model=name, title=get_model(name).title, pretrained=True, source="seeded", message=""
        )
        models[name] = LoadedModel(name, get_model(name).builder().eval(), status)
    return models


def setup(names: list[str]):
    models = loaded(names)
    entries = [get_model(n).preprocessing for n in names]
    image = prepare_image(EXAMPLES_DIR / "chelsea.jpg", preprocessing=entries)
    inputs = {n: image.input_for(get_model(n).preprocessing) for n in names}

    def floor() -> None:
        with torch.inference_mode():
            for name, model in models.items():
                model.module(inputs[name])

    def ours() -> None:
        explain_models(models, image)

    return {"floor: four plain forwards": floor, "ours: explain_models": ours}


def child(names: list[str], which: str) -> None:
    """Run one candidate a few times in this fresh process; print its peak RSS in MB."""
    candidates = setup(names)
    run = candidates[which]
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(3):
        run()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "loaded_mb": loaded_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = list(parse_models(args.models))
    if args.child:
        child(names, args.child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; models: {names}")
    candidates = setup(names)
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for round_ in range(args.warmup + args.runs):
        for key, run in candidates.items():
            start = time.perf_counter()
            run()
            if round_ >= args.warmup:
                times[key].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for key, value in medians.items():
        spread = ", ".join(f"{t * 1000:.0f}" for t in times[key])
        print(f"{key}: median {value:.1f} ms ({spread})")
    floor, ours = medians.values()
    print(f"ours / floor: {ours / floor:.3f} (target <= 1.15)")
    peaks = {}
    for key in candidates:
        out = subprocess.run(
            [sys.executable, __file__, "--models", args.models, "--child", key],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[key] = found["peak_mb"]
        print(
            f"{key}: peak RSS {found['peak_mb']:.0f} MB, {found['loaded_mb']:.0f} MB before the "
            f"first run (a fresh process: building the models peaks too)"
        )
    (floor_mb, ours_mb) = peaks.values()
    print(f"ours / floor peak RSS: {ours_mb / floor_mb:.3f} (+{ours_mb - floor_mb:.0f} MB)")


if __name__ == "__main__":
    main()
