"""What the registry holds about a model (`ModelEntry`: its builder, weights, published figures,
preprocessing, CAM layers and attention), apart from the registry itself so that the timm zoo
(`sa_viz.models.zoo`) can make entries that the registry resolves, without an import loop."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sa_viz.data.transforms import IMAGENET, Preprocessing

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class WeightsSpec:
    """Where one model's pretrained weights come from, and how a person gets them."""

    model: str
    filenames: tuple[str, ...]  # looked up in the weights folder, in this order
    env_var: str  # a path to a checkpoint file, overriding the folder look-up
    source: str
    url: str | None = None
    hash_prefix: str | None = None  # the published sha256 begins with this (torch.hub's scheme)
    how_to_get: str = ""
    # Weights on the Hugging Face hub (timm's models): found in its cache, as timm finds them.
    hf_hub_id: str | None = None
    hf_filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    checkpoint: str | None = None  # a file given at registration (`register_model`)

    @property
    def flag(self) -> str:
        """The command-line flag that names this model's checkpoint file."""
        return "--" + re.sub(r"[^a-z0-9]+", "-", self.model.lower()).strip("-")


@dataclass(frozen=True)
class ModelMeta:
    """Published figures and provenance, shown beside the model."""

    top1: float  # ImageNet-1k validation top-1 (%), as published for these weights
    parameters: int
    paper: str
    source: str
    licence: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    builder: Callable[[], nn.Module]
    weights: WeightsSpec
    meta: ModelMeta
    preprocessing: Preprocessing = IMAGENET
    # The modules a CAM can read, shallow to deep; the page's layerN is the N-th of them.
    cam_layers: tuple[str, ...] = RESNET_LAYERS
    # The kind of attention units it has ("SA", "SE"), declared by hand; tests check that the
    # probes (sa_viz/probes/) find it. None: none declared (a model registered at run time):
    # `sa_viz.probes.attention_of(name)` gives what the probes find, for any model.
    gates: str | None = None
    # What its gates are, in a few words, for the README's table and the model list.
    gates_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def layer_module(self, layer: str) -> str:
        """The module path of the page's CAM layer `layer` ("layer4": the fourth of
        `cam_layers`); a module path of this model's own is accepted as it is."""
        if layer in self.cam_layers:
            return layer
        if layer.startswith("layer") and layer[5:].isdigit():
            index = int(layer[5:]) - 1
            if 0 <= index < len(self.cam_layers):
                return self.cam_layers[index]
        raise ValueError(
            f"{self.title} has no CAM layer {layer!r}; it offers "
            + ", ".join(f"layer{i + 1} ({m})" for i, m in enumerate(self.cam_layers))
        )


def default_cam_layers(model: nn.Module) -> tuple[str, ...]:
    """`layer1` … `layer4` when the model has them; else timm's `feature_info` (its modules at
    each reduction past the stem); else its last four top-level modules that hold a
    convolution."""
    names = {n for n, _ in model.named_children()}
    if set(RESNET_LAYERS) <= names:
        return RESNET_LAYERS
    info = getattr(model, "feature_info", None)
    modules = [f["module"] for f in info if f.get("reduction", 1) > 2] if info else []
    if hasattr(info, "module_name"):  # timm's FeatureInfo object
        modules = [info.module_name(i) for i in range(len(info)) if info.reduction(i) > 2]
    if modules:
        return tuple(modules[-4:])
    convolutional = [
        n
        for n, child in model.named_children()
        if any(isinstance(m, nn.Conv2d) for m in child.modules())
    ]
    return tuple(convolutional[-4:])
