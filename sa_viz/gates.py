"""Capture every SA unit's channel and spatial gates with forward hooks, and summarise them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sa_viz.hooks import thread_local_hooks
from sa_viz.models import sa_units


@dataclass(frozen=True)
class UnitGates:
    """The gates of one SA unit for a batch, copied out of the forward pass.

    `channel`: (B, G, c) channel-gate values; `spatial`: (B, G, c, h, w) spatial-gate values; all in
    (0, 1), one row per group, read at the gates, before the channel shuffle.
    """

    channel: torch.Tensor
    spatial: torch.Tensor

    @property
    def groups(self) -> int:
        return self.channel.shape[1]

    @property
    def channels_per_half(self) -> int:
        return self.channel.shape[2]

    def spatial_mean(self) -> torch.Tensor:
        """(B, G, h, w): each group's spatial gate averaged over its c channels."""
        # In NumPy: pictures are drawn on several threads, and a torch op there wakes torch's
        # intra-op threads, which then spin (measured: ~8–9 ms of CPU per set of pictures).
        return torch.from_numpy(self.spatial.numpy().mean(axis=2))


@contextmanager
def record_gates(model: nn.Module) -> Iterator[dict[str, UnitGates]]:
    """Hook every SA unit's gates for the duration of the block.

    Yields a dict that each forward pass inside the block fills: "layer1.0" … "layer4.2" →
    `UnitGates`. Values are copies, so the in-place residual add and ReLU that follow a unit cannot
    change them. A model without SA units yields an empty dict.
    """
    recorded: dict[str, UnitGates] = {}
    halves: dict[str, dict[str, torch.Tensor]] = {}

    def keep(name: str, kind: str, gate: torch.Tensor, groups: int) -> None:
        # (B·G, c, 1, 1) → (B, G, c) and (B·G, c, h, w) → (B, G, c, h, w): copies, never views of
        # the live activation.
        b = gate.shape[0] // groups
        shape = (b, groups, -1) if kind == "channel" else (b, groups, *gate.shape[1:])
        copy = gate.detach().reshape(shape).clone()
        parts = halves.setdefault(name, {})
        parts[kind] = copy
        if len(parts) == 2:
            recorded[name] = UnitGates(**halves.pop(name))

    hooks = []
    for name, unit in sa_units(model):
        for kind, module in (("channel", unit.channel_gate), ("spatial", unit.spatial_gate)):
            hooks.append(
                (module, lambda _m, _a, gate, n=name, k=kind, g=unit.groups: keep(n, k, gate, g))
            )
    with thread_local_hooks(hooks):
        yield recorded


@dataclass(frozen=True)
class GateStats:
    """Mean and spread of one unit's gates, per group and over all groups (for one image)."""

    channel_mean: np.ndarray  # (G,)
    channel_std: np.ndarray  # (G,)
    spatial_mean: np.ndarray  # (G,)
    spatial_std: np.ndarray  # (G,)

    def summary(self) -> dict[str, float]:
        """The unit's figures over all groups, as people compare them across units."""
        return {
            "channel_mean": float(self.channel_mean.mean()),
            "channel_std": float(self.channel_std.mean()),
            "channel_group_spread": float(self.channel_mean.std()),
            "spatial_mean": float(self.spatial_mean.mean()),
            "spatial_std": float(self.spatial_std.mean()),
            "spatial_group_spread": float(self.spatial_mean.std()),
        }


def gate_stats(gates: UnitGates, index: int = 0) -> GateStats:
    """Per-group mean and standard deviation of both gates for image `index` of the batch."""
    channel = gates.channel[index].numpy().astype(np.float64)
    spatial = gates.spatial[index].flatten(1).numpy()  # (G, c·h·w), float32
    # Two passes in float32 with NumPy's pairwise sums: within 2e-7 (relative) of float64, and
    # 2.5x faster than numpy's float64 std (measured: 4.1 vs 10.3 ms for the 16 units at 224²).
    spatial_mean = spatial.mean(1)
    deviation = spatial - spatial_mean[:, None]
    np.square(deviation, out=deviation)
    return GateStats(
        channel_mean=channel.mean(1),
        channel_std=channel.std(1),
        spatial_mean=spatial_mean.astype(np.float64),
        spatial_std=np.sqrt(deviation.mean(1), dtype=np.float64),
    )


def is_constant(gates: UnitGates, tol: float = 1e-6) -> bool:
    """True when every gate value is the same: the sign of a unit that was never trained."""
    values = torch.cat([gates.channel.flatten(), gates.spatial.flatten()])
    return bool((values.max() - values.min()) <= tol)
