"""The study on a Ray cluster (`--engine ray`): the same records as the local engine, computed by
Ray Data actors that each hold the models once.

The models go to the cluster through Ray's object store (`ray.put` of the driver's modules, on
the CPU), so every worker runs exactly the weights the driver loaded and hashed, and no worker
needs the checkpoint files. Each actor decodes its batch (`decode`, the local engine's function)
and computes it with `study_batch`, on a GPU where the cluster has one (one GPU per actor). The
driver receives, per image, its pickled records or its problem, and writes them as the local
engine does; the order of the images may differ, the rows do not.

Ray is an optional extra (`pip install "sa-viz[ray]"`): nothing here imports it at module level.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sa_viz.data.sources import Item
from sa_viz.models.weights import LoadedModel
from sa_viz.pipeline.explain import preprocessing_of
from sa_viz.pipeline.study import decode, study_batch

NO_LABEL = -1  # Ray Data columns are arrays: an unknown label travels as -1


class RayUnavailable(RuntimeError):
    """Ray is not installed."""


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise RayUnavailable(
            'the Ray engine needs Ray: pip install "sa-viz[ray]" (or: pip install "ray[data]")'
        ) from error
    return ray


class StudyActor:
    """One Ray worker: the models, loaded once, and a batch of items in, records out."""

    def __init__(
        self, models_ref: Any, layer: str, crop: bool, use_gpu: bool, analyses: Sequence[str]
    ) -> None:
        import ray
        import torch

        models = ray.get(models_ref)
        device = torch.device("cuda" if use_gpu else "cpu")
        self.models = {
            name: LoadedModel(m.name, m.module.to(device).eval(), m.status)
            for name, m in models.items()
        }
        self.layer, self.crop, self.analyses = layer, crop, tuple(analyses)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [
            Item(
                str(key),
                Path(str(path)),
                None if int(label) == NO_LABEL else int(label),
                tuple(tuple(box) for box in json.loads(str(boxes))),
            )
            for key, path, label, boxes in zip(
                batch["key"], batch["path"], batch["label"], batch["boxes"], strict=True
            )
        ]
        preprocessing = preprocessing_of(self.models)
        decoded = [decode(item, self.crop, preprocessing=preprocessing) for item in items]
        records = study_batch(self.models, decoded, self.layer, self.analyses)
        by_key: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_key.setdefault(record["key"], []).append(record)
        return {
            "key": np.array([item.key for item in items], dtype=object),
            "records": np.array(
                [pickle.dumps(by_key.get(item.key, [])) for item in items], dtype=object
            ),
            "problem": np.array([d.problem or "" for d in decoded], dtype=object),
        }


def ray_batches(
    items: Sequence[Item],
    models: Mapping[str, LoadedModel],
    *,
    batch_size: int,
    layer: str,
    crop: bool,
    workers: int | None,
    address: str | None = None,
    analyses: Sequence[str] = (),
) -> Iterator[tuple[int, list[dict[str, Any]], list[str]]]:
    """(images, records, problems) for `items`, batch by batch, from `workers` Ray actors (None:
    one per GPU of the cluster, else 2);
    connects to the cluster at `address` (or starts a local instance) unless Ray is running."""
    ray = import_ray()
    if not items:
        return
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the study's own bar counts the images
    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = gpus > 0
    workers = workers or gpus or 2  # default: one per GPU, else 2
    if use_gpu:
        workers = min(workers, gpus)  # one GPU each: more would wait for a GPU forever
    on_cpu = {name: LoadedModel(m.name, _on_cpu(m.module), m.status) for name, m in models.items()}
    rows = [  # absolute paths: a worker of a cluster has a working folder of its own
        {
            "key": i.key,
            "path": str(Path(i.path).resolve()),
            "label": NO_LABEL if i.label is None else i.label,
            "boxes": json.dumps([list(box) for box in i.boxes]),
        }
        for i in items
    ]
    dataset = ray.data.from_items(rows).map_batches(
        StudyActor,
        fn_constructor_kwargs={
            "models_ref": ray.put(on_cpu),
            "layer": layer,
            "crop": crop,
            "use_gpu": use_gpu,
            "analyses": tuple(analyses),
        },
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
        num_gpus=1 if use_gpu else 0,
    )
    for out in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        records = [r for blob in out["records"] for r in pickle.loads(blob)]
        problems = [str(p) for p in out["problem"] if p]
        yield len(out["key"]), records, problems


def _on_cpu(module: Any) -> Any:
    """The module as the object store should carry it: on the CPU (a worker may have no GPU)."""
    parameter = next(module.parameters(), None)
    if parameter is None or parameter.device.type == "cpu":
        return module
    return copy.deepcopy(module).cpu()
