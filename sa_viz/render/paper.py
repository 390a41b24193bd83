"""The figure style for papers: a single-column (3.5 in) or double-column (7.1 in) width and
8–9 pt text, applied to one figure at a time, and the PNG resolution that keeps every raster
map at its full resolution.

Sizes are set on the figure's own artists, not in matplotlib's rcParams: those are one
process-wide dictionary, and the app draws in several threads at once.
"""

from __future__ import annotations

import math
import textwrap
import weakref

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text

WIDTHS = {"single": 3.5, "double": 7.1}  # inches: one column, and the page, of a two-column paper
TEXT_PT = 8  # labels, ticks, legends, colour bars
TITLE_PT = 9  # titles of panels and of the figure
MAX_DPI = 600  # PNG: higher only where a map has more pixels than this fills (a 12-in mosaic)
# Figures drawn at a paper width: saved at exactly that size (no tight crop, which would change
# the width and so the text's size once the figure is scaled to the column).
_AT_WIDTH: weakref.WeakSet[Figure] = weakref.WeakSet()


def figure_width(choice: str | float | None) -> float | None:
    """A `--figure-width` in inches: "single", "double" or a number of inches; None stays None
    (each figure's own size, for the screen)."""
    if choice is None or choice == "":
        return None
    if isinstance(choice, str) and choice in WIDTHS:
        return WIDTHS[choice]
    try:
        inches = float(choice)
    except ValueError:
        raise ValueError(f"figure width {choice!r}: single, double or a width in inches") from None
    if not 1.0 <= inches <= 20.0:
        raise ValueError(f"figure width {choice!r}: from 1 to 20 inches")
    return inches


def figsize(
    width: float | None, default: tuple[float, float], height: float | None = None
) -> tuple[float, float]:
    """A figure's size: its `default` for the screen, or `width` wide and `height` high (the
    default's proportions when no height is given)."""
    if width is None:
        return default
    return width, height if height is not None else default[1] * width / default[0]


def pictures_figsize(
    width: float | None,
    default_width: float,
    aspect: float,
    *,
    share: float = 1.0,
    extra: float = 1.0,
) -> tuple[float, float]:
    """The size of a figure whose pictures set its height: `width` (or `default_width`) wide,
    the pictures (height ÷ width: `aspect`) taking `share` of the width, and `extra` inches
    for titles, labels and colour bars: no band of white above and below the pictures."""
    inches = default_width if width is None else width
    return inches, inches * share * aspect + extra


def line_height(points: float = TITLE_PT) -> float:
    """Inches a line of text takes at `points`, with matplotlib's spacing."""
    return points * 1.2 / 72


def wrap(text: str, inches: float, width: float | None, points: float = TITLE_PT) -> str:
    """`text` wrapped to fit `inches` at `points` (each of its lines on its own), for a figure
    at a paper width; unchanged for the screen."""
    if width is None:
        return text
    letters = max(8, int(inches * 72 / (0.55 * points)))  # DejaVu Sans: ~0.55 em a letter
    return "\n".join(textwrap.fill(line, letters) for line in text.split("\n"))


def styled(fig: Figure, width: float | None) -> Figure:
    """`fig` in the paper style when `width` is given (its size already set by `figsize`):
    titles at 9 pt, every other text at 8 pt, ticks included; saved at exactly its size."""
    if width is None:
        return fig
    titles = {id(t) for t in _titles(fig)}
    for text in fig.findobj(Text):
        text.set_fontsize(TITLE_PT if id(text) in titles else TEXT_PT)
    for ax in fig.get_axes():  # ticks made later, as the figure is drawn, take this size too
        ax.tick_params(labelsize=TEXT_PT)
    _AT_WIDTH.add(fig)
    return fig


def resized(fig: Figure, width: float | None) -> Figure:
    """A figure drawn for the screen, in the paper style at `width` inches with its proportions
    kept (charts without pictures, whose layout adapts); unchanged for None."""
    if width is None:
        return fig
    w, h = fig.get_size_inches()
    fig.set_size_inches(width, h * width / w)
    for ax in fig.get_axes():  # each axes' title wrapped to its share of the width
        spec = ax.get_subplotspec()
        if spec is not None and ax.get_title():
            share = len(spec.colspan) / spec.get_gridspec().ncols
            ax.title.set_text(wrap(ax.get_title(), width * share * 0.95, width))
    return styled(fig, width)


def _titles(fig: Figure) -> list[Text]:
    """The figure's titles: each axes' and each (sub)figure's suptitle, where set."""
    found = [ax.title for ax in fig.get_axes()]
    for owner in [fig, *fig.subfigs]:
        # matplotlib keeps the suptitle's Text here; get_suptitle() gives only its string
        suptitle = getattr(owner, "_suptitle", None)
        if suptitle is not None:
            found.append(suptitle)
    return found


def at_paper_width(fig: Figure) -> bool:
    """Whether `fig` was drawn at a paper width (`styled`): saved at its exact size."""
    return fig in _AT_WIDTH


def raster_dpi(fig: Figure, floor: float) -> int:
    """The PNG resolution at which every image in `fig` (imshow) gets at least one pixel per
    pixel of its array, at least `floor`, at most `MAX_DPI`. Draws the figure once to lay it
    out (a figure without images is not drawn)."""
    images = [im for ax in fig.get_axes() for im in ax.get_images()]
    if not images:
        return round(floor)
    FigureCanvasAgg(fig).draw()
    need = float(floor)
    for image in images:
        need = max(need, _pixels_per_inch(fig, image))
    return min(MAX_DPI, math.ceil(need))


def _pixels_per_inch(fig: Figure, image: AxesImage) -> float:
    """The array's pixels per inch of the figure, along its denser side, as drawn now."""
    box = image.get_window_extent()  # the image's extent, in display pixels at fig.dpi
    if box.width <= 0 or box.height <= 0:
        return 0.0
    rows, columns = image.get_array().shape[:2]
    return max(columns / box.width, rows / box.height) * fig.dpi
