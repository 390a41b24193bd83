"""Every picture at every size a model gives: SA's 64 groups × 32 channels, SE's 2048 channels,
a 9:1 panorama. No image operation may lean on a library's channel limit (OpenCV 4 took 512
channels per array, OpenCV 5 takes 128: a 144-px tile row once broke the main job), so every
OpenCV call here is checked to get at most 4 channels, whichever OpenCV is installed."""

from __future__ import annotations

import functools
import json
import zipfile

import cv2
import numpy as np
import pytest
import torch
from conftest import ASSETS
from PIL import Image

from sa_viz import render
from sa_viz.cli import write_outputs
from sa_viz.outputs.export import write_zip
from sa_viz.pipeline.explain import explain
from sa_viz.probes import GateLayout, UnitGates
from sa_viz.render import views

CHECKED = ("resize", "convertScaleAbs", "applyColorMap", "addWeighted", "cvtColor", "imencode")


def channels(value: object) -> int:
    """The channels OpenCV sees in an array: its last axis from the third on, else 1."""
    return value.shape[-1] if isinstance(value, np.ndarray) and value.ndim >= 3 else 1


@pytest.fixture
def few_channels(monkeypatch):
    """Fail any checked OpenCV call given an array of more than 4 channels."""
    calls = []

    def checked(name, original):
        @functools.wraps(original)
        def call(*args, **kwargs):
            most = max((channels(a) for a in (*args, *kwargs.values())), default=1)
            assert most <= 4, f"cv2.{name} given {most} channels"
            calls.append(name)
            return original(*args, **kwargs)

        return call

    for name in CHECKED:
        monkeypatch.setattr(cv2, name, checked(name, getattr(cv2, name)))
    return calls


@pytest.fixture(scope="module")
def panorama(tmp_path_factory):
    """A 9:1 photo: the chelsea cat tiled nine times across."""
    cat = Image.open(ASSETS / "chelsea.jpg").convert("RGB").resize((200, 200))
    wide = Image.new("RGB", (1800, 200))
    for i in range(9):
        wide.paste(cat, (200 * i, 0))
    path = tmp_path_factory.mktemp("wide") / "panorama.png"
    wide.save(path)
    return path


@pytest.fixture(scope="module")
def wide_result(all_models, panorama):
    """All three models (SA's 64 groups, SE's 2048-channel units) on the panorama, whole image."""
    return explain(panorama, models=all_models, crop=False)


def test_every_app_picture_of_every_unit(few_channels, wide_result):
    height, width = wide_result.image.size
    assert width >= 8 * height  # whole-image mode keeps the 9:1 shape
    for normalization in ("per model", "joint"):
        view = views.cam_view(wide_result, normalization=normalization)
        assert view.difference.shape[1] == width
    for name in views.gated_models(wide_result):
        m = wide_result.models[name]
        for unit in m.gates:
            for scale in render.GATE_SCALES:
                for picture in views.gate_views(wide_result, unit, 0, model=name, scale=scale):
                    assert picture.ndim == 3 and picture.shape[2] == 3
        assert views.summary_picture(wide_result, name).ndim == 3
    se_units = wide_result.models["se_resnet50"].gates
    assert max(g.channels for g in se_units.values()) == 2048
    assert {"resize", "convertScaleAbs", "applyColorMap"} <= set(few_channels)


def test_the_cli_figures_and_the_export_zip(few_channels, wide_result, tmp_path):
    for unit in ("layer1.0", "layer4.2"):
        written = write_outputs(wide_result, tmp_path, f"wide_{unit}", unit, "jet", 0.5)
        assert len(written) == 4  # the CAM figure, SA's and SE's gate figures, the JSON
        for path in written:
            if path.suffix == ".png":
                assert Image.open(path).size[0] > 100
        assert json.loads(written[-1].read_text())["models"]
    zipped = write_zip(wide_result, tmp_path / "wide.zip", unit="layer4.2", group=63)
    with zipfile.ZipFile(zipped) as archive:
        assert archive.testzip() is None
        assert sum(name.endswith(".png") for name in archive.namelist()) >= 6


@pytest.mark.parametrize(
    ("groups", "channels", "size"), [(64, 32, (7, 63)), (64, 32, (56, 504)), (1, 2048, None)]
)
def test_gate_panels_at_the_largest_layouts(few_channels, groups, channels, size):
    """Synthetic gates beyond what the built-in models have: every gate panel draws them."""
    generator = torch.Generator().manual_seed(0)
    spatial = None if size is None else torch.rand(1, groups, channels, *size, generator=generator)
    layout = GateLayout(
        "SA" if spatial is not None else "SE", 4, groups, channels, spatial is not None
    )
    gates = UnitGates(torch.rand(1, groups, channels, generator=generator), spatial, layout)
    image = np.full((200, 1800, 3), 120, np.uint8)
    if spatial is not None:
        for scale in render.GATE_SCALES:
            mosaic = render.gate_mosaic_panel(image, gates, "unit", scale=scale, highlight=5)
            assert mosaic.shape[1] > 1000
            assert render.group_panel(image, gates, "unit", 5, scale=scale).ndim == 3
    values = gates.channel[0].numpy()
    if groups == 1:
        values = values.reshape(-1, render.row_width(channels))
    assert render.heatmap_panel(values, title="channel gates").ndim == 3
    assert render.summary_panel({"unit": gates}).ndim == 3
    flat = render.colorize(np.linspace(0, 1, groups * channels).reshape(groups, channels))
    assert flat.shape == (groups, channels, 3)
