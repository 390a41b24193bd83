"""The one forward pass that explain, studies and analyses share: the model's logits, every
attention unit's gates (forward hooks) and Grad-CAM from the head gradient, all from one pass.

Grad-CAM needs only d(class score)/d(target-layer activation). pytorch-grad-cam gets it with a full
`loss.backward()` through the whole network (about 3x a forward); `head_gradient` lets autograd
record nothing before the target layer, so the backward runs through the layers after it only.
The numbers are pytorch-grad-cam's `GradCAM`'s (tests compare them within 1e-4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import (
    DEFAULT_LAYER,
    ClassChoice,
    no_inference_tensor,
    resolve_classes,
    target_layer,
)
from sa_viz.errors import stage
from sa_viz.hooks import thread_local_hooks
from sa_viz.probes import UnitGates, record_gates


@dataclass
class HeadGradient:
    """The target layer's activation of the last forward pass, a leaf of autograd's graph."""

    activation: torch.Tensor | None = None

    def raw_cam(self, logits: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
        """(B, h, w) ReLU(Σ_k mean(∂score/∂A_k) · A_k), by one backward through the head only."""
        if self.activation is None:
            raise RuntimeError("no forward pass reached the target layer inside head_gradient()")
        index = torch.as_tensor(classes, device=logits.device)[:, None]
        score = logits.gather(1, index).sum()
        (grad,) = torch.autograd.grad(score, self.activation)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        return torch.relu((weights * self.activation).sum(dim=1)).detach()


@contextmanager
def head_gradient(model: nn.Module, layer: str = DEFAULT_LAYER) -> Iterator[HeadGradient]:
    """Inside the block, each forward of `model` records autograd only after `layer`.

    A pre-hook on the model turns gradient recording off; the target layer's hook turns it back on
    and hands the rest of the network a detached copy of its output that requires grad. So the
    layers before the target keep no graph, and a backward from the logits stops at the target.
    This is never inference mode: the part after the target needs gradients.
    """
    probe = HeadGradient()
    was_enabled = torch.is_grad_enabled()

    def stop_recording(_module: nn.Module, _args: tuple[Any, ...]) -> None:
        torch.set_grad_enabled(False)

    def start_recording(
        _module: nn.Module, _args: tuple[Any, ...], output: torch.Tensor
    ) -> torch.Tensor:
        torch.set_grad_enabled(True)
        probe.activation = output.detach().requires_grad_(True)
        return probe.activation

    try:
        with (
            torch.inference_mode(False),
            thread_local_hooks(
                [(target_layer(model, layer), start_recording)], [(model, stop_recording)]
            ),
        ):
            yield probe
    finally:
        torch.set_grad_enabled(was_enabled)


@dataclass(frozen=True)
class Forward:
    """What one forward pass of a batch gave: `logits` (B, classes), detached; each image's
    target class; every attention unit's gates (empty unless asked for, or for a model without
    attention); `raw`, the head-only Grad-CAM of those classes at the layer, (B, h, w) (None
    unless asked for)."""

    logits: torch.Tensor
    classes: list[int]
    gates: dict[str, UnitGates]
    raw: np.ndarray | None


def forward_pass(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: ClassChoice = None,
    layer: str = DEFAULT_LAYER,
    *,
    gates: bool = True,
    grad_cam: bool = True,
) -> Forward:
    """One forward of the batch `x` with the gates (`gates`) and the head gradient (`grad_cam`)
    recorded: the pass that the page, the CLI, studies and the knockout analysis all run.

    `class_idx`: None for each image's own top-1, one class for all, or one per image (None in
    the list: that image's own top-1). Without `grad_cam` no graph is kept at all.
    """
    x = no_inference_tensor(x)
    with record_gates(model) if gates else nullcontext({}) as recorded:
        if grad_cam:
            with head_gradient(model, layer) as probe:
                with stage("model"):
                    logits = model(x)
                classes = resolve_classes(logits, class_idx)
                with stage("cam"):
                    raw = probe.raw_cam(logits, classes).cpu().numpy()
        else:
            with torch.no_grad(), stage("model"):
                logits = model(x)
            classes, raw = resolve_classes(logits, class_idx), None
    return Forward(logits.detach(), classes, dict(recorded), raw)
