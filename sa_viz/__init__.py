"""SA-Viz: what attention changes in a CNN. Models side by side: predictions, CAMs and every
attention unit's gates, analyses, and studies of whole datasets.

The Python API, each name loaded on first use (so `import sa_viz` stays light: the web server
sets up its own temp folder before torch is imported):

- `explain(image, compare="resnet50,sa_resnet50")`: one image through the models (an
  `Explanation`); `prepare_image`: any image → the model input and the display image;
- `record_gates(model)`: every attention gate of a forward pass, by forward hooks;
  `grad_cam(model, x, class_idx)` and `compute_cam(model, x, classes, layer, method)`;
- `list_models()`, `get_model(name)`, `load_model(name)`, `load_checkpoint(model, path)`;
- `run_study(source, out, models)`: a dataset into Parquet rows, study.json and a report;
  `StudyTable(out)`: its images as one table to sort, filter (`Query`) and write as CSV;
- `register_model(name, builder, checkpoint=..., preprocessing=Preprocessing(...))` or
  `register_model(entry)`, `register_probe(probe)`, `register_analysis(analysis)`,
  `register_method(method)`: a new model, attention type, analysis or CAM method, offered
  everywhere the built-in ones are.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Each public name and the module that defines it.
_API = {
    "explain": "sa_viz.pipeline.explain",
    "Explanation": "sa_viz.pipeline.explain",
    "prepare_image": "sa_viz.data.preprocess",
    "record_gates": "sa_viz.probes",
    "grad_cam": "sa_viz.cam",
    "compute_cam": "sa_viz.cam",
    "list_models": "sa_viz.models",
    "get_model": "sa_viz.models",
    "load_model": "sa_viz.models.weights",
    "load_checkpoint": "sa_viz.models.weights",
    "run_study": "sa_viz.studies",
    "StudyTable": "sa_viz.studies.browse",
    "Query": "sa_viz.studies.browse",
    "register_model": "sa_viz.models",
    "Preprocessing": "sa_viz.data.transforms",
    "register_probe": "sa_viz.probes",
    "register_analysis": "sa_viz.analyses",
    "register_method": "sa_viz.cam",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'sa_viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
