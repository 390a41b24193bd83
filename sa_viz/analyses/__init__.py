"""Analyses that test the maps and the gates: each is one module of this package with an
`ANALYSIS` (`Analysis`: a per-image step, the names of its numbers, and optionally a dataset
view of its own); `analyses()` finds them all, so adding one touches no other analysis, and
whoever runs analyses (the CLI, `/explain_json`, studies) asks this registry instead of naming
them.

Per image, a step gets an `ImageInput` (the model, the image as the model takes it, the CAM at
the image's size, its class, the object boxes when known) and returns named numbers (what a
study stores per row) and, if it has them, curves or per-group values (`details`, for figures
and exports). Over a dataset, every number gets the same reduction (means with 95 % bootstrap
intervals and a paired test, `sa_viz.analyses.stats`, applied by `sa_viz.outputs.study`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import nn

from sa_viz.cam.base import DEFAULT_LAYER
from sa_viz.errors import stage

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels


@dataclass(frozen=True)
class ImageInput:
    """One image for one model: `x` (1, 3, H, W) as the model takes it, `cam` (H, W) in [0, 1],
    the CAM's class `target`, the objects' `boxes` in `x`'s pixels (empty: none known), and the
    CAM's `layer` and `method` (`sa_viz.cam`), for an analysis that computes CAMs again."""

    model: nn.Module
    x: torch.Tensor
    cam: np.ndarray
    target: int
    boxes: tuple[Box, ...] = ()
    layer: str = DEFAULT_LAYER
    method: str = "gradcam"


@dataclass(frozen=True)
class Result:
    """What an analysis found for one image: `numbers` (name → value; a study's columns) and
    `details` (curves, per-group values: for figures and exports)."""

    numbers: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Analysis:
    name: str
    title: str
    per_image: Callable[[ImageInput], Result | None]  # None: does not apply (no box, say)
    numbers: tuple[str, ...]  # the names of its numbers, for reductions and columns
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    # A dataset view of its own beyond the means: (image → its numbers, image → its label)
    # → a JSON-able summary (the knockout's most harmful groups per class).
    dataset_view: (
        Callable[[Mapping[str, Mapping[str, float]], Mapping[str, int | None]], Any] | None
    ) = None
    # False: too slow for a page's request and its time limit (studies and the CLI run it)
    on_page: bool = True
    # False: offered on the page but not ticked there by default (the sanity checks: asked for
    # on purpose, and most of them take seconds per model, not a fraction of one)
    ticked: bool = True
    # The further numbers it gives per image beyond `numbers` (one per group, say: kept in a
    # study's rows, not reduced on their own), as a regular expression of their names.
    more_numbers: str | None = None
    # For a study's report: the details its chart draws (`sa_viz.render.figure_views.CHARTS`:
    # the MPRT's curves), from one model's mean numbers over the images (its `numbers` and
    # `more_numbers`), as the chart takes one image's `Result.details`.
    details_of_means: Callable[[Mapping[str, float]], Mapping[str, Any]] | None = None

    def owns(self, number: str) -> bool:
        """Whether the number named `number` (in a study's rows, say) is one of this analysis's."""
        return number in self.numbers or bool(
            self.more_numbers and re.fullmatch(self.more_numbers, number)
        )


_REGISTERED: dict[str, Analysis] = {}


@cache
def analyses() -> dict[str, Analysis]:
    """Every analysis of this package, by name (each module's `ANALYSIS`), and those registered
    by `register_analysis`."""
    found = dict(_REGISTERED)
    for module in pkgutil.iter_modules(__path__):
        analysis = getattr(importlib.import_module(f"{__name__}.{module.name}"), "ANALYSIS", None)
        if analysis is not None:
            found[analysis.name] = analysis
    return dict(sorted(found.items()))


def register_analysis(analysis: Analysis) -> Analysis:
    """Add an analysis from outside the package: it then reaches the app, the API, the CLI and
    studies like the built-in ones. A built-in analysis's name is refused."""
    if not isinstance(analysis, Analysis):
        raise TypeError(f"register_analysis takes an Analysis; got {type(analysis).__name__}")
    analyses.cache_clear()
    if analysis.name in analyses() and analysis.name not in _REGISTERED:
        raise ValueError(f"an analysis named {analysis.name!r} is built in")
    _REGISTERED[analysis.name] = analysis
    analyses.cache_clear()
    return analysis


def run_analyses(names: Sequence[str], image: ImageInput) -> dict[str, Result]:
    """The named analyses of one image (those that apply to it)."""
    results = {}
    for name in names:
        with stage("analysis"):
            result = analyses()[name].per_image(image)
        if result is not None:
            results[name] = result
    return results


def probability(model: nn.Module, x: torch.Tensor, target: int, chunk: int = 32) -> np.ndarray:
    """The softmax probability of `target` for each image of the batch `x`, in chunks, with no
    graph kept."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), chunk):
            logits = model(x[start : start + chunk])
            out.append(torch.softmax(logits.double(), 1)[:, target].cpu().numpy())
    return np.concatenate(out)
