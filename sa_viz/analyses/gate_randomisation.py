"""Gates under randomisation: do an attention unit's gates follow the image, or only the unit's
own parameters? (The MPRT of Adebayo et al., NeurIPS 2018, applied to the gates instead of a map.)

The model's steps (`randomisation.block_steps`) are re-initialised on a private copy, cascading
both ways: from the head down and from the stem up. After each step every unit's gates (channel
and spatial values together, as the probes read them) are compared with the model's own by
Pearson's r. Per unit, three states stand out:

- above: every step above the unit's block randomised. The gates cannot change (nothing above a
  unit feeds it), so this is 1: a check of the check, kept in the details;
- own: the unit's block randomised too, and everything above it (the unit's parameters and the
  convolutions before it are random; its input from below is the model's);
- below: every step below the unit's block randomised, the block itself as trained: gates that
  still correlate with the model's are set by the unit's own parameters more than by the image.

Models without attention units: does not apply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sa_viz.analyses import Analysis, ImageInput, Result
from sa_viz.analyses.randomisation import (
    SEED,
    Step,
    block_steps,
    randomise,
    randomised_copy,
    restore,
    top_down,
)
from sa_viz.analyses.similarity import pearson
from sa_viz.hooks import report
from sa_viz.probes import UnitGates, record_gates, units_of

PREFIX = "gates_random_"
STATES = ("below", "own", "all")


def gate_values(gates: UnitGates) -> np.ndarray:
    """Every gate value of a unit for one image, channel gates then spatial gates."""
    parts = [g.numpy().ravel() for g in (gates.channel, gates.spatial) if g is not None]
    return np.concatenate(parts).astype(np.float64)


def gates_of(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Each unit's gate values for the image `x`, from one forward pass."""
    with torch.no_grad(), record_gates(model) as recorded:
        model(x)
    return {unit: gate_values(g) for unit, g in recorded.items()}


def _inside(path: str, outer: str) -> bool:
    return path == outer or path.startswith(f"{outer}.")


def _step_of_units(model: nn.Module, steps: Sequence[Step]) -> dict[str, int | None]:
    """Each unit's step (its index in `steps`), by the unit's module path; None: in no step."""
    paths = {id(m): path for path, m in model.named_modules()}
    found: dict[str, int | None] = {}
    for name, unit, _ in units_of(model):
        path = paths[id(unit)]
        found[name] = next(
            (i for i, s in enumerate(steps) if any(_inside(path, p) for p in s.modules)),
            None,
        )
    return found


def gates_under_randomisation(
    model: nn.Module, x: torch.Tensor, steps: Sequence[Step] | None = None, seed: int = SEED
) -> dict[str, Any] | None:
    """For one image `x`: each unit's gate correlation with the model's after each step of both
    cascades (`steps` in forward order; None: `block_steps`), and in the three states of the
    module's docstring. None for a model without attention units."""
    steps = block_steps(model) if steps is None else list(steps)
    where = _step_of_units(model, steps)
    if not where:
        return None
    own = gates_of(model, x)
    curves: dict[str, dict[str, list[float]]] = {}
    done = 0
    with randomised_copy(model) as copy:
        for order, sequence in (("top_down", top_down(steps)), ("bottom_up", steps)):
            for step in steps:  # the other cascade left the copy randomised
                restore(copy, model, step)
            curves[order] = {unit: [] for unit in where}
            for step in sequence:
                randomise(copy, step, seed)
                now = gates_of(copy, x)
                for unit in where:
                    curves[order][unit].append(pearson(own[unit], now[unit]))
                done += 1
                report(done / (2 * len(steps)))
    last = len(steps) - 1
    states: dict[str, dict[str, float]] = {"above": {}, "below": {}, "own": {}, "all": {}}
    for unit, j in where.items():
        states["all"][unit] = curves["bottom_up"][unit][-1]
        if j is None:
            continue
        # top_down[i] is steps[last - i]: the unit's step comes at i = last - j
        states["above"][unit] = 1.0 if j == last else curves["top_down"][unit][last - j - 1]
        states["own"][unit] = curves["top_down"][unit][last - j]
        states["below"][unit] = 1.0 if j == 0 else curves["bottom_up"][unit][j - 1]
    return {
        "units": list(where),
        "steps": [s.name for s in steps],
        **curves,
        **states,
        "seed": seed,
    }


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return float(np.mean(kept)) if kept else float("nan")


def gate_randomisation(image: ImageInput) -> Result | None:
    found = gates_under_randomisation(image.model, image.x)
    if found is None:
        return None
    numbers = {f"{PREFIX}{s}": _mean(list(found[s].values())) for s in STATES}
    for state in ("below", "own"):
        numbers |= {f"{PREFIX}{state}_{unit}": v for unit, v in found[state].items()}
    return Result(numbers, found)


ANALYSIS = Analysis(
    name="gate_randomisation",
    title="Gates under randomisation (correlation with the model's gates: blocks below a unit "
    "random, its own block random, everything random)",
    per_image=gate_randomisation,
    numbers=tuple(f"{PREFIX}{s}" for s in STATES),
    more_numbers=re.escape(PREFIX) + r"(below|own)_.+",
    on_page=True,  # 36 forwards: measured ~5 s per image for SA-ResNet-50 (benchmarks/README.md)
    ticked=False,
)
