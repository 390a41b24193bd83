"""The gate recorder's old address (`sa_viz.probes.record_gates`): see `sa_viz.probes`."""

import warnings

from sa_viz.probes import GateLayout, GateStats, UnitGates, gate_stats, is_constant, record_gates

warnings.warn(
    "sa_viz.gates is an old address: import from sa_viz.probes (record_gates: from sa_viz)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["GateLayout", "GateStats", "UnitGates", "gate_stats", "is_constant", "record_gates"]
