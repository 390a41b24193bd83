"""The two architectures: torchvision's ResNet-50 and SA-ResNet-50 (an SA unit in every bottleneck).

Builders return untrained models, as torchvision's do with `weights=None`; `sa_viz.models.weights`
loads checkpoints into them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from sa_viz.models.attention import ShuffleAttention
from sa_viz.pipeline.fast import fast_path_applies, fold, no_observers, state_key

STAGE_DEPTHS = (3, 4, 6, 3)
SA_GROUPS = 64


class FastBottleneck(Bottleneck):
    """torchvision's Bottleneck, plus a folded path for inference without gradients.

    Same parameters, state dict and outputs (up to float rounding); see `sa_viz.pipeline.fast` for when
    the folded path runs. Off unless `sa_viz.pipeline.fast.set_fast_inference` turns it on, as
    `sa_viz.models.weights.load_model` does: built models compute exactly the reference forward.
    """

    fast_inference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_path_applies(self) and no_observers(self.modules(), self._may_observe()):
            folded = self._folded()
            if folded is not None:
                return self._fast_forward(x, *folded)
        return self._reference_forward(x)

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def _may_observe(self) -> set[nn.Module]:
        """Modules whose hooks the folded path honours (it calls them as modules)."""
        return {self}

    def _attend(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _folded(self):
        key = state_key(self)
        cached = self.__dict__.get("_folded_cache")
        if cached is None or cached[0] != key:
            cached = (key, self._fold())
            self.__dict__["_folded_cache"] = cached  # derived data, never in the state dict
        return cached[1]

    def _fold(self):
        downsample = None
        if self.downsample is not None:
            if not (isinstance(self.downsample, nn.Sequential) and len(self.downsample) == 2):
                return None
            downsample = fold(self.downsample[0], self.downsample[1])
        convs = (
            fold(self.conv1, self.bn1),
            fold(self.conv2, self.bn2),
            fold(self.conv3, self.bn3),
        )
        return convs, downsample

    def _fast_forward(self, x: torch.Tensor, convs, downsample) -> torch.Tensor:
        conv1, conv2, conv3 = convs
        y = self._attend(conv3(conv2(conv1(x).relu_()).relu_()))
        identity = x if downsample is None else downsample(x)
        return y.add_(identity).relu_()


class SABottleneck(FastBottleneck):
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

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.sa(self.bn3(self.conv3(out)))
        out += identity
        return self.relu(out)

    def _may_observe(self) -> set[nn.Module]:
        return {self, *self.sa.modules()}  # the unit runs as a module: its hooks all fire

    def _attend(self, y: torch.Tensor) -> torch.Tensor:
        return self.sa(y)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 as torchvision builds it (25,557,032 parameters, same state dict), untrained."""
    return ResNet(FastBottleneck, list(STAGE_DEPTHS), **kwargs)


def sa_resnet50(**kwargs) -> ResNet:
    """SA-ResNet-50 (25,557,740 parameters), untrained; state dict as the official checkpoint's."""
    return ResNet(SABottleneck, list(STAGE_DEPTHS), **kwargs)


SA_UNIT_NAMES: tuple[str, ...] = tuple(
    f"layer{stage}.{block}" for stage, depth in enumerate(STAGE_DEPTHS, 1) for block in range(depth)
)


def sa_units(model: nn.Module) -> Iterator[tuple[str, ShuffleAttention]]:
    """Yield ("layer1.0", unit) … ("layer4.2", unit): every SA unit, keyed by its bottleneck."""
    for name, module in model.named_modules():
        if isinstance(module, ShuffleAttention):
            yield name.removesuffix(".sa"), module


def untrained_sa_units(model: nn.Module) -> list[str]:
    """Units whose gate weights are still the paper's zero init: their gates are constant σ(bias).

    Trained weights are never exactly zero, so this tells a checkpoint that was never trained
    (or never loaded) from a real one.
    """
    return [
        name
        for name, unit in sa_units(model)
        if not (unit.cweight.detach().any() or unit.sweight.detach().any())
    ]
