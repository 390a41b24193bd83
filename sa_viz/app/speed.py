"""Speed-ups the server applies to its models after loading them: BatchNorm folded into the
convolution before it.

Applied explicitly by the engine (`Engine`), never inside model classes or library calls: the
Python API and the CLI run the models as built, and the server runs the same modules with fewer
ops. What the gate probes and the CAM methods hook (the attention units' gates, a stage's last
block) is untouched; the values they read differ from the unfolded model's only by float
rounding (tests/test_speed.py).

Measured with benchmarks/bench_explain.py (see benchmarks/README.md).
"""

from __future__ import annotations

import itertools

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d into it, in place; the BatchNorm
    becomes an `nn.Identity`. Pairs are found where ResNet-style code names them: children
    `conv<k>` and `bn<k>` of one module, and a Conv2d followed by a BatchNorm2d in an
    `nn.Sequential` (the downsample branches). The model must be in eval mode; returns it.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (running statistics)")
    for module in list(model.modules()):
        for conv_name, bn_name in _pairs(module):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
    return model


def _pairs(module: nn.Module) -> list[tuple[str, str]]:
    children = dict(module.named_children())
    if isinstance(module, nn.Sequential):
        names = list(children)
        return [
            (a, b)
            for a, b in itertools.pairwise(names)
            if isinstance(children[a], nn.Conv2d) and isinstance(children[b], nn.BatchNorm2d)
        ]
    return [
        (name, "bn" + name.removeprefix("conv"))
        for name, child in children.items()
        if name.startswith("conv")
        and isinstance(child, nn.Conv2d)
        and isinstance(children.get("bn" + name.removeprefix("conv")), nn.BatchNorm2d)
    ]
