"""Group knockout: what does each group of an attention unit do for a prediction?

`knocked_out` replaces, for each image of a batch, one group's gates of one unit (channel,
spatial or both) by a pass-through (1), by zero, or by the gate's own mean over the group (its
variation removed), with forward hooks on the unit's gate modules (the probes' taps) that live
only inside the block and see only the calling thread's passes: on exit, also on error, the
model is as it was and the gate recorder sees the real gates again.

`group_knockout` measures every group of a unit, and the whole unit, for one image: the
network's input to the unit's block is recorded once, then repeated, one copy per knockout, and
only the blocks from there on run again (`from_block`), in batches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from sa_viz.analyses import Analysis, ImageInput, Result
from sa_viz.hooks import stage_blocks, thread_local_hooks
from sa_viz.probes.recorder import units_of

VALUES = ("one", "zero", "mean")
GATES = ("channel", "spatial", "both")
WHOLE = -1  # in `groups`: every group of the unit
DEFAULT_UNIT = "layer3.0"
CHUNK = 16  # copies of the block's input run at once


def unit_taps(model: nn.Module, unit: str) -> tuple[int, dict[str, nn.Module]]:
    """The unit's number of groups and its gate modules by kind ("channel", "spatial"): those
    whose output is the gate itself (a tap that computes the gate from its module's output, as
    Global Context's softmax, cannot be replaced there)."""
    for name, module, probe in units_of(model):
        if name == unit:
            taps = {t.kind: t.module for t in probe.taps(module) if t.read is None}
            return probe.layout(name, module).groups, taps
    raise ValueError(f"{type(model).__name__} has no attention unit {unit!r}")


@contextmanager
def knocked_out(
    model: nn.Module,
    unit: str,
    groups: Sequence[int | None],
    gates: str = "both",
    value: str = "one",
) -> Iterator[None]:
    """Inside the block, image b of each batch through `model` has group `groups[b]` of `unit`
    knocked out (None: nothing; `WHOLE`: every group)."""
    if gates not in GATES or value not in VALUES:
        raise ValueError(f"gates must be one of {GATES} and value one of {VALUES}")
    count, taps = unit_taps(model, unit)
    kinds = [k for k in taps if gates in ("both", k)]
    if not kinds:
        raise ValueError(f"unit {unit} has no {gates} gate")
    chosen = torch.zeros(len(groups), count, dtype=torch.bool)
    for b, g in enumerate(groups):
        if g == WHOLE:
            chosen[b] = True
        elif g is not None:
            if not 0 <= g < count:
                raise ValueError(f"unit {unit} has groups 0–{count - 1}, not {g}")
            chosen[b, g] = True

    def replace(_module: nn.Module, _args: tuple[Any, ...], gate: torch.Tensor) -> torch.Tensor:
        view = gate.reshape(len(groups), count, -1)  # (B, G, the group's gate values)
        if value == "one":
            fill = torch.ones_like(view)
        elif value == "zero":
            fill = torch.zeros_like(view)
        else:
            fill = view.mean(dim=2, keepdim=True).expand_as(view)
        mask = chosen.to(gate.device)[:, :, None]
        return torch.where(mask, fill, view).reshape(gate.shape)

    with thread_local_hooks([(taps[k], replace) for k in kinds]):
        yield


def block_names(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's blocks in forward order, by name (`stage_blocks`, named)."""
    names = {id(m): n for n, m in model.named_modules()}
    return [(names[id(b)], b) for b in stage_blocks(model)]


def from_block(model: nn.Module, block: str, h: torch.Tensor) -> torch.Tensor:
    """The logits from the input `h` of the block named `block` onward (the blocks from there,
    then the head: torchvision's pooling and `fc`, or a timm model's `forward_head`)."""
    blocks = block_names(model)
    start = next((i for i, (n, _) in enumerate(blocks) if n == block), None)
    if start is None:
        raise ValueError(f"no block {block!r}")
    for _, b in blocks[start:]:
        h = b(h)
    if hasattr(model, "forward_head"):
        return model.forward_head(h)
    return model.fc(torch.flatten(model.avgpool(h), 1))


def block_input(model: nn.Module, block: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of `x` and the input of the block named `block` during that forward."""
    seen: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, args: tuple[Any, ...]) -> None:
        seen["h"] = args[0].detach()

    with thread_local_hooks(forward_pre_hooks=[(model.get_submodule(block), keep)]):
        logits = model(x)
    return logits, seen["h"]


def group_knockout(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    unit: str = DEFAULT_UNIT,
    gates: str = "both",
    value: str = "one",
) -> dict[str, Any]:
    """For one image `x` (1, 3, H, W): the change of the target's probability and logit when
    each group of `unit` is knocked out, and when the whole unit is; groups ranked by how much
    their knockout lowers the probability."""
    count, _ = unit_taps(model, unit)
    with torch.inference_mode():
        logits, h = block_input(model, unit, x)
        base_logit = float(logits[0, target])
        base_p = float(torch.softmax(logits.double(), 1)[0, target])
        wanted = [*range(count), WHOLE]
        out = []
        for start in range(0, len(wanted), CHUNK):
            rows = wanted[start : start + CHUNK]
            with knocked_out(model, unit, rows, gates, value):
                out.append(from_block(model, unit, h.expand(len(rows), *h.shape[1:])))
        knocked = torch.cat(out).double()
    p = torch.softmax(knocked, 1)[:, target].cpu().numpy()
    logit = knocked[:, target].cpu().numpy()
    dp, dlogit = p - base_p, logit - base_logit
    return {
        "unit": unit,
        "gates": gates,
        "value": value,
        "probability": base_p,
        "logit": base_logit,
        "group_dp": dp[:count].tolist(),
        "group_dlogit": dlogit[:count].tolist(),
        "unit_dp": float(dp[count]),
        "unit_dlogit": float(dlogit[count]),
        "ranking": np.argsort(dp[:count], kind="stable").tolist(),  # most harmful first
    }


def knockout(image: ImageInput) -> Result | None:
    try:
        found = group_knockout(image.model, image.x, image.target)
    except ValueError:
        return None  # a model without that unit
    # The most harmful group's index is in the details: an index has no mean worth a number.
    # Each group's change is kept too (a study's per-class view of the groups).
    return Result(
        {
            "knockout_unit_dp": found["unit_dp"],
            "knockout_worst_dp": float(min(found["group_dp"])),
            **{f"{GROUP_DP}{g:02d}": float(dp) for g, dp in enumerate(found["group_dp"])},
        },
        found,
    )


GROUP_DP = "knockout_dp_g"  # + the group's number: one number per group in a study's rows
HARMFUL = 3  # groups named per class


def harmful_groups(
    numbers: Mapping[str, Mapping[str, float]],
    labels: Mapping[str, int | None],
    unit: str = DEFAULT_UNIT,
    prefix: str = GROUP_DP,
) -> dict[str, Any]:
    """Per labelled class: the groups whose knockout lowers the class's probability most on
    average over its images (the dataset view of SA-Net's `group_act` masking scores), at
    `unit`, whose per-group numbers are named `prefix` + the group's number."""
    per_class: dict[int, list[np.ndarray]] = {}
    for key, found in numbers.items():
        groups = sorted(k for k in found if k.startswith(prefix))
        if labels.get(key) is None or not groups:
            continue
        per_class.setdefault(labels[key], []).append(np.array([found[k] for k in groups]))
    view = {}
    for label in sorted(per_class):
        mean = np.mean(per_class[label], axis=0)
        order = np.argsort(mean, kind="stable")[:HARMFUL]
        view[str(label)] = {
            "images": len(per_class[label]),
            "groups": [int(g) for g in order],
            "mean_dp": [float(mean[g]) for g in order],
        }
    return {"unit": unit, "per_class": view}


ANALYSIS = Analysis(
    name="knockout",
    title=f"Group knockout at {DEFAULT_UNIT} (both gates passed through, one group at a time)",
    per_image=knockout,
    numbers=("knockout_unit_dp", "knockout_worst_dp"),
    dataset_view=harmful_groups,
    more_numbers=re.escape(GROUP_DP) + r"\d+",
)
