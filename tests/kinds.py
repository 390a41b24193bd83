"""One small model per attention kind a probe reads (and one no probe reads), and an explanation
of chelsea.jpg by it, built from its recorded gates in a fraction of a second: what the render
tests draw every picture of.

Each model is a stem and two "stages" (`layer1.0`, `layer2.0`: unit names and stages as in a
ResNet) of a block that holds timm's own attention module (SA-Viz's for SA), on random weights
with every attention parameter drawn at random, so that no gate is one constant.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from conftest import ASSETS
from timm.layers import EcaModule, GlobalContext, SelectiveKernel, SEModule, SplitAttn
from timm.layers.cbam import CbamModule, LightCbamModule
from torch import nn

from sa_viz.data.preprocess import prepare_image
from sa_viz.models.attention import ShuffleAttention
from sa_viz.models.weights import WeightsStatus
from sa_viz.pipeline.explain import Explanation, ModelExplanation, Prediction
from sa_viz.probes import record_gates
from sa_viz.probes.recorder import units_of, unread_attention

WIDTH = 32  # channels of every block


class PixelAttention(nn.Module):
    """An attention type no probe knows: a softmax over positions that reweights them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return x * self.softmax(self.score(x).flatten(1)).reshape(b, 1, h, w) * (h * w)


class Block(nn.Module):
    """conv, norm, then the attention unit (which may be the conv itself: SK, Split Attention)."""

    def __init__(
        self, attention: Callable[[int], nn.Module], stride: int, conv: bool, name: str
    ) -> None:
        super().__init__()
        self.conv = attention(WIDTH) if conv else nn.Conv2d(WIDTH, WIDTH, 3, 1, 1, bias=False)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.bn = nn.BatchNorm2d(WIDTH)
        self.name = name  # SA-Viz's SA units are named `sa`, timm's `se`, `attn`, …
        self.add_module(name, nn.Identity() if conv else attention(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = getattr(self, self.name)
        return attention(torch.relu(self.bn(self.pool(self.conv(x))))) + self.pool(x)


# kind → (the attention module for `channels`, whether it replaces the block's conv)
KINDS: dict[str, tuple[Callable[[int], nn.Module], bool]] = {
    "SA": (lambda c: ShuffleAttention(c, groups=4), False),
    "SE": (lambda c: SEModule(c), False),
    "ECA": (lambda c: EcaModule(c), False),
    "CBAM": (lambda c: CbamModule(c), False),
    "light CBAM": (lambda c: LightCbamModule(c), False),
    "GC": (lambda c: GlobalContext(c), False),
    "GC, gca": (lambda c: GlobalContext(c, fuse_add=True, fuse_scale=False), False),
    "SK": (lambda c: SelectiveKernel(c, c), True),
    "SplAt": (lambda c: SplitAttn(c, c, radix=2), True),
    "unknown": (PixelAttention, False),
}


def tiny_model(kind: str, seed: int = 0) -> nn.Module:
    attention, conv = KINDS[kind]
    name = "sa" if kind == "SA" else "attn"
    torch.manual_seed(seed)
    stages = {
        f"layer{i}": nn.Sequential(OrderedDict({"0": Block(attention, stride, conv, name)}))
        for i, stride in ((1, 1), (2, 2))
    }
    model = nn.Sequential(
        OrderedDict(
            stem=nn.Conv2d(3, WIDTH, 8, 8),
            **stages,
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(WIDTH, 1000),
        )
    ).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, unit, _ in units_of(model):
            for p in unit.parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 4
                p.copy_(torch.randn(p.shape, generator=generator) * 1.5 / math.sqrt(fan_in))
    return model


def status(name: str, title: str) -> WeightsStatus:
    return WeightsStatus(name, title, True, "test", f"{title}: random weights of the test")


def kind_result(kind: str, crop: bool = False) -> Explanation:
    """chelsea.jpg explained by the tiny model of `kind` (its CAM: a plain ramp)."""
    image = prepare_image(ASSETS / "chelsea.jpg", crop=crop)
    model = tiny_model(kind)
    with torch.no_grad(), record_gates(model) as gates:
        logits = model(image.tensor)
    probabilities = torch.softmax(logits[0].double(), 0).numpy()
    top = np.argsort(-probabilities)[:5]
    predictions = [Prediction(int(i), str(i), float(probabilities[i])) for i in top]
    h, w = image.size
    name = f"tiny_{kind.replace(' ', '_').replace(',', '')}"
    title = f"tiny {kind}"
    m = ModelExplanation(
        name=name,
        title=title,
        top5=predictions,
        target=predictions[0],
        cam=np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1)),
        cam_raw=np.linspace(0, 1, 49, dtype=np.float32).reshape(7, 7),
        gates=dict(gates),
        weights=status(name, title),
        probabilities=probabilities.astype(np.float32),
        unread=unread_attention(model),
    )
    return Explanation(image, {name: m}, "layer4", "gradcam", None)
