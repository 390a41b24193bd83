"""Gates of any attention type, read by forward hooks: one recorder, one small probe per type.

A probe (`sa_viz.probes.sa`, `.se`, `.eca`, `.cbam`, `.gc`, `.splat`, `.sk`) says where a
model's attention units are, which submodules compute their gates, and how the gates are laid
out. `record_gates` hooks those submodules for one `with` block and copies each gate out as a
`UnitGates`, which carries its `GateLayout`: every panel, export and figure reads the layout,
never a fixed group count. `unread_attention` lists what looks like attention but no probe reads.
"""

from __future__ import annotations

from sa_viz.probes.base import (
    SPATIAL_SUMMARIES,
    GateLayout,
    GateStats,
    Probe,
    Tap,
    UnitGates,
    gate_stats,
    is_constant,
    unit_summary,
)
from sa_viz.probes.recorder import (
    UNREAD,
    attention_of,
    probe_for,
    record_gates,
    register_probe,
    unit_layouts,
    unit_names,
    units_of,
    unread_attention,
    unread_lines,
    unread_of,
)

__all__ = [
    "SPATIAL_SUMMARIES",
    "UNREAD",
    "GateLayout",
    "GateStats",
    "Probe",
    "Tap",
    "UnitGates",
    "attention_of",
    "gate_stats",
    "is_constant",
    "probe_for",
    "record_gates",
    "register_probe",
    "unit_layouts",
    "unit_names",
    "unit_summary",
    "units_of",
    "unread_attention",
    "unread_lines",
    "unread_of",
]
