"""Levers that SA-Viz does not use, measured against what it does, in one process.

    python benchmarks/bench_levers.py [--runs 9] [--size 224]

On the plain forward of both models (batch 1, inference mode, medians of `--runs` interleaved
rounds after warm-up), against the app's forward (plain modules, the two models in turn):

- BatchNorm folded into the convolutions (`fold_batchnorm` below; the server did it until
  this round);
- the two models side by side, one thread each (the server did it until this round);
- torch.compile (inductor) of each model: the compile time and the forward after it;
- oneDNN fusion through TorchScript: `torch.jit.optimize_for_inference(torch.jit.freeze(...))`;
- (oneDNN's prepacked weights in eager mode were measured in an earlier round, see
  benchmarks/README.md; the lever was dropped with the model classes' own folded path);
- batching: 4 images in one batch, per image.

Compiled and frozen modules are not the modules the app hooks (forward hooks read the gates and
the Grad-CAM activations), so either would only pay if the plain forward got much faster; this
script says whether it does here. Weights are fixed-seed random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch.nn.utils.fusion import fuse_conv_bn_eval

from sa_viz.models import resnet50, sa_resnet50


def timed(fn, x) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        fn(x)
    return time.perf_counter() - start


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with each BatchNorm folded into the convolution before it (torch's
    `fuse_conv_bn_eval`; the pairs found by ResNet's names, conv<k>/bn<k>, and in the
    downsample Sequentials): the server did this until this measurement showed ≤ 3 %."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        children = dict(module.named_children())
        if isinstance(module, torch.nn.Sequential):
            names = list(children)
            pairs = list(itertools.pairwise(names))
        else:
            pairs = [(n, "bn" + n[4:]) for n in children if n.startswith("conv")]
        for conv, bn in pairs:
            if isinstance(children.get(conv), torch.nn.Conv2d) and isinstance(
                children.get(bn), torch.nn.BatchNorm2d
            ):
                setattr(module, conv, fuse_conv_bn_eval(children[conv], children[bn]))
                setattr(module, bn, torch.nn.Identity())
    return model


def side_by_side(models: list[torch.nn.Module], pool: ThreadPoolExecutor):
    """Both models at once, one thread each (how the server ran them until this round)."""

    def one(model, x):
        torch.set_num_threads(1)
        with torch.inference_mode():
            model(x)

    return lambda x: list(pool.map(one, models, [x] * len(models)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.manual_seed(0)
    x1 = torch.randn(1, 3, args.size, args.size)
    x4 = torch.randn(4, 3, args.size, args.size)
    models = {
        name: build().eval()
        for name, build in (("resnet50", resnet50), ("sa_resnet50", sa_resnet50))
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, {args.size}²")
    candidates = {}
    pool = ThreadPoolExecutor(2)
    both = list(models.values())
    candidates["both in turn (the app)"] = (lambda x: [m(x) for m in both], x1, 1)
    candidates["both side by side, one thread each"] = (side_by_side(both, pool), x1, 1)
    for name, model in models.items():
        candidates[f"{name} eager (the app)"] = (model, x1, 1)
        candidates[f"{name} BatchNorm folded"] = (fold_batchnorm(model), x1, 1)
        candidates[f"{name} eager, batch 4, per image"] = (model, x4, 4)
        try:
            with torch.no_grad():
                frozen = torch.jit.optimize_for_inference(
                    torch.jit.freeze(torch.jit.trace(model, x1, check_trace=False))
                )
            candidates[f"{name} TorchScript frozen + oneDNN"] = (frozen, x1, 1)
        except Exception as error:  # reported, not fatal: this is a survey
            print(f"  {name}: TorchScript freeze failed: {type(error).__name__}: {error}")
        try:
            compiled = torch.compile(model)
            start = time.perf_counter()
            timed(compiled, x1)
            took = time.perf_counter() - start
            print(f"  {name}: torch.compile's first call (compiling) {took:.1f} s")
            candidates[f"{name} torch.compile"] = (compiled, x1, 1)
        except Exception as error:
            print(f"  {name}: torch.compile failed: {type(error).__name__}: {str(error)[:200]}")
    for fn, x, _ in candidates.values():  # warm-up
        for _ in range(2):
            timed(fn, x)
    times = {key: [] for key in candidates}
    for _ in range(args.runs):
        for key, (fn, x, batch) in candidates.items():
            times[key].append(timed(fn, x) / batch)
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key, value in medians.items():
        print(f"  {key:48s} {value * 1000:7.1f} ms")
    pair = medians["both side by side, one thread each"] / medians["both in turn (the app)"]
    print(f"  {'both side by side, one thread each':48s} {pair:7.3f} × the app's way")
    for name in models:
        base = medians[f"{name} eager (the app)"]
        for key, value in medians.items():
            if key.startswith(name + " ") and "the app" not in key:
                print(f"  {key:48s} {value / base:7.3f} × the app's forward")


if __name__ == "__main__":
    main()
