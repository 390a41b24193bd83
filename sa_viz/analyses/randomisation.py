"""Model parameter randomisation for the sanity checks (Adebayo et al., NeurIPS 2018): the steps
a network is randomised in, a private copy to randomise, and the seeded re-initialisation.

The served model is never changed: `randomised_copy` deep-copies it, without the hooks that
other requests (or the time limit) have on it at that moment, and gives the copy the calling
thread's time limit of its own. A step re-initialises each of its modules as the module itself
does (`reset_parameters`: PyTorch's default init for convolutions and linear layers, identity
with fresh running statistics for normalisation layers, as Quantus's `MPRT` does); a parameter
no `reset_parameters` covers (an SA unit's `cweight`, say) is drawn from N(0, 1).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from sa_viz.hooks import time_checked

SEED = 0
ORDERS = ("cascade", "independent")


@dataclass(frozen=True)
class Step:
    """One randomisation step: its `name` (a block's, or the stem's modules joined by "+") and
    the paths of the modules it randomises."""

    name: str
    modules: tuple[str, ...]


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def block_steps(model: nn.Module) -> list[Step]:
    """The network's steps in forward order: each residual block of each stage (the children of
    the model's `nn.Sequential` children, as `sa_viz.hooks.stage_blocks` finds them) on its
    own, and between the stages the parameterised modules together (ResNet-50: `conv1+bn1`,
    the 16 blocks, `fc`: 18 steps)."""
    steps: list[Step] = []
    loose: list[str] = []  # the parameterised modules since the last stage

    def flush() -> None:
        if loose:
            steps.append(Step("+".join(loose), tuple(loose)))
            loose.clear()

    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            flush()
            for block, module in child.named_children():
                if _has_parameters(module):
                    steps.append(Step(f"{name}.{block}", (f"{name}.{block}",)))
        elif _has_parameters(child):
            loose.append(name)
    flush()
    return steps


def module_steps(model: nn.Module) -> list[Step]:
    """One step per module that re-initialises itself (`reset_parameters`), in forward order:
    the finest randomisation, and Quantus's."""
    return [
        Step(name, (name,))
        for name, module in model.named_modules()
        if name and hasattr(module, "reset_parameters")
    ]


def top_down(steps: Sequence[Step]) -> list[Step]:
    """The steps from the head down: the order of the cascading randomisation."""
    return list(reversed(steps))


def module_seed(seed: int, name: str) -> int:
    """Each module's own seed, from the check's seed and the module's path: the same module
    gets the same values in every order and grouping, and no two modules share their draws."""
    return seed + zlib.crc32(name.encode())


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def randomise(model: nn.Module, step: Step, seed: int = SEED) -> None:
    """Re-initialise every module of `step` in `model`, each from its own seed (`module_seed`);
    the global random state is left as it was."""
    with (
        torch.inference_mode(False),
        torch.no_grad(),
        torch.random.fork_rng(devices=_cuda_devices(model)),
    ):
        for path in step.modules:
            for name, module in model.get_submodule(path).named_modules(prefix=path):
                torch.manual_seed(module_seed(seed, name))
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                    continue
                for parameter in module.parameters(recurse=False):
                    parameter.normal_()


def restore(model: nn.Module, original: nn.Module, step: Step) -> None:
    """Put back the modules of `step` in `model` from `original` (of which `model` is a copy)."""
    with torch.inference_mode(False), torch.no_grad():
        for path in step.modules:
            model.get_submodule(path).load_state_dict(original.get_submodule(path).state_dict())


def hookless_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` without its forward and backward hooks.

    Hooks are instance state that `copy.deepcopy` would copy along: other requests' gate
    recorders and Grad-CAM probes (they would fill the other request's results from this
    copy's passes), and the time limit of the lane that runs this. The hooks' dicts are never
    iterated (another thread may add to them meanwhile): the copy gets new, empty ones.
    """
    memo: dict[int, object] = {}
    for module in model.modules():
        for name, value in vars(module).items():
            if name.startswith(("_forward_", "_backward_")) and isinstance(value, dict):
                memo[id(value)] = type(value)()
    # Outside inference mode: a parameter cloned inside it could never take part in autograd,
    # and Grad-CAM needs gradients through the copy.
    with torch.inference_mode(False):
        return copy.deepcopy(model, memo)


@contextmanager
def randomised_copy(model: nn.Module) -> Iterator[nn.Module]:
    """A private copy of `model` to randomise (`hookless_copy`), checking the calling thread's
    time limit like the model itself; dropped on exit."""
    twin = hookless_copy(model)
    with time_checked(twin):
        yield twin
