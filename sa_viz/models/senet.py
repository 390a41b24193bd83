"""SE-ResNet-50 (Hu et al., *Squeeze-and-Excitation Networks*, CVPR 2018) as timm builds it.

timm's `legacy_seresnet50` is the SENet authors' Caffe model as ported by Cadene's
`pretrainedmodels`: its state dict is the published `se_resnet50-ce0d4300.pth` file's, so that
file loads strictly. Each bottleneck's `se_module` ends in an `nn.Sigmoid` submodule, called
once per forward: a forward hook on it reads the channel gate.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def se_resnet50(**kwargs: Any) -> nn.Module:
    """SE-ResNet-50 (28,088,024 parameters), untrained; state dict as the published file's."""
    import timm  # imported on first use: the other models do not need it

    return timm.create_model("legacy_seresnet50", pretrained=False, **kwargs)
