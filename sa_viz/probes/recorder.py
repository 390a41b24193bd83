"""One gate recorder for every attention type: hooks each probe's taps for one `with` block."""

from __future__ import annotations

import importlib
import pkgutil
import re
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache

import torch
from torch import nn

from sa_viz.errors import stage
from sa_viz.hooks import thread_local_hooks
from sa_viz.probes.base import GateLayout, Probe, Tap, UnitGates

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
    _UNREAD.clear()
    return probe


def units_of(model: nn.Module) -> Iterator[tuple[str, nn.Module, Probe]]:
    """(unit name, unit, its probe) for every attention unit of `model` that a probe knows, in
    the model's module order. A module inside a unit is part of that unit (CBAM's channel gate is
    not a unit of its own, whatever else recognises it); where two probes claim one module, the
    first wins. Units that would share a name (two in one block) keep their module paths."""
    claimed: dict[int, tuple[str, Probe]] = {}
    for probe in probes():
        for name, unit in probe.units(model):
            claimed.setdefault(id(unit), (name, probe))
    found: list[tuple[str, str, nn.Module, Probe]] = []
    outer: str | None = None
    for path, module in model.named_modules():
        if outer is not None and _inside(path, outer):
            continue
        if id(module) in claimed:
            outer = path
            name, probe = claimed[id(module)]
            found.append((path, name, module, probe))
    names = Counter(name for _, name, _, _ in found)
    for path, name, unit, probe in found:
        yield (name if names[name] == 1 else path), unit, probe


def _inside(path: str, outer: str) -> bool:
    return outer == "" or path.startswith(outer + ".")


UNREAD = "attention of unknown kind, not read"

# Words that name attention modules and the attributes holding them (timm's `se`, `attn`;
# SA-Viz's `sa`; "SqueezeExcite", "CoordAttn", "GatherExcite", "NonLocalAttn" …).
_ATTENTION_WORDS = frozenset(
    {"se", "sa", "eca", "cbam", "attn", "attention", "gate", "gating"}
    | {"excite", "excitation", "context", "squeeze"}
)


def _words(name: str) -> set[str]:
    """The words of a name: {"se", "module"} for "SEModule" and "se_module"."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", name)}


def unread_attention(model: nn.Module) -> dict[str, str]:
    """Modules of `model` that look like attention but that no probe reads, by module path:
    "attention of unknown kind, not read (CoordAttn)". Outermost ones only, none inside a unit
    a probe reads. A module looks like attention when it is one of timm's attention layers, or
    when its class or attribute name says attention (`se`, `attn`, `gate`, "Excite", …) and it
    holds a sigmoid or softmax module."""
    read = {id(unit) for _, unit, _ in units_of(model)}
    read_paths = [path for path, module in model.named_modules() if id(module) in read]
    found: dict[str, str] = {}
    outer: str | None = None
    for path, module in model.named_modules():
        if not path or (outer is not None and _inside(path, outer)):
            continue
        if id(module) in read:
            outer = path
        elif any(_inside(inner, path) for inner in read_paths):
            continue  # a block that holds a unit that is read (timm's `SEResNetBottleneck`)
        elif _looks_like_attention(path, module):
            outer = path
            found[path] = f"{UNREAD} ({type(module).__name__})"
    return found


def unread_lines(unread: Mapping[str, str], shown: int = 3) -> list[str]:
    """`unread_attention`'s findings for people, one line per class: "attention of unknown
    kind, not read: CoordAttn at layer1.0.attn, layer1.1.attn, layer1.2.attn … (16 modules)"."""
    by_class: dict[str, list[str]] = {}
    for path, text in unread.items():
        found = re.search(r"\(([^()]*)\)$", text)
        by_class.setdefault(found.group(1) if found else text, []).append(path)
    lines = []
    for name, paths in by_class.items():
        more = f" … ({len(paths)} modules)" if len(paths) > shown else ""
        lines.append(f"{UNREAD}: {name} at {', '.join(paths[:shown])}{more}")
    return lines


_UNREAD: weakref.WeakKeyDictionary[nn.Module, dict[str, str]] = weakref.WeakKeyDictionary()


def unread_of(model: nn.Module) -> dict[str, str]:
    """`unread_attention(model)`, worked out once per model object (again after a probe is
    registered): every explanation names what its model has that no probe reads."""
    if model not in _UNREAD:
        _UNREAD[model] = unread_attention(model)
    return dict(_UNREAD[model])


def _looks_like_attention(path: str, module: nn.Module) -> bool:
    if isinstance(module, _timm_attention_types()):
        return True
    named = _words(type(module).__name__) | _words(path.rpartition(".")[2])
    return bool(named & _ATTENTION_WORDS) and any(
        _is_gate_activation(m) for m in module.modules() if m is not module
    )


def _is_gate_activation(module: nn.Module) -> bool:
    name = type(module).__name__.lower()
    return "sigmoid" in name or "softmax" in name


@cache
def _timm_attention_types() -> tuple[type[nn.Module], ...]:
    """Every attention layer timm's `create_attn` can build (its module's classes)."""
    try:
        from timm.layers import create_attn
    except ImportError:  # pragma: no cover - timm is a dependency; a stripped install still works
        return ()
    return tuple(
        value
        for value in vars(create_attn).values()
        if isinstance(value, type) and issubclass(value, nn.Module)
    )


@cache
def unit_layouts(model_name: str) -> dict[str, GateLayout]:
    """The layout of each attention unit of a registered model, by unit name, in forward order
    (the model is built on PyTorch's meta device: no memory, ~40 ms)."""
    from sa_viz.models.registry import get_model

    with torch.device("meta"):
        model = get_model(model_name).builder()
    return {name: probe.layout(name, unit) for name, unit, probe in units_of(model)}


def attention_of(model_name: str) -> str | None:
    """The kinds of attention of a registered model ("SE"; "CBAM, SE"; None: none): its entry's
    declaration where it has one, else what the probes find in it (a model registered at run
    time, or a timm model by name)."""
    from sa_viz.models.registry import get_model

    declared = get_model(model_name).gates
    if declared is not None:
        return declared
    kinds = dict.fromkeys(layout.kind for layout in unit_layouts(model_name).values())
    return ", ".join(kinds) or None


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
            hooks += [(tap.module, gather.hook(tap)) for tap in taps]
    with thread_local_hooks(hooks):
        yield recorded


class _Gather:
    """Collects one unit's gates from its taps during a forward; files them once all came."""

    def __init__(
        self, name: str, layout: GateLayout, taps: int, recorded: dict[str, UnitGates]
    ) -> None:
        self.name, self.layout, self.wanted, self.recorded = name, layout, taps, recorded
        self.parts: dict[str, torch.Tensor] = {}

    def hook(self, tap: Tap) -> Callable[..., None]:
        return lambda _module, _args, output: self.keep(tap, output)

    def keep(self, tap: Tap, output: torch.Tensor) -> None:
        with stage("gates"):
            self._keep(tap, output)

    def _keep(self, tap: Tap, output: torch.Tensor) -> None:
        # (N·G, c, 1, 1) → (N, G, c) and (N·G, c, h, w) → (N, G, c, h, w): copies on the CPU,
        # never views of the live activation.
        gate = output.detach()
        if tap.read is not None:
            with torch.no_grad():
                gate = tap.read(gate)
        g = self.layout.groups
        n = gate.shape[0] // g
        shape = (n, g, -1) if tap.kind == "channel" else (n, g, *gate.shape[1:])
        self.parts[tap.kind] = gate.reshape(shape).to("cpu", copy=True)
        if len(self.parts) == self.wanted:
            self.recorded[self.name] = UnitGates(layout=self.layout, **self.parts)
            self.parts = {}
