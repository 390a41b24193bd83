"""Forward hooks that live exactly as long as a `with` block and see only their own thread's calls.

Both the gate recorder and the Grad-CAM probe need this. Hooks belong to module instances, so
two threads running the same model would otherwise see each other's tensors. The time limit and
the progress reports of long work ride on the same hooks.

A foundation module: it imports nothing from the package, and every folder may import it (the
probes, the CAMs, the analyses, the pipeline and the app all do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

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


class Stopped(TimeLimitExceeded):
    """A computation was asked to stop (the server is shutting down)."""


_limits = threading.local()  # the calling thread's (deadline, stop) inside `time_limit`
_progress = threading.local()  # the calling thread's callback inside `reporting`


def check_time() -> None:
    """Raise if the calling thread's `time_limit` block has run out of time or was asked to stop.

    The forward hooks call this between blocks; work that runs outside any forward pass (a
    CAM method's SVD, say) calls it between its steps. Does nothing outside `time_limit`.
    """
    deadline, stop = getattr(_limits, "current", (None, None))
    if stop is not None and stop.is_set():
        raise Stopped("the computation was stopped")
    if deadline is not None and time.monotonic() > deadline:
        raise TimeLimitExceeded("the time limit was reached")


def stage_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of a network's stages: the children of each `nn.Sequential` child of the model
    (ResNet's `layer1` … `layer4`, SENet's `layer0` … `layer4`), tens of milliseconds each."""
    return [
        block
        for stage in model.children()
        if isinstance(stage, nn.Sequential)
        for block in stage.children()
    ]


@contextmanager
def time_limit(
    model: nn.Module, deadline: float | None, stop: threading.Event | None = None
) -> Iterator[None]:
    """Stop the calling thread's forward passes through `model` once `time.monotonic()` passes
    `deadline` (None: no limit) or once `stop` is set (None: never).

    Checked before the model and before each of its residual blocks (every ~10–50 ms on a CPU),
    so a long computation (ScoreCAM runs the model once per channel) ends soon after its
    deadline, leaving the model untouched; `check_time` lets other steps check too.
    """
    if deadline is None and stop is None:
        yield
        return

    outer = getattr(_limits, "current", None)
    _limits.current = (deadline, stop)
    try:
        with time_checked(model):
            yield
    finally:
        if outer is None:
            del _limits.current
        else:
            _limits.current = outer


@contextmanager
def time_checked(model: nn.Module) -> Iterator[None]:
    """Inside the block, the calling thread's forward passes through `model` check its current
    `time_limit` (`check_time`) before the model and before each of its residual blocks.

    `time_limit` does this for the model it is given; a copy of that model made inside its
    block (the sanity checks randomise copies) needs it for itself: hooks are not copied along.
    """

    def check(_module: nn.Module, _inputs: tuple[Any, ...]) -> None:
        check_time()

    blocks = [model, *stage_blocks(model)]
    with thread_local_hooks(forward_pre_hooks=[(block, check) for block in blocks]):
        yield


@contextmanager
def reporting(callback: Callable[[float], None]) -> Iterator[None]:
    """Inside the block, `report(fraction)` on this thread calls `callback(fraction)`.

    A long step deep inside a library call (ScoreCAM's passes) says how far it is without every
    function between it and the server taking a callback; like `time_limit`, per thread.
    """
    outer = getattr(_progress, "current", None)
    _progress.current = callback
    try:
        yield
    finally:
        _progress.current = outer


def report(fraction: float) -> None:
    """Tell the calling thread's `reporting` block how far its current step is (0–1)."""
    callback = getattr(_progress, "current", None)
    if callback is not None:
        callback(min(1.0, max(0.0, fraction)))
