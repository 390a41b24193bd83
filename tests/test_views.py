"""What the page shows, from cached results: colour bars, the difference map, one unit range, the
mosaic's tiles and the prediction tables."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ASSETS

from sa_viz import render
from sa_viz.pipeline.explain import Explanation, explain
from sa_viz.render import views


@pytest.fixture(scope="module")
def result(loaded_models):
    return explain(ASSETS / "chelsea.jpg", models=loaded_models)


def strip_of(picture: np.ndarray, height: int) -> np.ndarray:
    return picture[height:]


def bar_row(strip: np.ndarray) -> np.ndarray:
    """The colour bar's middle row, without its frame: the strip's most colourful row."""
    colourful = (strip.max(axis=2).astype(int) - strip.min(axis=2)).sum(axis=1)
    row = strip[int(np.argmax(colourful))]
    coloured = np.flatnonzero(row.max(axis=1).astype(int) - row.min(axis=1) > 30)
    return row[coloured[0] + 1 : coloured[-1]]


def close(a: np.ndarray, b: np.ndarray, tolerance: int = 40) -> bool:
    return bool(np.abs(a.astype(int) - b.astype(int)).max() <= tolerance)


@pytest.mark.parametrize("normalization", ["per model", "joint"])
def test_each_cam_carries_its_colour_bar(result, normalization):
    """Under each CAM, a bar from the colormap's first colour to its last, with values."""
    height, width = result.image.size
    view = views.cam_view(result, colormap="viridis", normalization=normalization)
    for picture in view.overlays.values():
        assert picture.shape[1] == width and picture.shape[0] > height + 40
        bar = bar_row(strip_of(picture, height))
        lut = render.colorize(np.array([0.0, 1.0]), "viridis")
        assert close(bar[0], lut[0]) and close(bar[-1], lut[1])
        assert len(bar) > width // 2


def test_the_difference_follows_scale_and_opacity_and_is_centred_on_zero(result):
    height, _ = result.image.size
    a, b = (result.models[n] for n in result.models)
    per_model = views.cam_view(result, normalization="per model")
    joint = views.cam_view(result, normalization="joint")
    faint = views.cam_view(result, normalization="per model", alpha=0.1)
    pictures = [v.difference[:height] for v in (per_model, joint, faint)]
    for view in (per_model, joint):  # side by side on the page: one height for the three
        assert {p.shape for p in (*view.overlays.values(), view.difference)} == {
            view.difference.shape
        }
    assert not np.array_equal(pictures[0], pictures[1])  # the scale changes it
    assert not np.array_equal(pictures[0], pictures[2])  # and so does the opacity
    # Per model: the limit is the largest |difference| of the min–max maps as shown.
    assert per_model.limit == pytest.approx(float(np.abs(b.cam - a.cam).max()), rel=1e-5)
    assert per_model.normalization == "per model" and "per model scale" in views.agreement_text(
        per_model
    )
    # Centred on zero: a map minus itself is white at any opacity (no blue cast).
    same = views.cam_view(
        Explanation(result.image, {"x": a, "y": a}, result.layer, result.method, None),
        alpha=1.0,
    )
    centre = render.colorize(np.array([0.5]), render.DIVERGING)[0]
    assert close(same.difference[height // 2, 10], centre, 3)
    bar = bar_row(strip_of(per_model.difference, height))
    ends = render.colorize(np.array([0.0, 1.0]), render.DIVERGING)
    assert close(bar[0], ends[0]) and close(bar[-1], ends[1])


def test_one_unit_range_everywhere(result):
    """The gate text, the group view's title and the mosaic's colour bar use one range: every
    spatial gate of the unit (the page showed 0.367–0.721 and 0.005–0.988 for one unit)."""
    gates = result.models["sa_resnet50"].gates["layer3.0"]
    low, high = render.unit_range(gates, "unit range")
    spatial = gates.spatial[0].numpy()
    assert (low, high) == (float(spatial.min()), float(spatial.max()))
    text = views.gate_range_text(result, "layer3.0", "unit range")
    assert f"{low:.3f} to {high:.3f}" in text
    detail = render.group_panel(result.image.display, gates, "layer3.0", 3)
    assert detail.shape[0] > 0  # its title says the same range (drawn; checked through the text)
    assert render.unit_range(gates, "per group") is None
    assert render.unit_range(gates, "0–1") == (0.0, 1.0)


def test_a_click_finds_its_tile(result):
    """`group_at` inverts the mosaic's layout: each tile's centre is its group; the title, the
    gaps and the colour bar are no group."""
    gates = result.models["sa_resnet50"].gates["layer2.0"]
    shape = result.image.display.shape
    th, tw = render.overlays.tile_size(result.image.display, render.panels.MOSAIC_TILE)
    band = render.panels.MOSAIC_TITLE + 14
    columns = render.panels.MOSAIC_COLUMNS
    row_height = render.overlays.LABEL_BAND + th + 2  # a row: its labels, then its tiles
    for group in range(gates.groups):
        row, column = divmod(group, columns)
        x = column * (tw + 2) + tw // 2
        y = band + row * row_height + render.overlays.LABEL_BAND + th // 2
        assert views.group_at(result, "layer2.0", x, y) == group
    assert render.mosaic_tile_at(shape, gates.groups, 10, 5) is None  # the title
    assert render.mosaic_tile_at(shape, gates.groups, columns * (tw + 2) + 5, band + 5) is None
    assert render.mosaic_tile_at(shape, gates.groups, tw + 1, band + 5) is None  # a gap
    picture = views.gate_mosaic(result, "layer2.0", 0)
    rows = -(-gates.groups // columns)
    assert picture.shape[0] == band + rows * row_height - 2


def test_the_target_is_marked_in_the_tables(loaded_models):
    own = explain(ASSETS / "chelsea.jpg", models=loaded_models)
    for name in own.models:
        rows = views.prediction_rows(own, name)
        assert len(rows) == 5 and rows[0][0].startswith(views.TARGET)  # its own top-1
        assert sum(row[0].startswith(views.TARGET) for row in rows) == 1
    chosen = explain(ASSETS / "chelsea.jpg", models=loaded_models, class_idx=934)
    rows = views.prediction_rows(chosen, "resnet50")
    assert len(rows) == 6 and re.match(rf"{views.TARGET} 934 · hotdog", rows[-1][0])
    # Where it stands among the 1000 (before: "p = 0.000" and no rank, issue 27)
    m = chosen.models["resnet50"]
    rank = 1 + int(np.sum(m.probabilities > m.probabilities[934]))
    assert rank > 5 and rows[-1][0].endswith(f"(rank {rank})")
    assert rows[-1][1] == views.probability_text(float(m.probabilities[934])) != "0.000"
    assert views.probability_text(0.00002134) == "2.1e-05"
    assert views.probability_text(0.5) == "0.500"


def test_a_flat_map_says_so(result):
    """A CAM that is one value everywhere (a class with no evidence at the layer) is named as
    flat, in its colour strip's place and in the agreement text, instead of a 0–1 bar."""
    import dataclasses

    a, b = result.models.values()
    flat = dataclasses.replace(b, cam=np.zeros_like(b.cam), cam_raw=np.zeros_like(b.cam_raw))
    view = views.cam_view(
        Explanation(result.image, {a.name: a, b.name: flat}, result.layer, result.method, None)
    )
    assert view.flat == (b.title,)
    assert f"{b.title}'s map is flat" in views.agreement_text(view)
    normal = views.cam_view(result)
    assert normal.flat == () and not np.array_equal(
        view.overlays[b.name][result.image.size[0] :],
        normal.overlays[b.name][result.image.size[0] :],
    )
