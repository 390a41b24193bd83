"""ImageNet-1k facts shared by every stage: normalisation, input sizes and the 1000 class names."""

from __future__ import annotations

import re
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


@cache
def synonyms() -> tuple[tuple[str, ...], ...]:
    """Each class's other WordNet names, in index order ("hotdog": "hot dog", "red hot"), from
    the synset lemmas timm ships (same order as torchvision's names; no download)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    names = []
    for i, name in enumerate(labels()):
        lemmas = [s.strip() for s in info.index_to_description(i).split(",")]
        names.append(tuple(s for s in lemmas if s and s.lower() != name.lower()))
    return tuple(names)


def choice_label(index: int) -> str:
    """ "934: hotdog (hot dog, red hot)": a class as a list shows it, so that typing any of its
    names finds it."""
    others = synonyms()[index]
    return f"{index}: {label(index)}" + (f" ({', '.join(others)})" if others else "")


def _plain(text: str) -> str:
    """Lower case, with spaces, hyphens and underscores dropped: "Hot-dog" and "hot dog" are
    "hotdog"."""
    return re.sub(r"[\s_\-]+", "", text.lower())


def class_index(text: str | int) -> int:
    """An ImageNet class from an index (281), "281: tabby", or a name: torchvision's ("tabby",
    "Tiger Cat"), a WordNet synonym ("hot dog", "red hot"), either without its spaces or
    hyphens, or a part of the names of exactly one class. Raises ValueError with the candidates
    otherwise."""
    text = str(text).strip()
    head = text.split(":", 1)[0].strip()
    if head.isascii() and head.isdigit():  # "²".isdigit() is True too
        index = int(head)
        if index >= NUM_CLASSES:
            raise ValueError(f"class index {index} is outside 0..{NUM_CLASSES - 1}")
        return index
    wanted = _plain(text)
    names = [
        [_plain(name), *(_plain(other) for other in others)]
        for name, others in zip(labels(), synonyms(), strict=True)
    ]
    for exact in (
        [i for i, n in enumerate(names) if wanted == n[0]],  # the class's own name first
        [i for i, n in enumerate(names) if wanted in n],
    ):
        if len(exact) == 1:
            return exact[0]
    matches = [i for i, n in enumerate(names) if wanted and any(wanted in x for x in n)]
    if len(matches) == 1:
        return matches[0]
    found = ", ".join(f"{i}: {labels()[i]}" for i in matches[:8]) if matches else "none"
    raise ValueError(f"{text!r} is not one ImageNet class name (matches: {found})")
