"""A study: many images through the compared models in batches, one record per image and model.

Per image and model: the top-5, whether the label is in it (when there is one), the CAM target
(the label if known, else the model's top-1) with the raw Grad-CAM at the chosen layer, and the
gate summaries of every attention unit: per group, the channel-gate values and the spatial gate's
mean, spread (std), entropy and peak position. Per image: the pair's CAM agreement, the image's
sizes and its decoding notes.

Grad-CAM here comes from the same forward pass as one image's (`sa_viz.cam.forward_pass`), for a
batch at once; images are decoded by `sa_viz.data.preprocess` in worker processes
(`decoded`), with the centre crop by default so that they batch. No files are written here:
`sa_viz.outputs.study` does that.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sa_viz.analyses import Box, ImageInput, run_analyses
from sa_viz.cam import DEFAULT_LAYER, cam_agreement, compute_cam
from sa_viz.data.preprocess import (
    DEFAULT_LIMITS,
    ImageError,
    Limits,
    boxes_in_input,
    prepare_image,
    to_tensor,
    view_key,
)
from sa_viz.data.regions import Region, place
from sa_viz.data.sources import Item
from sa_viz.data.transforms import IMAGENET, Preprocessing
from sa_viz.models.device import device_of
from sa_viz.models.weights import LoadedModel
from sa_viz.pipeline.explain import (
    boxes_in_model_input,
    layer_of,
    preprocessing_for,
    preprocessing_of,
)
from sa_viz.probes import unit_summary

TOP_K = 5


@dataclass(frozen=True)
class Decoded:
    """An item decoded for the models (`pixels`: (224, 224, 3) uint8), or why it could not be."""

    item: Item
    pixels: np.ndarray | None
    problem: str | None = None
    sha256: str | None = None  # of the file's bytes: the same picture under two names
    boxes: tuple[Box, ...] = ()  # the item's boxes in the model input's pixels
    original_size: tuple[int, int] | None = None  # (width, height), upright, as decoded
    notes: tuple[str, ...] = ()  # what decoding did to it (`PreparedImage.notes`)
    # The other models' pixels, by `view_key` (`PreparedImage.views`); `pixels` is `protocol`'s.
    views: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)
    protocol: Preprocessing = IMAGENET
    crop: bool = True
    regions: dict[tuple, Region] = field(default_factory=dict)  # `PreparedImage.regions`

    def input_for(self, preprocessing: Preprocessing) -> torch.Tensor:
        """(1, 3, h, w): the image as a model with `preprocessing` takes it."""
        key = view_key(preprocessing, self.crop)
        pixels = self.pixels if key == view_key(self.protocol, self.crop) else self.views[key]
        return to_tensor(pixels, preprocessing.mean, preprocessing.std)

    def region_of(self, name: str) -> Region | None:
        """The box of `pixels` that model `name` saw (None: all of it)."""
        return self.regions.get(view_key(preprocessing_for(name), self.crop))


def decode(
    item: Item,
    crop: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    preprocessing: Sequence[Preprocessing] = (),
) -> Decoded:
    """One item's pixels as the models (with `preprocessing`) take them; an unreadable file
    gives its problem instead (runs in a worker process: plain data in and out)."""
    try:
        digest = hashlib.sha256(Path(item.path).read_bytes()).hexdigest()
        prepared = prepare_image(item.path, crop=crop, limits=limits, preprocessing=preprocessing)
        boxes = boxes_in_input(item.boxes, prepared)  # given in the upright file's pixels
    except (ImageError, OSError) as error:
        return Decoded(item, None, f"{item.key}: {error}")
    return Decoded(
        item,
        prepared.display,
        sha256=digest,
        boxes=boxes,
        original_size=prepared.original_size,
        notes=prepared.notes,
        views=prepared.views,
        protocol=prepared.protocol,
        crop=crop,
        regions=prepared.regions,
    )


def decoded(
    items: Sequence[Item],
    pool: Executor | None,
    batch_size: int,
    crop: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    preprocessing: Sequence[Preprocessing] = (),
) -> Iterator[list[Decoded]]:
    """The items decoded, `batch_size` at a time and in order; with a `pool`, the next two
    batches are being decoded while the caller computes one (memory: three batches)."""
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if pool is None:
        for batch in batches:
            yield [decode(item, crop, limits, preprocessing) for item in batch]
        return
    ahead: list[list[Future[Decoded]]] = []
    for batch in batches:
        ahead.append([pool.submit(decode, item, crop, limits, preprocessing) for item in batch])
        if len(ahead) > 2:
            yield [f.result() for f in ahead.pop(0)]
    for futures in ahead:
        yield [f.result() for f in futures]


def study_batch(
    models: Mapping[str, LoadedModel],
    batch: list[Decoded],
    layer: str = DEFAULT_LAYER,
    analyses: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Records (one per decoded image and model, in that order) for one batch; with the
    numbers of the named `analyses` (`sa_viz.analyses`) of each image and model."""
    good = [d for d in batch if d.pixels is not None]
    if not good:
        return []
    labels = [d.item.label for d in good]
    per_model: dict[str, dict[str, Any]] = {}
    for name, loaded in models.items():
        model = loaded.module
        x = torch.cat([d.input_for(preprocessing_for(name)) for d in good])
        # The label's class where there is one, else the model's own top-1 (None)
        module = layer_of(name, layer)
        result = compute_cam(model, x.to(device_of(model)), labels, module, gates=True)
        targets, raw = result.class_idx, result.raw
        maps = [  # over the shown pixels, NaN where this model saw nothing (`place`)
            place(m, d.region_of(name), d.pixels.shape[:2])
            for m, d in zip(result.maps, good, strict=True)
        ]
        probabilities = torch.softmax(result.logits.double(), 1).cpu().numpy()
        per_model[name] = {
            "probabilities": probabilities,
            "targets": targets,
            "raw": raw,
            "maps": maps,
            "gates": result.gates,
            "analyses": [
                analysis_numbers(
                    analyses,
                    model,
                    x[i : i + 1],
                    result.maps[i],  # on the model's own input: no round trip
                    targets[i],
                    boxes_in_model_input(d.boxes, d.region_of(name), d.pixels.shape, x.shape[-2:]),
                    module,
                )
                for i, d in enumerate(good)
            ],
        }
    names = list(models)
    records = []
    for i, d in enumerate(good):
        agreement = (
            cam_agreement(per_model[names[0]]["maps"][i], per_model[names[1]]["maps"][i])
            if len(names) >= 2
            else {"pearson": float("nan"), "iou_top": float("nan")}
        )
        for name in names:
            m = per_model[name]
            p = m["probabilities"][i]
            top = np.argsort(-p, kind="stable")[:TOP_K]
            label = d.item.label
            records.append(
                {
                    "key": d.item.key,
                    "sha256": d.sha256,
                    "model": name,
                    "label": label,
                    "top5": top.tolist(),
                    "top5_p": p[top].astype(np.float32).tolist(),
                    "correct1": None if label is None else bool(top[0] == label),
                    "correct5": None if label is None else bool(label in top),
                    "target": int(m["targets"][i]),
                    "target_p": float(p[m["targets"][i]]),
                    "cam_raw": m["raw"][i].astype(np.float32).ravel().tolist(),
                    "cam_shape": list(m["raw"][i].shape),
                    "pearson": _finite(agreement["pearson"]),
                    "iou_top20": _finite(agreement["iou_top"]),
                    "units": [
                        {"unit": unit, **unit_summary(g, i)} for unit, g in m["gates"].items()
                    ],
                    "analyses": m["analyses"][i],
                    **image_fields(d),
                }
            )
    return records


def image_fields(d: Decoded) -> dict[str, Any]:
    """A decoded image's sizes, each as {"width", "height"}, and its decoding notes."""
    height, width = np.shape(d.pixels)[:2]
    size = d.original_size
    return {
        "input_size": {"width": width, "height": height},
        "original_size": None if size is None else {"width": size[0], "height": size[1]},
        "notes": list(d.notes),
    }


def analysis_numbers(
    names: Sequence[str],
    model: torch.nn.Module,
    x: torch.Tensor,
    cam: np.ndarray,
    target: int,
    boxes: tuple[Box, ...],
    layer: str = DEFAULT_LAYER,
) -> dict[str, float]:
    """The numbers of the named analyses of one image (those that apply to it), whose CAM is
    Grad-CAM at `layer` (a study's); the CAM and the `boxes` in the pixels of the input `x`."""
    if not names:
        return {}
    image = ImageInput(model, x.to(device_of(model)), cam, int(target), boxes, layer)
    found = run_analyses(names, image)
    return {k: v for result in found.values() for k, v in result.numbers.items()}


def _finite(value: float) -> float | None:
    return None if value != value else float(value)


def decoding_processes() -> int:
    """The local engine's decoding processes by default: none on a machine of 2 cores or fewer
    (there, two processes that import torch and decode took the models' CPU: 3.6 images/s
    against 5.5–6.2 without, benchmarks/README.md), else half the cores, at most 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


def local_batches(
    items: Sequence[Item],
    models: Mapping[str, LoadedModel],
    *,
    batch_size: int,
    layer: str,
    crop: bool,
    workers: int | None,
    analyses: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[tuple[int, list[dict[str, Any]], list[str]]]:
    """(images, records, problems) for `items`, batch by batch, in this process, with `workers`
    decoding processes (0: none; None: `decoding_processes()`)."""
    workers = decoding_processes() if workers is None else workers
    # Worker processes started fresh ("spawn"): forked from a process whose torch threads are
    # running, a worker can deadlock (seen: a study that never began).
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context) if workers > 0 else None
    preprocessing = preprocessing_of(models)
    try:
        for batch in decoded(items, pool, batch_size, crop, limits, preprocessing):
            problems = [d.problem for d in batch if d.problem]
            yield len(batch), study_batch(models, batch, layer, analyses), problems
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
