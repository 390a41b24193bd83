"""Group knockout at every attention unit of a model, not one: per image, each unit's groups
knocked out one at a time and the whole unit (`knockout.group_knockout`, both gates passed
through), so that a study names, per unit and class, the groups whose removal hurts the class
most (the dataset view of SA-Net's `group_act` masking scores at every depth).

About 16 times the cost of `knockout` (one unit) for a ResNet-50 with a unit in every block:
meant for a study of a chosen subset, not for whole datasets on one CPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sa_viz.analyses import Analysis, ImageInput, Result
from sa_viz.analyses.knockout import group_knockout, harmful_groups
from sa_viz.models.registry import list_models
from sa_viz.probes.recorder import attention_of, unit_names, units_of

PREFIX = "knockout_dp_"  # + unit + "_g" + the group's number: one number per group
WHOLE = "knockout_unit_dp_"  # + unit: the whole unit knocked out


def group_prefix(unit: str) -> str:
    return f"{PREFIX}{unit}_g"


def every_unit(image: ImageInput) -> Result | None:
    units = [name for name, _, _ in units_of(image.model)]
    if not units:
        return None  # a model without gates
    numbers: dict[str, float] = {}
    details: dict[str, Any] = {}
    for unit in units:
        found = group_knockout(image.model, image.x, image.target, unit)
        numbers[f"{WHOLE}{unit}"] = found["unit_dp"]
        numbers |= {f"{group_prefix(unit)}{g:02d}": dp for g, dp in enumerate(found["group_dp"])}
        details[unit] = found
    return Result(numbers, details)


def harmful_groups_per_unit(
    numbers: Mapping[str, Mapping[str, float]], labels: Mapping[str, int | None]
) -> dict[str, Any]:
    """Per unit, per labelled class: the groups whose knockout hurts the class most."""
    seen = {k[len(WHOLE) :] for found in numbers.values() for k in found if k.startswith(WHOLE)}
    units = sorted(seen, key=lambda u: (UNITS.index(u) if u in UNITS else len(UNITS), u))
    return {unit: harmful_groups(numbers, labels, unit, group_prefix(unit)) for unit in units}


# The units of the registered gated models, in forward order: the declared numbers (one per
# unit, the whole unit knocked out) that a study reduces and compares between the models.
UNITS = list(
    dict.fromkeys(u for name in list_models() if attention_of(name) for u in unit_names(name))
)

ANALYSIS = Analysis(
    name="knockout_units",
    title="Group knockout at every attention unit (both gates passed through; slow: about "
    "16 × the knockout of one unit)",
    per_image=every_unit,
    numbers=tuple(f"{WHOLE}{unit}" for unit in UNITS),
    dataset_view=harmful_groups_per_unit,
    more_numbers=re.escape(PREFIX) + r".+_g\d+",  # each group of each unit
    on_page=False,  # measured: ~40 s for one 224-pixel image on 2 CPU cores, past the limit
)
