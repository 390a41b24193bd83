"""pytorch-grad-cam's methods run the way SA-Viz needs them: hooks that see only the calling
thread's passes, no autograd graph for methods that read activations only, the raw map kept
before the library scales it, and no gradients left on the shared model."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import no_inference_tensor, target_layer
from sa_viz.hooks import thread_local_hooks

if TYPE_CHECKING:
    from pytorch_grad_cam.base_cam import BaseCAM


def library_class(name: str) -> Callable[[], type]:
    """pytorch-grad-cam's class `name`, imported on first use (only these methods need it)."""

    def find() -> type:
        import pytorch_grad_cam

        return getattr(pytorch_grad_cam, name)

    return find


@dataclass(frozen=True)
class LibraryCam:
    """A `CamCompute` (`sa_viz.cam.base`) running a pytorch-grad-cam class.

    `cam_class`: gives the class (imported on first use). `gradients`: False for a method that
    reads activations only; pytorch-grad-cam would otherwise record the whole forward's graph for
    nothing (+1.2 GB for EigenCAM on a 224×896 input, measured with benchmarks/bench_methods.py).
    `configure`: sets up each CAM object before it runs.
    """

    cam_class: Callable[[], type]
    gradients: bool = True
    configure: Callable[[Any], None] | None = None

    def __call__(
        self, model: nn.Module, x: torch.Tensor, classes: list[int], layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = no_inference_tensor(x)
        targets = [ClassifierOutputTarget(c) for c in classes]
        raw_maps: list[np.ndarray] = []
        layers = [target_layer(model, layer)]
        try:
            with (
                torch.inference_mode(False),
                torch.set_grad_enabled(self.gradients),
                self.cam_class()(model, layers) as cam,
                own_thread_hooks(cam, layers),
            ):
                if self.configure is not None:
                    self.configure(cam)
                original = cam.get_cam_image

                def keep_raw(*args: Any, **kwargs: Any) -> np.ndarray:
                    image = original(*args, **kwargs)
                    raw_maps.append(np.maximum(image, 0))
                    return image

                cam.get_cam_image = keep_raw  # this instance only: keeps the map before scaling
                # An input that requires grad makes the target layer's output require grad even
                # if the model's parameters are frozen.
                maps = cam(input_tensor=x.detach().requires_grad_(self.gradients), targets=targets)
        finally:
            # Its full backward leaves a gradient on every parameter: 100 MB per model, never used.
            model.zero_grad(set_to_none=True)
        return np.float32(maps), np.float32(raw_maps[0])


@contextmanager
def own_thread_hooks(cam: BaseCAM, layers: Sequence[nn.Module]) -> Iterator[None]:
    """pytorch-grad-cam's hooks on the target layers, seeing only the calling thread's passes.

    The library registers them on the shared model: a server explaining another request with the
    same model at the same time (one-pass methods beside a ScoreCAM) would add its activations
    and gradients to this CAM's lists. Replaced, for the block, by `thread_local_hooks`.
    """
    recorder = cam.activations_and_grads
    for handle in recorder.handles:
        handle.remove()
    recorder.handles.clear()
    hooks = [(m, fn) for m in layers for fn in (recorder.save_activation, recorder.save_gradient)]
    with thread_local_hooks(hooks):
        yield
