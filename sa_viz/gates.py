"""The gate recorder's old address (`sa_viz.probes.record_gates`): see `sa_viz.probes`."""

from sa_viz.probes import GateLayout, GateStats, UnitGates, gate_stats, is_constant, record_gates

__all__ = ["GateLayout", "GateStats", "UnitGates", "gate_stats", "is_constant", "record_gates"]
