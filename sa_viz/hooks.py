"""Forward hooks that live exactly as long as a `with` block and see only their own thread's calls.

Both the gate recorder and the Grad-CAM probe need this. Hooks belong to module instances, so
two threads running the same model would otherwise see each other's tensors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


@contextmanager
def thread_local_hooks(
    forward_hooks: Iterable[tuple[nn.Module, ForwardHook]] = (),
    forward_pre_hooks: Iterable[tuple[nn.Module, Callable[[nn.Module, tuple[Any, ...]], Any]]] = (),
) -> Iterator[None]:
    """Register the hooks for the calling thread; remove every one on exit, also on error."""
    owner = threading.get_ident()

    def only_here(fn: Callable[..., Any]) -> Callable[..., Any]:
        def hook(*args: Any) -> Any:
            if threading.get_ident() == owner:
                return fn(*args)
            return None

        return hook

    handles = []
    try:
        for module, fn in forward_pre_hooks:
            handles.append(module.register_forward_pre_hook(only_here(fn)))
        for module, fn in forward_hooks:
            handles.append(module.register_forward_hook(only_here(fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()


class TimeLimitExceeded(RuntimeError):
    """A computation ran past its deadline; raised between two blocks of a model's forward."""


@contextmanager
def time_limit(model: nn.Module, deadline: float | None) -> Iterator[None]:
    """Stop the calling thread's forward passes through `model` once `time.monotonic()` passes
    `deadline` (None: no limit).

    Checked before the model and before each of its residual blocks (every ~10–50 ms on a CPU),
    so a long computation (ScoreCAM runs the model once per channel) ends soon after its
    deadline, leaving the model untouched. Hooks on blocks keep the folded fast path.
    """
    if deadline is None:
        yield
        return

    def check(_module: nn.Module, _inputs: tuple[Any, ...]) -> None:
        if time.monotonic() > deadline:
            raise TimeLimitExceeded("the time limit was reached")

    blocks = [model, *(m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck)))]
    with thread_local_hooks(forward_pre_hooks=[(block, check) for block in blocks]):
        yield
