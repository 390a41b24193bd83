"""Class activation maps: Grad-CAM from the head-only gradient, other methods via pytorch-grad-cam.

Grad-CAM needs only d(class score)/d(target-layer activation). pytorch-grad-cam gets it with a full
`loss.backward()` through the whole network (about 3x a forward); `head_gradient` lets autograd
record nothing before the target layer, so the backward runs through the layers after it only.
The numbers are pytorch-grad-cam's `GradCAM`'s (tests compare them within 1e-4).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch import nn

from sa_viz.models.hooks import check_time, report, thread_local_hooks

if TYPE_CHECKING:
    from pytorch_grad_cam.base_cam import BaseCAM

# What pytorch-grad-cam calls a target: a callable from a model's output to the score to explain.
CamTarget = Callable[[torch.Tensor], torch.Tensor]

LAYERS = ("layer1", "layer2", "layer3", "layer4")
DEFAULT_LAYER = "layer4"
# ScoreCAM scores this many channels of the target layer, the most active ones (by mean
# activation), with one forward pass each: all of layer4's 2048 took minutes per model on a
# CPU; 32 take seconds (benchmarks/README.md). The rest get weight 0.
SCORECAM_CHANNELS = 32


@dataclass(frozen=True)
class CamMethod:
    key: str
    title: str
    grad_cam_class: str | None  # the pytorch-grad-cam class; None: our head-only Grad-CAM
    note: str = ""
    gradients: bool = True  # False: the method reads activations only (no autograd graph)
    long: bool = False  # many forward passes: a server runs it apart from one-pass methods


METHODS: dict[str, CamMethod] = {
    m.key: m
    for m in (
        CamMethod("gradcam", "Grad-CAM", None, "gradient-weighted channels (head-only gradient)"),
        CamMethod("gradcam++", "Grad-CAM++", "GradCAMPlusPlus", "second-order channel weights"),
        CamMethod("hirescam", "HiResCAM", "HiResCAM", "element-wise gradient × activation"),
        CamMethod("xgradcam", "XGradCAM", "XGradCAM", "activation-normalised gradient weights"),
        CamMethod("layercam", "LayerCAM", "LayerCAM", "positive gradients per location"),
        CamMethod(
            "eigencam",
            "EigenCAM",
            "EigenCAM",
            "first principal component; class-agnostic",
            gradients=False,
        ),
        CamMethod(
            "eigengradcam", "EigenGradCAM", "EigenGradCAM", "principal component of grad × act"
        ),
        CamMethod(
            "scorecam",
            "ScoreCAM",
            "ScoreCAM",
            f"the layer's {SCORECAM_CHANNELS} most active channels, one forward pass each "
            "(seconds on a CPU)",
            gradients=False,
            long=True,
        ),
    )
}


@dataclass(frozen=True)
class CamResult:
    """CAMs for a batch. `maps`: (B, H, W) in [0, 1] at input resolution, min-max per image as
    pytorch-grad-cam scales them. `raw`: (B, h, w) at the layer's resolution, after ReLU and before
    any scaling, so maps of two models can be put on one scale."""

    maps: np.ndarray
    raw: np.ndarray
    logits: torch.Tensor
    class_idx: list[int]


def target_layer(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output a CAM reads: `layer4` means `model.layer4[-1]`, as is customary."""
    try:
        module = model.get_submodule(layer)
    except AttributeError as error:
        raise ValueError(f"the model has no layer named {layer!r}") from error
    if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 0:
        module = module[-1]
    return module


def resolve_classes(logits: torch.Tensor, class_idx: int | Sequence[int] | None) -> list[int]:
    """Per-image target class: each image's own top-1 if None, else the class(es) given."""
    b, n = logits.shape
    if class_idx is None:
        return logits.argmax(1).tolist()
    classes = [int(class_idx)] * b if isinstance(class_idx, (int, np.integer)) else list(class_idx)
    if len(classes) != b:
        raise ValueError(f"got {len(classes)} class indices for a batch of {b}")
    for c in classes:
        if not 0 <= c < n:
            raise ValueError(f"class index {c} is outside 0..{n - 1}")
    return classes


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


def scale_cams(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's scaling, step for step: min-max, bilinear resize to (H, W), min-max.

    Written out because pytorch-grad-cam does it only inside a CAM object's forward; the steps
    (cv2.resize, the 1e-7 guard, the second min-max) are what make the maps equal to its output.
    """
    h, w = size
    out = np.empty((len(raw), h, w), dtype=np.float32)
    for i, cam in enumerate(np.asarray(raw, dtype=np.float32)):
        for step in range(2):
            cam = cam - cam.min()
            cam = cam / (1e-7 + cam.max())
            if step == 0:
                cam = cv2.resize(np.float32(cam), (w, h))
        out[i] = cam
    return out


def _no_inference_tensor(x: torch.Tensor) -> torch.Tensor:
    return x.clone() if x.is_inference() else x


def grad_cam_result(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | None = None,
    layer: str = DEFAULT_LAYER,
) -> CamResult:
    """Grad-CAM for a batch from one forward and one head-only backward."""
    with head_gradient(model, layer) as probe:
        logits = model(_no_inference_tensor(x))
        classes = resolve_classes(logits, class_idx)
        raw = probe.raw_cam(logits, classes).cpu().numpy()
    return CamResult(scale_cams(raw, tuple(x.shape[-2:])), raw, logits.detach(), classes)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | None = None,
    layer: str = DEFAULT_LAYER,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Grad-CAM maps, float32 (B, H, W) in [0, 1] at the input's resolution.

    `class_idx`: None for each image's own top-1, one index for all, or one per image.
    `normalize=False` returns the raw maps, (B, h, w) at the layer's resolution, unscaled.
    """
    result = grad_cam_result(model, x, class_idx, layer)
    return result.maps if normalize else result.raw


def compute_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_idx: int | Sequence[int] | None = None,
    layer: str = DEFAULT_LAYER,
    method: str = "gradcam",
) -> CamResult:
    """Any CAM method of `METHODS`, by name, with the same result layout as Grad-CAM."""
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")
    spec = METHODS[method]
    if spec.grad_cam_class is None:
        return grad_cam_result(model, x, class_idx, layer)

    import pytorch_grad_cam  # imported on first use: only these methods need it
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = _no_inference_tensor(x)
    with torch.no_grad():
        logits = model(x)
    classes = resolve_classes(logits, class_idx)
    targets = [ClassifierOutputTarget(c) for c in classes]
    bounded = BOUNDED_METHODS.get(method)
    method_class = bounded() if bounded else getattr(pytorch_grad_cam, spec.grad_cam_class)
    raw_maps: list[np.ndarray] = []
    layers = [target_layer(model, layer)]
    try:
        with (
            torch.inference_mode(False),
            # Methods that read activations only run without autograd: pytorch-grad-cam would
            # otherwise record the whole forward's graph for nothing (+1.2 GB for EigenCAM on a
            # 224×896 input, measured with benchmarks/bench_methods.py).
            torch.set_grad_enabled(spec.gradients),
            method_class(model, layers) as cam,
            own_thread_hooks(cam, layers),
        ):
            if method == "scorecam":
                cam.channels = SCORECAM_CHANNELS
            original = cam.get_cam_image

            def keep_raw(*args: Any, **kwargs: Any) -> np.ndarray:
                image = original(*args, **kwargs)
                raw_maps.append(np.maximum(image, 0))
                return image

            cam.get_cam_image = keep_raw  # this instance only: keeps the map before its scaling
            # An input that requires grad makes the target layer's output require grad even if
            # the model's parameters are frozen.
            maps = cam(input_tensor=x.detach().requires_grad_(spec.gradients), targets=targets)
    finally:
        # Its full backward leaves a gradient on every parameter: 100 MB per model, never used.
        model.zero_grad(set_to_none=True)
    return CamResult(np.float32(maps), np.float32(raw_maps[0]), logits, classes)


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


@cache
def bounded_score_cam() -> type:
    """pytorch-grad-cam's ScoreCAM, with each batch of masked inputs made when it is needed.

    Why by hand: the library multiplies the input by every upsampled channel at once, channels ×
    3 × H × W floats (1.9 GB per model for layer4's 2048 channels at 224×337) allocated before
    the first forward pass, where no time limit can stop it. Each channel's upsampling and
    min-max scaling is its own, so doing them per batch gives the same scores (tested). Batches
    shrink with the input's size, so memory stays that of a 224×224 input.

    `channels` (None: all, as the library) scores only that many channels per image, those with
    the highest mean activation; the others get weight 0 and the softmax runs over the scored
    ones. Each pass reports its progress (`sa_viz.models.hooks.report`).
    """
    from pytorch_grad_cam import ScoreCAM

    class BoundedScoreCAM(ScoreCAM):
        channels: int | None = None

        def get_cam_weights(
            self,
            input_tensor: torch.Tensor,
            target_layer: nn.Module,
            targets: Sequence[CamTarget],
            activations: np.ndarray,
            grads: np.ndarray,
        ) -> np.ndarray:
            upsample = nn.UpsamplingBilinear2d(size=input_tensor.shape[-2:])
            # 16 masked copies of a 224×224 input per pass, as the library does; fewer for a
            # larger input, so a pass needs no more memory than that (a 224×896 panorama with
            # 16 a pass took 3.1 GB more at layer1, measured with benchmarks/bench_methods.py).
            pixels = input_tensor.shape[-2] * input_tensor.shape[-1]
            batch_size = max(1, getattr(self, "batch_size", 16) * 224 * 224 // pixels)
            all_maps = torch.from_numpy(activations)
            b, c = all_maps.shape[:2]
            chosen = (
                torch.arange(c).expand(b, c)
                if self.channels is None or self.channels >= c
                else all_maps.mean(dim=(2, 3)).topk(self.channels, dim=1).indices
            )
            passes = b * -(-chosen.shape[1] // batch_size)
            done = 0
            weights = torch.zeros(b, c)
            with torch.no_grad():
                for n, (target, image, maps) in enumerate(
                    zip(targets, input_tensor, all_maps, strict=True)
                ):
                    scores = []
                    for i in range(0, chosen.shape[1], batch_size):
                        picked = maps[chosen[n, i : i + batch_size]]
                        masks = upsample(picked[None].to(self.device))[0]
                        flat = masks.flatten(1)
                        low = flat.min(-1)[0][:, None, None]
                        high = flat.max(-1)[0][:, None, None]
                        masks = (masks - low) / (high - low + 1e-8)
                        batch = image[None] * masks[:, None]
                        scores.extend(target(o).cpu().item() for o in self.model(batch))
                        # The library's hook on the target layer keeps every pass's activation
                        # (a batch's layer1 output at 224×896 is 51 MB; 3 GB before the time
                        # limit), long after the first pass's were read: drop them.
                        self.activations_and_grads.activations.clear()
                        done += 1
                        report(done / passes)
                    weights[n, chosen[n]] = torch.softmax(torch.tensor(scores), dim=0)
            return weights.numpy()

    return BoundedScoreCAM


def first_component(activation_batch: np.ndarray) -> np.ndarray:
    """(B, C, h, w) → (B, h, w): each image's positions projected on the first principal
    component of its channels, as pytorch-grad-cam's `get_2d_projection` computes it.

    Why by hand: the library asks NumPy for the full SVD of the (positions × channels) matrix,
    whose U is positions × positions: 12,544² floats (630 MB) and minutes of LAPACK for a
    panorama at layer1, in one call no time limit can interrupt. Only the first right singular
    vector is needed, and the reduced SVD gives the same one (the same LAPACK driver; equal
    bit for bit in the tests) with U at most positions × channels. The time limit is checked
    between images and around each decomposition.
    """
    batch = np.nan_to_num(np.asarray(activation_batch, dtype=np.float32), nan=0.0, copy=True)
    projections = []
    for activations in batch:
        check_time()
        flat = activations.reshape(activations.shape[0], -1).T
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        check_time()
        projections.append((flat @ vt[0]).reshape(activations.shape[1:]))
    return np.float32(projections)


@cache
def bounded_eigen_cam(name: str) -> type:
    """pytorch-grad-cam's EigenCAM or EigenGradCAM with `first_component` as its projection."""
    import pytorch_grad_cam

    library = getattr(pytorch_grad_cam, name)
    uses_gradients = name == "EigenGradCAM"

    def get_cam_image(
        self: BaseCAM,
        input_tensor: torch.Tensor,
        target_layer: nn.Module,
        targets: Sequence[CamTarget],
        activations: np.ndarray,
        grads: np.ndarray,
        smooth: bool,
    ) -> np.ndarray:
        return first_component(grads * activations if uses_gradients else activations)

    return type(f"Bounded{name}", (library,), {"get_cam_image": get_cam_image})


# Methods whose library implementation can take unbounded time or memory outside any forward
# pass, replaced by versions that compute the same maps within the time limit.
BOUNDED_METHODS = {
    "scorecam": bounded_score_cam,
    "eigencam": lambda: bounded_eigen_cam("EigenCAM"),
    "eigengradcam": lambda: bounded_eigen_cam("EigenGradCAM"),
}


def joint_scale(raw_maps: Sequence[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Several models' raw maps on one scale: divided by the largest value of all of them, then
    resized to (H, W). Unlike per-map min-max, this keeps which model's evidence is stronger."""
    h, w = size
    top = max(float(np.max(r)) for r in raw_maps)
    return [np.clip(cv2.resize(np.float32(r / (top + 1e-7)), (w, h)), 0.0, 1.0) for r in raw_maps]


def cam_difference(raw_a: np.ndarray, raw_b: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Signed map b − a in [−1, 1] on the joint scale: positive where model b looks more."""
    a, b = joint_scale([raw_a, raw_b], size)
    return b - a


def cam_agreement(a: np.ndarray, b: np.ndarray, top_fraction: float = 0.2) -> dict[str, float]:
    """How much two maps of the same image agree: Pearson r over all pixels, and the IoU of
    their top `top_fraction` regions (each map thresholded at its own quantile). Both figures
    ignore each map's scale. NaN when a map is constant (no region stands out)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return {"pearson": float("nan"), "iou_top": float("nan")}
    pearson = float(np.corrcoef(a, b)[0, 1])
    top_a = a >= np.quantile(a, 1 - top_fraction)
    top_b = b >= np.quantile(b, 1 - top_fraction)
    iou = float((top_a & top_b).sum() / max(1, (top_a | top_b).sum()))
    return {"pearson": pearson, "iou_top": iou}


ROAD_PERCENTILES = (80, 20)  # pytorch-grad-cam's defaults: MoRF at percentile 80, LeRF at 20
ROAD_SEED = 0  # the imputation noise's seed: ROAD's numbers repeat
_ROAD_LOCK = threading.Lock()


def road(model: nn.Module, x: torch.Tensor, cam: np.ndarray, target: int) -> dict[str, float]:
    """ROAD (Rong et al., ICML 2022), pytorch-grad-cam's implementation: the change of the
    target's probability when the pixels the CAM ranks most relevant (MoRF) or least relevant
    (LeRF) are removed and filled in by noisy linear imputation, which leaves no shape of the
    removed region for the model to see. `cam` (H, W) at `x`'s size.

    The imputation's noise is drawn from torch's generator seeded with `ROAD_SEED`, forked so
    that the caller's random state is left as it was: the same inputs give the same numbers
    (the page's table and a study's rows agree run after run)."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    most, least = ROAD_PERCENTILES
    targets = [ClassifierOutputSoftmaxTarget(target)]
    cams = np.asarray(cam, dtype=np.float32)[None]
    devices = [x.device] if x.device.type == "cuda" else []
    # torch's generator is the process's: one ROAD at a time, or threads would share draws
    with _ROAD_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(ROAD_SEED)
        morf = ROADMostRelevantFirst(percentile=most)(x, cams, targets, model)
        lerf = ROADLeastRelevantFirst(percentile=least)(x, cams, targets, model)
    return {"road_morf": float(morf[0]), "road_lerf": float(lerf[0])}
