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

from sa_viz.cam import DEFAULT_LAYER, LAYERS, compute_cam, get_method, scale_cams
from sa_viz.data.imagenet import label
from sa_viz.data.preprocess import (
    DEFAULT_LIMITS,
    ImageSource,
    Limits,
    PreparedImage,
    prepare_image,
)
from sa_viz.data.regions import Region, place, take
from sa_viz.data.transforms import IMAGENET, Preprocessing
from sa_viz.hooks import reporting, time_limit
from sa_viz.models.device import device_of
from sa_viz.models.entry import ModelEntry
from sa_viz.models.registry import DEFAULT_PAIR, MAX_MODELS, get_model, parse_models
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
    # (H, W) float32 in [0, 1], over the display image; NaN where the model saw nothing (its
    # centre crop narrower than another compared model's: `PreparedImage.region_of`)
    cam: np.ndarray
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
    names = parse_models(compare)
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

    `compare`: one to four models to compare, as names ("resnet50", "seresnet50.ra2_in1k",
    "timm:NAME") or "a,b,c" (default: every model of `models`, or ResNet-50 and SA-ResNet-50,
    loaded on first use); the second model's CAM minus the first's is the difference map. Each
    model takes the image with its own preprocessing.

    `class_idx`: None to explain each model's own top-1, or one ImageNet class for both.
    `method`: a key of `sa_viz.cam.METHODS`; `layer`: one of `sa_viz.cam.LAYERS`.
    `image`: a path, bytes, PIL image, array or an already `PreparedImage`.
    `timeout`: seconds after which the models stop (`sa_viz.hooks.TimeLimitExceeded`).
    `device`: where models loaded here run ("auto": a CUDA GPU if there is one; "cpu", "cuda");
    models passed in run where they are.
    """
    check_settings(layer, method)
    models = choose_models(models, compare, device)
    check_models(models, layer)
    prepared = (
        image
        if isinstance(image, PreparedImage)
        else prepare_image(image, crop=crop, limits=limits, preprocessing=preprocessing_of(models))
    )
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


def check_models(models: Mapping[str, LoadedModel] | Sequence[str], layer: str) -> None:
    """The chosen models can be explained together: each offers `layer` (its N-th CAM layer
    for "layerN"), and there are at most `MAX_MODELS`."""
    if not 1 <= len(models) <= MAX_MODELS:
        raise ValueError(f"explain one to {MAX_MODELS} models at a time; got {len(models)}")
    for name in models:
        layer_of(name, layer)  # a ValueError that lists its layers


def entry_of(name: str) -> ModelEntry | None:
    """The registry's entry of `name`, None for a model from outside the registry (a
    `LoadedModel` passed in under a name of its own): that one takes ImageNet's preprocessing
    and its CAM layer as named."""
    try:
        return get_model(name)
    except ValueError:
        return None


def layer_of(name: str, layer: str) -> str:
    """The module path of the page's CAM layer `layer` in model `name` (`layer_module`)."""
    entry = entry_of(name)
    return layer if entry is None else entry.layer_module(layer)


def preprocessing_for(name: str) -> Preprocessing:
    entry = entry_of(name)
    return IMAGENET if entry is None else entry.preprocessing


def preprocessing_of(models: Mapping[str, LoadedModel] | Sequence[str]) -> list[Preprocessing]:
    """Each model's input transform, in order (`prepare_image` takes them)."""
    return [preprocessing_for(name) for name in models]


def model_input(image: PreparedImage, name: str) -> torch.Tensor:
    """The prepared image as model `name` takes it."""
    return image.input_for(preprocessing_for(name))


def to_display(cam: np.ndarray, image: PreparedImage, name: str) -> np.ndarray:
    """A map over model `name`'s input (its pixels or a layer's grid), over the display image:
    where that model's crop lies in it (`PreparedImage.region_of`), NaN where it saw nothing
    (centre-crop mode, a model evaluated with a narrower crop than another's)."""
    return place(cam, region_of(image, name), image.size)


def raw_cam_on_display(raw: np.ndarray, image: PreparedImage, name: str) -> np.ndarray:
    """A raw CAM of model `name` (its layer's grid, as a study's rows keep it) as the page shows
    it: scaled as pytorch-grad-cam scales it over the model's input, then over the display
    (`to_display`)."""
    size = image.view_for(preprocessing_for(name)).shape[:2]
    return to_display(scale_cams(np.asarray(raw, np.float32)[None], size)[0], image, name)


def prepare_for(
    source: ImageSource, names: Sequence[str], *, crop: bool, limits: Limits = DEFAULT_LIMITS
) -> PreparedImage:
    """`source` prepared for the models `names`, each with its own preprocessing."""
    return prepare_image(source, crop=crop, limits=limits, preprocessing=preprocessing_of(names))


def region_of(image: PreparedImage, name: str) -> Region | None:
    """The box of the display that model `name` saw (None: all of it)."""
    return image.region_of(preprocessing_for(name))


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
    x = model_input(image, loaded.name).to(device_of(model))
    result = compute_cam(model, x, class_idx, layer_of(loaded.name, layer), method, gates=True)
    cam, raw, classes, gates = result.maps[0], result.raw, result.class_idx, result.gates
    cam = to_display(cam, image, loaded.name)
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
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """The named analyses (`sa_viz.analyses`) of each model's explanation in `result`, with
    the objects' `boxes` in the model input's pixels (if known): model → analysis → its
    numbers and details (JSON-able).

    `progress(fraction, title)`: called as each analysis of each model starts and as a long
    one says how far it is (`sa_viz.hooks.report`), with the fraction of the whole done."""
    import dataclasses

    from sa_viz.analyses import ImageInput, run_analyses

    found: dict[str, Any] = {}
    pairs = len(result.models) * len(names)
    for i, (name, m) in enumerate(result.models.items() if names else ()):
        model = models[name].module
        x = model_input(result.image, name).to(device_of(model))
        cam, scaled = in_model_input(m.cam, boxes, x, region_of(result.image, name))
        layer = layer_of(name, result.layer)
        image = ImageInput(model, x, cam, m.target.index, scaled, layer, result.method)
        done = {}
        for j, analysis in enumerate(names):

            def step(
                fraction: float, at: int = i * len(names) + j, title: str = f"{m.title}: {analysis}"
            ) -> None:
                if progress is not None:
                    progress((at + fraction) / pairs, title)

            step(0.0)
            with reporting(step):
                done |= run_analyses([analysis], image)
        found[name] = {a: dataclasses.asdict(r) for a, r in done.items()}
    return found


def in_model_input(
    cam: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    x: torch.Tensor,
    region: Region | None = None,
) -> tuple[np.ndarray, tuple[tuple[float, float, float, float], ...]]:
    """A display map and boxes in the display's pixels, in the pixels of the model input `x`,
    which covers `region` of the display (None: all of it; another size in centre-crop mode).
    A box is clipped to the input; one left with no area is dropped."""
    h, w = x.shape[-2:]
    if region is None and cam.shape == (h, w):
        return cam, tuple(boxes)
    return take(cam, region, (h, w)), boxes_in_model_input(boxes, region, cam.shape, (h, w))


def boxes_in_model_input(
    boxes: Sequence[tuple[float, float, float, float]],
    region: Region | None,
    shown: tuple[int, ...],
    size: tuple[int, ...],
) -> tuple[tuple[float, float, float, float], ...]:
    """Boxes in the pixels of a display of (height, width) `shown`, in those of a model input
    of `size` that covers `region` of it (None: all of it); clipped to the input, a box left
    with no area dropped."""
    h, w = size[:2]
    rx0, ry0, rx1, ry1 = region or (0.0, 0.0, float(shown[1]), float(shown[0]))
    sx, sy = w / (rx1 - rx0), h / (ry1 - ry0)
    mapped = []
    for x0, y0, x1, y1 in boxes:
        nx0, nx1 = (min(max((v - rx0) * sx, 0.0), w) for v in (x0, x1))
        ny0, ny1 = (min(max((v - ry0) * sy, 0.0), h) for v in (y0, y1))
        if nx1 > nx0 and ny1 > ny0:
            mapped.append((nx0, ny0, nx1, ny1))
    return tuple(mapped)
