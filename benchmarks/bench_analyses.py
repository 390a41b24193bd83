"""The analyses against the forwards they need, measured in one run (issue 17, point 7).

- deletion and insertion, 16 steps, both models (ResNet-50 and SA-ResNet-50), on one 224 × 224
  photo, against the batched forward of the same 2 · 17 images per model (targets: ≤ 1.3);
- knocking out each of the 64 groups of SA-ResNet-50's layer3.0 and the whole unit, against the
  batched forward of the network's remainder from that unit's block onward on the same 65
  copies (target: ≤ 1.5; the knockout also runs the one full forward that records the block's
  input).

Medians of `--runs` runs, each variant once per run, in turn.

    SA_VIZ_WEIGHTS_DIR=DIR python benchmarks/bench_analyses.py [--runs 5]
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
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import torch

    from sa_viz.analyses import ImageInput
    from sa_viz.analyses.faithfulness import STEPS, deletion_insertion
    from sa_viz.analyses.knockout import CHUNK, block_input, from_block, group_knockout
    from sa_viz.cam import grad_cam_result
    from sa_viz.data.examples import EXAMPLES_DIR
    from sa_viz.data.preprocess import prepare_image
    from sa_viz.models.weights import load_models

    torch.set_grad_enabled(False)
    models = load_models(allow_download=False, names=["resnet50", "sa_resnet50"], device="cpu")
    x = prepare_image(EXAMPLES_DIR / "chelsea.jpg", crop=True).tensor
    inputs = {}
    for name, m in models.items():
        with torch.enable_grad():
            result = grad_cam_result(m.module, x, None)
        inputs[name] = ImageInput(m.module, x, result.maps[0], int(result.logits.argmax()))
    batch = x.expand(2 * (STEPS + 1), *x.shape[1:]).clone()
    sa = models["sa_resnet50"].module
    _, h = block_input(sa, "layer3.0", x)
    copies = h.expand(65, *h.shape[1:]).clone()

    def analysis() -> None:
        for image in inputs.values():
            deletion_insertion(image)

    def forwards() -> None:
        with torch.inference_mode():
            for m in models.values():
                m.module(batch)

    def knockout() -> None:
        group_knockout(sa, x, inputs["sa_resnet50"].target, "layer3.0")

    def remainder() -> None:
        with torch.inference_mode():
            for start in range(0, len(copies), CHUNK):
                from_block(sa, "layer3.0", copies[start : start + CHUNK])

    times: dict[str, list[float]] = {}
    for run in range(args.runs):
        for name, fn in (("deletion+insertion", analysis), ("their forwards", forwards),
                         ("knockout", knockout), ("remainder", remainder)):  # fmt: skip
            times.setdefault(name, []).append(seconds(fn))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    m = {k: statistics.median(v) for k, v in times.items()}
    print("medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in m.items()))
    print(
        f"deletion+insertion / their batched forwards: "
        f"{m['deletion+insertion'] / m['their forwards']:.2f} (target ≤ 1.3)"
    )
    print(f"knockout of 64 groups / the remainder's forward: {m['knockout'] / m['remainder']:.2f} "
          "(target ≤ 1.5)")  # fmt: skip


if __name__ == "__main__":
    main()
