"""The sanity checks' seconds per image (issue 29, point 3): the MPRT (18 steps cascading and 18
independent, ResNet-50's blocks), the random logit test and the gates under randomisation, on
one 224 × 224 photo, Grad-CAM at layer4, against one Grad-CAM pass of the same model (the unit
they are made of: the MPRT runs 37 passes, the random logit test 2).

Medians of `--runs` runs, each check once per run, in turn.

    SA_VIZ_WEIGHTS_DIR=DIR python benchmarks/bench_sanity.py [--runs 3] [--models a,b]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="resnet50,sa_resnet50")
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--method", default="gradcam")
    args = parser.parse_args()

    import torch

    from sa_viz.analyses import ImageInput, analyses
    from sa_viz.cam import compute_cam
    from sa_viz.data.examples import EXAMPLES_DIR
    from sa_viz.data.preprocess import prepare_image
    from sa_viz.models.weights import load_models

    print(f"torch threads: {torch.get_num_threads()}")
    models = load_models(allow_download=False, names=args.models.split(","), device="cpu")
    x = prepare_image(EXAMPLES_DIR / "chelsea.jpg", crop=True).tensor
    checks = ("mprt", "random_logit", "gate_randomisation")
    for name, m in models.items():
        target = int(compute_cam(m.module, x, None, args.layer, args.method).class_idx[0])
        image = ImageInput(m.module, x, None, target, (), args.layer, args.method)
        times: dict[str, list[float]] = {}
        for run in range(args.runs):
            times.setdefault("one CAM pass", []).append(
                seconds(lambda: compute_cam(m.module, x, target, args.layer, args.method))  # noqa: B023
            )
            for check in checks:
                times.setdefault(check, []).append(
                    seconds(lambda: analyses()[check].per_image(image))  # noqa: B023
                )
            said = ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            print(f"{name} run {run + 1}: {said}")
        medians = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{name} medians ({args.method} at {args.layer}, s per image): "
            + ", ".join(f"{k} {v:.2f}" for k, v in medians.items())
            + f"; MPRT / one pass {medians['mprt'] / medians['one CAM pass']:.1f}"
        )


if __name__ == "__main__":
    main()
