"""ImageNet-1k facts shared by every stage: normalisation, input sizes and the 1000 class names."""

from __future__ import annotations

from functools import cache

from torchvision.models import ResNet50_Weights

# The evaluation protocol of both models (torchvision's ImageClassification preset, and SA-Net's
# official validation transform): resize the shorter side to 256, centre-crop 224.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
RESIZE_SIZE = 256
NUM_CLASSES = 1000


@cache
def labels() -> tuple[str, ...]:
    """The 1000 class names in index order, as torchvision ships them with its weights."""
    categories = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(categories) == NUM_CLASSES
    return categories


def label(index: int) -> str:
    return labels()[index]
