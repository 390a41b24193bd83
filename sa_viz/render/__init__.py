"""Pictures: the render stage, the only code that draws.

`overlays`: maps over images (NumPy/OpenCV, milliseconds); `panels`: charts drawn into NumPy
pictures for the app, and `gate_panels` a unit's gate pictures from them, in the words of
`gate_words` for each kind of attention; `figures`, `gate_figures`, `analysis_figures`:
matplotlib figures with axes for the CLI, the export's SVG and PDF, and papers (`paper`: their
style; the gate figures in the same words); `figure_views`: an explanation's views as those
figures.
"""

from sa_viz.render.figures import comparison_figure, figure_array, mprt_figure
from sa_viz.render.gate_figures import gate_grid_figure
from sa_viz.render.gate_panels import channel_panel, group_panel, summary_panel
from sa_viz.render.overlays import (
    COLORMAPS,
    DEFAULT_ALPHA,
    DEFAULT_COLORMAP,
    DIVERGING,
    GATE_SCALES,
    UNTRAINED_STAMP,
    colorize,
    gate_range,
    mosaic,
    overlay,
    row_width,
    signed_overlay,
    stamp_untrained,
    symmetric_limit,
    unseen,
)
from sa_viz.render.panels import (
    bar_panel,
    colorbar,
    gate_mosaic_panel,
    heatmap_panel,
    mosaic_tile_at,
    note_panel,
    strip_lines,
    unit_range,
    with_colour_strip,
)

__all__ = [
    "COLORMAPS",
    "DEFAULT_ALPHA",
    "DEFAULT_COLORMAP",
    "DIVERGING",
    "GATE_SCALES",
    "UNTRAINED_STAMP",
    "bar_panel",
    "channel_panel",
    "colorbar",
    "colorize",
    "comparison_figure",
    "figure_array",
    "gate_grid_figure",
    "gate_mosaic_panel",
    "gate_range",
    "group_panel",
    "heatmap_panel",
    "mosaic",
    "mosaic_tile_at",
    "mprt_figure",
    "note_panel",
    "overlay",
    "row_width",
    "signed_overlay",
    "stamp_untrained",
    "strip_lines",
    "summary_panel",
    "symmetric_limit",
    "unit_range",
    "unseen",
    "with_colour_strip",
]
