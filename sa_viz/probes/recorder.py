"""One gate recorder for every attention type: hooks each probe's taps for one `with` block."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import torch
from torch import nn

from sa_viz.errors import stage
from sa_viz.hooks import thread_local_hooks
from sa_viz.probes.base import GateLayout, Probe, UnitGates

_SHARED = {"base", "recorder"}


_REGISTERED: list[Probe] = []


@cache
def probes() -> tuple[Probe, ...]:
    """Every probe: each module of this package (other than the shared ones) with a `PROBE`,
    then those registered by `register_probe`."""
    package = importlib.import_module("sa_viz.probes")
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _SHARED:
            module = importlib.import_module(f"sa_viz.probes.{info.name}")
            if isinstance(getattr(module, "PROBE", None), Probe):
                found.append(module.PROBE)
    return (*found, *_REGISTERED)


def register_probe(probe: Probe) -> Probe:
    """Add a probe for a new attention type (a `Probe`: where its units are, which submodules
    give their gates, their layout); every model's units of that type are then read."""
    if not isinstance(probe, Probe):
        raise TypeError(f"register_probe takes a Probe; got {type(probe).__name__}")
    if probe not in _REGISTERED:
        _REGISTERED.append(probe)
    probes.cache_clear()
    unit_layouts.cache_clear()
    return probe


def units_of(model: nn.Module) -> Iterator[tuple[str, nn.Module, Probe]]:
    """(unit name, unit, its probe) for every attention unit of `model` that a probe knows."""
    for probe in probes():
        for name, unit in probe.units(model):
            yield name, unit, probe


@cache
def unit_layouts(model_name: str) -> dict[str, GateLayout]:
    """The layout of each attention unit of a registered model, by unit name, in forward order
    (the model is built on PyTorch's meta device: no memory, ~40 ms)."""
    from sa_viz.models.registry import get_model

    with torch.device("meta"):
        model = get_model(model_name).builder()
    return {name: probe.layout(name, unit) for name, unit, probe in units_of(model)}


def unit_names(model_name: str) -> tuple[str, ...]:
    return tuple(unit_layouts(model_name))


def probe_for(model: nn.Module) -> Probe | None:
    """The probe of the model's attention units (None for a model without any)."""
    return next((probe for _, _, probe in units_of(model)), None)


@contextmanager
def record_gates(model: nn.Module) -> Iterator[dict[str, UnitGates]]:
    """Hook every attention unit's gates for the duration of the block.

    Yields a dict that each forward pass inside the block fills: unit name ("layer1.0" …) →
    `UnitGates` with its layout. Values are copies on the CPU, so in-place operations after a
    unit cannot change them. A model without attention units yields an empty dict.
    """
    recorded: dict[str, UnitGates] = {}
    hooks = []
    with stage("gates"):
        for name, unit, probe in units_of(model):
            taps = probe.taps(unit)
            gather = _Gather(name, probe.layout(name, unit), len(taps), recorded)
            hooks += [(tap.module, gather.hook(tap.kind)) for tap in taps]
    with thread_local_hooks(hooks):
        yield recorded


class _Gather:
    """Collects one unit's gates from its taps during a forward; files them once all came."""

    def __init__(
        self, name: str, layout: GateLayout, taps: int, recorded: dict[str, UnitGates]
    ) -> None:
        self.name, self.layout, self.wanted, self.recorded = name, layout, taps, recorded
        self.parts: dict[str, torch.Tensor] = {}

    def hook(self, kind: str) -> Callable[..., None]:
        return lambda _module, _args, gate: self.keep(kind, gate)

    def keep(self, kind: str, gate: torch.Tensor) -> None:
        with stage("gates"):
            self._keep(kind, gate)

    def _keep(self, kind: str, gate: torch.Tensor) -> None:
        # (N·G, c, 1, 1) → (N, G, c) and (N·G, c, h, w) → (N, G, c, h, w): copies on the CPU,
        # never views of the live activation.
        g = self.layout.groups
        n = gate.shape[0] // g
        shape = (n, g, -1) if kind == "channel" else (n, g, *gate.shape[1:])
        self.parts[kind] = gate.detach().reshape(shape).to("cpu", copy=True)
        if len(self.parts) == self.wanted:
            self.recorded[self.name] = UnitGates(layout=self.layout, **self.parts)
            self.parts = {}
