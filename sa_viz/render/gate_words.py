"""What a unit's gates are, in words, from its layout (`sa_viz.probes.GateLayout`): the titles,
captions and texts of every gate picture say it for SA, SE, ECA, CBAM, Global Context, Selective
Kernel and Split Attention alike, never in one kind's words for another."""

from __future__ import annotations

import dataclasses

from sa_viz.probes import GateLayout, UnitGates


def layout_of(gates: UnitGates) -> GateLayout:
    """The gates' layout with the sizes the recorded gates have (an ECA unit's probe may not
    know its width: 0 channels), or, for gates recorded without one, the layout their shapes
    say."""
    maps = None if gates.spatial is None else gates.spatial.shape[2]
    if gates.layout is None:
        return GateLayout(
            "", 0, gates.groups, gates.channels, gates.has_spatial, spatial_channels=maps
        )
    return dataclasses.replace(
        gates.layout,
        groups=gates.groups,
        channels=gates.channels,
        spatial=gates.has_spatial,
        spatial_channels=maps,
    )


def kind_of(layout: GateLayout) -> str:
    return layout.kind or "attention"


def count(n: int, word: str) -> str:
    """`n` and the word, plural unless n is 1: "1 map", "64 groups", "2 radix splits"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def row_word(layout: GateLayout) -> str:
    """What one row of the gates is: "group", "kernel path", "radix split"."""
    return layout.rows or "group"


def softmax_over_rows(layout: GateLayout) -> bool:
    """Whether a channel's values across the rows are a softmax (they sum to 1: SK, ResNeSt)."""
    return layout.channel_function == "softmax" and layout.groups > 1


def softmax_spatial(layout: GateLayout) -> bool:
    """Whether each spatial map is a softmax over the positions (it sums to 1: Global Context)."""
    return layout.spatial and layout.spatial_function == "softmax"


def channel_name(layout: GateLayout) -> str:
    """The channel gates' name: "channel gates", or "kernel-path weights" for a softmax over
    the rows."""
    if softmax_over_rows(layout):
        return f"{row_word(layout)} weights"
    return "channel gates"


def channel_how(layout: GateLayout) -> str:
    """How one channel-gate value is made: "one sigmoid per channel", "a softmax over the 2
    kernel paths for each channel (a channel's 2 weights sum to 1)"."""
    if softmax_over_rows(layout):
        g = layout.groups
        return (
            f"a softmax over the {count(g, row_word(layout))} for each channel "
            f"(a channel's {g} weights sum to 1)"
        )
    return f"one {layout.channel_function or 'sigmoid'} per channel"


def spatial_name(layout: GateLayout) -> str:
    """The spatial gates' name: "spatial gate(s)", or "attention over positions" for a softmax."""
    if softmax_spatial(layout):
        return "attention over positions"
    return "spatial gate" if layout.groups == 1 and layout.spatial_maps == 1 else "spatial gates"


def spatial_how(layout: GateLayout, h: int | None = None, w: int | None = None) -> str:
    """How one spatial value is made: "one sigmoid per position", "a softmax over the 28×42
    positions (each map sums to 1; uniform: 0.00085)"."""
    if softmax_spatial(layout):
        size = f"{h}×{w} " if h and w else ""
        uniform = f"; uniform: {number(1 / (h * w))}" if h and w else ""
        return f"a softmax over the {size}positions (each map sums to 1{uniform})"
    size = f" of {h}×{w}" if h and w else ""
    return f"one {layout.spatial_function or 'sigmoid'} per position{size}"


def maps_of_row(layout: GateLayout) -> str:
    """What a row's spatial maps are: "one map for all its channels", "4 maps"."""
    maps = layout.spatial_maps
    if maps == 1:
        shared = layout.channels and not softmax_spatial(layout)
        return "one map" + (" for all channels" if shared else "")
    return count(maps, "map")


def number(value: float, largest: float | None = None) -> str:
    """A gate value with three decimals, or with three significant digits where the largest
    value shown beside it (default: itself) is under 0.01: a softmax over thousands of
    positions would read 0.000 everywhere."""
    largest = abs(value) if largest is None else max(abs(largest), abs(value))
    if largest >= 0.01 or value == 0:
        return f"{value:.3f}"
    return f"{value:.2e}"


def describe_unit(layout: GateLayout) -> str:
    """The unit in one line: "CBAM unit: channel gates (one sigmoid per channel) and one spatial
    gate map (one sigmoid per position)"."""
    parts = []
    if layout.channels:
        rows = f"{count(layout.groups, row_word(layout))} × " if layout.groups > 1 else ""
        parts.append(f"{channel_name(layout)}, {rows}{count(layout.channels, 'channel')}")
    if layout.spatial:
        rows = f"{count(layout.groups, row_word(layout))} × " if layout.groups > 1 else ""
        parts.append(f"{spatial_name(layout)}, {rows}{count(layout.spatial_maps, 'map')}")
    return f"{kind_of(layout)} unit: " + "; ".join(parts)


def sentence(text: str) -> str:
    """`text` with a capital first letter."""
    return text[:1].upper() + text[1:]
