"""Speed of the explanation against the floor and the peers, measured in one process.

    python benchmarks/bench_explain.py [--runs 9] [--warmup 3] [--size 224] [--no-tuning]

Batch 1, a 224×224 input, medians of `--runs` interleaved rounds after `--warmup` rounds (each
round times every candidate once, so machine noise spreads over all of them):

- floor: plain inference-mode forwards of torchvision's ResNet-50 and of SA-ResNet-50 with the
  official eager SA unit (the op sequence of SA-Net's `sa_layer`: reshape, chunk, pooled
  channel gate, GroupNorm spatial gate, cat, reshape-permute shuffle), no hooks;
- ours: `explain_models`, as the server's engine runs it: both models in turn (plain modules,
  one forward each): top-5, Grad-CAM at layer4 and every attention unit's gates; also our
  SA-ResNet-50's plain forward. The levers the engine no longer pulls (BatchNorm folding, the
  two models side by side) are measured by bench_levers.py;
- peers: pytorch-grad-cam's GradCAM and Captum's LayerGradCam for both models (on the eager
  models), each with its target layer `layer4[-1]` and each model's top-1.

Prints each median and the ratios. Weights are fixed-seed random: speed does not depend on their
values. Captum is a benchmark-only dependency (benchmarks/requirements.txt).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torchvision.models import resnet50 as torchvision_resnet50

from sa_viz.app.runtime import tune_allocator
from sa_viz.data.preprocess import prepare_image
from sa_viz.models import resnet50, sa_resnet50
from sa_viz.models.attention import ShuffleAttention
from sa_viz.models.device import resolve_device
from sa_viz.models.weights import LoadedModel, WeightsStatus
from sa_viz.pipeline.explain import explain_models


def sa_modules(model: torch.nn.Module) -> list[ShuffleAttention]:
    """Every SA unit of `model`, in order."""
    return [m for m in model.modules() if isinstance(m, ShuffleAttention)]


def seeded(builder, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder().eval()
        for unit in sa_modules(model):  # trained-looking gates: speed must not depend on it
            for p in (unit.cweight, unit.sweight):
                p.data.normal_(0, 0.5)
    return model


def official_sa_forward(unit, x: torch.Tensor) -> torch.Tensor:
    """DESIGN.md's SA formulas in the eager op sequence of the official unit: grouped reshape,
    chunk, pooled channel gate, GroupNorm spatial gate, cat, then the 2-group shuffle as a
    reshape-permute-reshape. The "official eager" SA-ResNet-50 of the floor."""
    b, _, h, w = x.shape
    halves = x.reshape(b * unit.groups, -1, h, w).chunk(2, dim=1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(halves[0], 1)
    by_channel = halves[0] * torch.sigmoid(unit.cweight * pooled + unit.cbias)
    by_pixel = halves[1] * torch.sigmoid(unit.sweight * unit.gn(halves[1]) + unit.sbias)
    joined = torch.cat([by_channel, by_pixel], dim=1).reshape(b, -1, h, w)
    return joined.reshape(b, 2, -1, h, w).permute(0, 2, 1, 3, 4).reshape(b, -1, h, w)


def official_eager_sa_resnet50(seed: int) -> torch.nn.Module:
    model = seeded(sa_resnet50, seed)
    for unit in sa_modules(model):
        unit.forward = types.MethodType(official_sa_forward, unit)
    return model


def median_rounds(candidates: dict, runs: int, warmup: int, sync=lambda: None) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(warmup + runs):
        for name, fn in candidates.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()  # a GPU runs asynchronously: time until its work is done
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--no-tuning", action="store_true", help="skip sa_viz.app.runtime tuning")
    parser.add_argument("--no-peers", action="store_true", help="skip pytorch-grad-cam, Captum")
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or auto: where every candidate runs"
    )
    args = parser.parse_args()
    tuned = False if args.no_tuning else tune_allocator()
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    eager = {
        "resnet50": seeded(torchvision_resnet50, 0).to(device),
        "sa_resnet50": official_eager_sa_resnet50(1).to(device),
    }
    status = WeightsStatus("bench", "bench", True, "random", "random")
    plain = {
        "resnet50": LoadedModel("resnet50", seeded(resnet50, 0).to(device), status),
        "sa_resnet50": LoadedModel("sa_resnet50", seeded(sa_resnet50, 1).to(device), status),
    }
    rng = np.random.default_rng(0)
    image = prepare_image(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8))
    x = image.tensor.to(device)

    def forward(model):
        with torch.inference_mode():
            model(x)

    candidates = {
        "resnet50 eager": lambda: forward(eager["resnet50"]),
        "sa_resnet50 eager": lambda: forward(eager["sa_resnet50"]),
        "resnet50 ours": lambda: forward(plain["resnet50"].module),
        "sa_resnet50 ours": lambda: forward(plain["sa_resnet50"].module),
        "ours: explain_models": lambda: explain_models(plain, image),
    }
    if not args.no_peers:
        from pytorch_grad_cam import GradCAM

        grad_cams = {n: GradCAM(model=m, target_layers=[m.layer4[-1]]) for n, m in eager.items()}

        def pytorch_grad_cam_both():
            for model in grad_cams.values():
                model(input_tensor=x, targets=None)  # targets None: the top-1
                model.model.zero_grad(set_to_none=True)

        candidates["pytorch-grad-cam GradCAM both"] = pytorch_grad_cam_both
        try:
            from captum.attr import LayerGradCam  # benchmarks/requirements.txt
        except ImportError:
            print("captum is not installed: pip install -r benchmarks/requirements.txt")
        else:
            captums = {n: LayerGradCam(m, m.layer4[-1]) for n, m in eager.items()}

            def captum_both():
                for name, attribution in captums.items():
                    with torch.no_grad():
                        top1 = int(eager[name](x).argmax())
                    attribution.attribute(x, target=top1)

            candidates["captum LayerGradCam both"] = captum_both

    medians = median_rounds(candidates, args.runs, args.warmup, sync)
    floor = medians["resnet50 eager"] + medians["sa_resnet50 eager"]
    ours = medians["ours: explain_models"]
    print(
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} CPU threads, "
        f"input {args.size}², "
        f"batch 1, medians of {args.runs} rounds after {args.warmup}, "
        f"allocator tuning {'on' if tuned else 'off'}"
    )
    for name, value in medians.items():
        print(f"  {name:32s} {value * 1000:8.1f} ms")
    print(f"  {'floor (both eager forwards)':32s} {floor * 1000:8.1f} ms")
    ratios = {
        "ours / floor": ours / floor,
        "SA ours / ResNet-50 eager": medians["sa_resnet50 ours"] / medians["resnet50 eager"],
        "SA ours / SA official eager": medians["sa_resnet50 ours"] / medians["sa_resnet50 eager"],
        "SA eager / ResNet-50 eager": medians["sa_resnet50 eager"] / medians["resnet50 eager"],
    }
    if not args.no_peers:
        ratios["pytorch-grad-cam / ours"] = medians["pytorch-grad-cam GradCAM both"] / ours
        if "captum LayerGradCam both" in medians:
            ratios["captum / ours"] = medians["captum LayerGradCam both"] / ours
        ratios["pytorch-grad-cam / floor"] = medians["pytorch-grad-cam GradCAM both"] / floor
        if "captum LayerGradCam both" in medians:
            ratios["captum / floor"] = medians["captum LayerGradCam both"] / floor
    for name, value in ratios.items():
        print(f"  {name:40s} {value:6.3f}")
    print("targets: ours/floor ≤ 1.15; SA / ResNet-50 ≤ 1.10")


if __name__ == "__main__":
    main()
