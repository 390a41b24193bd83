"""One image through the chosen models: predictions, a CAM for the chosen class and every
attention gate.

Each model runs the one forward pass of `sa_viz.cam.forward_pass` (gates recorded by hooks; for
Grad-CAM the target layer's activation kept, and one backward through the layers after it only).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch

from sa_viz.cam import DEFAULT_LAYER, LAYERS, compute_cam, get_method
from sa_viz.data.imagenet import label
from sa_viz.data.preprocess import DEFAULT_LIMITS, ImageSource, Limits, PreparedImage, prepare_image
from sa_viz.hooks import reporting, time_limit
from sa_viz.models.device import device_of
from sa_viz.models.registry import DEFAULT_PAIR, get_model, parse_pair
from sa_viz.models.weights import LoadedModel, WeightsStatus, load_model
from sa_viz.probes import UnitGates, unread_of

TOP_K = 5


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class ModelExplanation:
    """Everything one model says about one image."""

    name: str
    title: str
    top5: list[Prediction]
    target: Prediction  # the class the CAM explains, with this model's probability for it
    cam: np.ndarray  # (H, W) float32 in [0, 1], over the display image
    cam_raw: np.ndarray  # (h, w) at the layer's resolution, unscaled (for cross-model scales)
    gates: dict[str, UnitGates]  # every attention unit, by name (none for ResNet-50); batch 1
    weights: WeightsStatus
    probabilities: np.ndarray = field(repr=False)  # (1000,)
    # Modules that look like attention but that no probe reads, by module path → "attention of
    # unknown kind, not read (CoordAttn)" (`sa_viz.probes.unread_attention`): named, not hidden.
    unread: dict[str, str] = field(default_factory=dict)

    @property
    def untrained(self) -> bool:
        return self.weights.untrained


@dataclass(frozen=True)
class Explanation:
    image: PreparedImage
    models: dict[str, ModelExplanation]
    layer: str
    method: str
    requested_class: int | None  # None: each model explains its own top-1


@cache
def default_model(name: str, device: str = "auto") -> LoadedModel:
    """A registered model with the weights found in $SA_VIZ_WEIGHTS_DIR (or ./weights), on
    `device`, loaded once per process."""
    return load_model(name, device=device)


def default_models(
    names: Sequence[str] = DEFAULT_PAIR, device: str = "auto"
) -> dict[str, LoadedModel]:
    return {name: default_model(name, device) for name in names}


def choose_models(
    models: Mapping[str, LoadedModel] | None,
    compare: Sequence[str] | str | None,
    device: str = "auto",
) -> dict[str, LoadedModel]:
    """The models to explain with, in order: `compare` (names, or "a,b") taken from `models`
    (loaded on first use when None); without `compare`, every model of `models`, or the default
    pair ResNet-50, SA-ResNet-50."""
    names = parse_pair(compare) if isinstance(compare, str) or compare is None else tuple(compare)
    if models is None:
        return default_models(names, device)
    if compare is None:
        return dict(models)
    missing = [n for n in names if n not in models]
    if missing:
        raise ValueError(f"{', '.join(missing)} not among the loaded models ({', '.join(models)})")
    return {n: models[n] for n in names}


def explain(
    image: ImageSource | PreparedImage,
    *,
    models: Mapping[str, LoadedModel] | None = None,
    compare: Sequence[str] | str | None = None,
    class_idx: int | None = None,
    layer: str = DEFAULT_LAYER,
    method: str = "gradcam",
    crop: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float | None = None,
    device: str = "auto",
) -> Explanation:
    """Explain one image with each model, in order.

    `compare`: the models to compare, as names ("resnet50", "se_resnet50") or "a,b" (default:
    every model of `models`, or ResNet-50 and SA-ResNet-50, loaded on first use); the second
    model's CAM minus the first's is the difference map.

    `class_idx`: None to explain each model's own top-1, or one ImageNet class for both.
    `method`: a key of `sa_viz.cam.METHODS`; `layer`: one of `sa_viz.cam.LAYERS`.
    `image`: a path, bytes, PIL image, array or an already `PreparedImage`.
    `timeout`: seconds after which the models stop (`sa_viz.hooks.TimeLimitExceeded`).
    `device`: where models loaded here run ("auto": a CUDA GPU if there is one; "cpu", "cuda");
    models passed in run where they are.
    """
    check_settings(layer, method)
    prepared = (
        image
        if isinstance(image, PreparedImage)
        else prepare_image(image, crop=crop, limits=limits)
    )
    models = choose_models(models, compare, device)
    check_models(models, layer)
    deadline = None if timeout is None else time.monotonic() + timeout
    results = explain_models(
        models, prepared, class_idx=class_idx, layer=layer, method=method, deadline=deadline
    )
    return Explanation(prepared, results, layer, method, class_idx)


def explain_models(
    models: Mapping[str, LoadedModel],
    image: PreparedImage,
    progress: Callable[[float, str], None] | None = None,
    **settings: Any,
) -> dict[str, ModelExplanation]:
    """`explain_model` for every model, one after the other (side by side on two threads was
    not faster on this project's machines: benchmarks/README.md).

    `progress(fraction, title)`: called as each model starts and as a long method's passes end
    (`sa_viz.hooks.report`), with the fraction of the whole done."""
    results = {}
    for i, (name, loaded) in enumerate(models.items()):
        if progress is None:
            results[name] = explain_model(loaded, image, **settings)
            continue

        def step(fraction: float, i: int = i, title: str = loaded.title) -> None:
            progress((i + fraction) / len(models), title)

        step(0.0)
        with reporting(step):
            results[name] = explain_model(loaded, image, **settings)
    return results


def check_models(models: Mapping[str, LoadedModel], layer: str) -> None:
    """The chosen models can be explained together: each offers `layer`, and all take the same
    input (one prepared image is shared)."""
    entries = [get_model(name) for name in models]
    for entry in entries:
        if layer not in entry.cam_layers:
            raise ValueError(
                f"{entry.title} has no CAM layer {layer!r}; it offers {', '.join(entry.cam_layers)}"
            )
    if len({entry.preprocessing for entry in entries}) > 1:
        raise ValueError(
            f"{' and '.join(e.title for e in entries)} were trained with different preprocessing; "
            "they can't share one input image"
        )


def check_settings(layer: str, method: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    get_method(method)  # a ValueError that lists the choices


def explain_model(
    loaded: LoadedModel,
    image: PreparedImage,
    *,
    class_idx: int | None = None,
    layer: str = DEFAULT_LAYER,
    method: str = "gradcam",
    deadline: float | None = None,
    stop: threading.Event | None = None,
) -> ModelExplanation:
    """One model's predictions, CAM and gates for a prepared image.

    `deadline`: a `time.monotonic()` value after which the computation stops with
    `sa_viz.hooks.TimeLimitExceeded` (None: no limit); `stop`: an event that stops it the
    same way once set (`sa_viz.hooks.Stopped`; a server sets it when it shuts down).
    """
    with time_limit(loaded.module, deadline, stop):
        return _explain_model(loaded, image, class_idx, layer, method)


def _explain_model(
    loaded: LoadedModel, image: PreparedImage, class_idx: int | None, layer: str, method: str
) -> ModelExplanation:
    model = loaded.module
    x = image.tensor.to(device_of(model))
    result = compute_cam(model, x, class_idx, layer, method, gates=True)
    cam, raw, classes, gates = result.maps[0], result.raw, result.class_idx, result.gates
    logits = result.logits
    probabilities = torch.softmax(logits.detach()[0].double(), 0).cpu().numpy()
    top = np.argsort(-probabilities, kind="stable")[:TOP_K]
    return ModelExplanation(
        name=loaded.name,
        title=loaded.title,
        top5=[_prediction(i, probabilities) for i in top],
        target=_prediction(classes[0], probabilities),
        cam=cam,
        cam_raw=raw[0],
        gates=dict(gates),
        weights=loaded.status,
        probabilities=probabilities.astype(np.float32),
        unread=unread_of(model),
    )


def _prediction(index: int, probabilities: np.ndarray) -> Prediction:
    return Prediction(int(index), label(int(index)), float(probabilities[index]))


def analyse_explanation(
    result: Explanation,
    models: Mapping[str, LoadedModel],
    names: Sequence[str],
    boxes: Sequence[tuple[float, float, float, float]] = (),
) -> dict[str, Any]:
    """The named analyses (`sa_viz.analyses`) of each model's explanation in `result`, with
    the objects' `boxes` in the model input's pixels (if known): model → analysis → its
    numbers and details (JSON-able)."""
    import dataclasses

    from sa_viz.analyses import ImageInput, run_analyses

    found: dict[str, Any] = {}
    for name, m in result.models.items() if names else ():
        model = models[name].module
        x = result.image.tensor.to(device_of(model))
        done = run_analyses(names, ImageInput(model, x, m.cam, m.target.index, tuple(boxes)))
        found[name] = {a: dataclasses.asdict(r) for a, r in done.items()}
    return found
