"""Inference without gradients, faster and with the same numbers: each bottleneck's BatchNorms
folded into its convolutions.

The folded weights are derived data, cached next to the module (never in its state dict) and
recomputed when any parameter or buffer of the block changes (tensor version counters tell).
A block uses them only when no gradient is recorded and nothing could notice: no forward hooks on
its convolutions or norms (hooks on the block itself and on its SA unit and gates are fine: the
unit still runs as a module). Otherwise it runs the reference forward.

Why by hand: torch.fx's conv-bn fusion rewrites the model into a new GraphModule, whose modules
are not the ones forward hooks were registered on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as module_internals
from torch.nn.utils.fusion import fuse_conv_bn_weights


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with its BatchNorm folded in (eval statistics)."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> FoldedConv:
    """conv then bn (eval statistics) as one convolution."""
    with torch.no_grad():
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
    return FoldedConv(
        weight.detach(), bias.detach(), conv.stride, conv.padding, conv.dilation, conv.groups
    )


def state_key(module: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of `module` is replaced or modified in place."""
    return tuple((id(t), t._version) for t in (*module.parameters(), *module.buffers()))


def no_observers(modules, allowed: set[nn.Module]) -> bool:
    """True when no module in `modules` (but those `allowed`) has forward (pre-)hooks, and no
    global forward hooks are set."""
    if module_internals._global_forward_hooks or module_internals._global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules if m not in allowed)


def fast_path_applies(block: nn.Module) -> bool:
    return (
        getattr(block, "fast_inference", False)
        and not torch.is_grad_enabled()
        and not block.training
    )


def set_fast_inference(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Turn the folded inference path on or off for every block of `model`. Built models start
    with it off (the reference forward); `sa_viz.models.weights.load_model` turns it on."""
    for module in model.modules():
        if hasattr(module, "fast_inference"):
            module.fast_inference = enabled
    return model
