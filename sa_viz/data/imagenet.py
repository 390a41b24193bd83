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


def class_index(text: str | int) -> int:
    """An ImageNet class from an index (281), "281: tabby", or a name ("tabby", "Tiger Cat",
    or a part of exactly one name). Raises ValueError with the candidates otherwise."""
    text = str(text).strip()
    head = text.split(":", 1)[0].strip()
    if head.isascii() and head.isdigit():  # "²".isdigit() is True too
        index = int(head)
        if index >= NUM_CLASSES:
            raise ValueError(f"class index {index} is outside 0..{NUM_CLASSES - 1}")
        return index
    wanted = text.lower()
    names = [name.lower() for name in labels()]
    if wanted in names:
        return names.index(wanted)
    matches = [i for i, name in enumerate(names) if wanted and wanted in name]
    if len(matches) == 1:
        return matches[0]
    found = ", ".join(f"{i}: {labels()[i]}" for i in matches[:8]) if matches else "none"
    raise ValueError(f"{text!r} is not one ImageNet class name (matches: {found})")
