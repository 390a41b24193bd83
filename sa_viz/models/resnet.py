"""The two architectures: torchvision's ResNet-50 and SA-ResNet-50 (an SA unit in every bottleneck).

Builders return untrained models, as torchvision's do with `weights=None`; `sa_viz.models.weights`
loads checkpoints into them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from sa_viz.models.attention import ShuffleAttention

STAGE_DEPTHS = (3, 4, 6, 3)
SA_GROUPS = 64


class SABottleneck(Bottleneck):
    """torchvision's Bottleneck plus a Shuffle Attention unit after `bn3`, before the add."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__(inplanes, planes, stride, None, groups, base_width, dilation, norm_layer)
        # Registered before `downsample` so that the state dict lists `sa.*` right after `bn3.*`,
        # in the order of the official checkpoint.
        self.sa = ShuffleAttention(planes * self.expansion, SA_GROUPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.sa(self.bn3(self.conv3(out)))
        out += identity
        return self.relu(out)


def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 as torchvision builds it (25,557,032 parameters, same state dict), untrained."""
    return ResNet(Bottleneck, list(STAGE_DEPTHS), **kwargs)


def sa_resnet50(**kwargs: Any) -> ResNet:
    """SA-ResNet-50 (25,557,740 parameters), untrained; state dict as the official checkpoint's."""
    return ResNet(SABottleneck, list(STAGE_DEPTHS), **kwargs)


SA_UNIT_NAMES: tuple[str, ...] = tuple(
    f"layer{stage}.{block}" for stage, depth in enumerate(STAGE_DEPTHS, 1) for block in range(depth)
)
