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
from sa_viz.pipeline.explain import Explanation, explain
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


# --- every picture and text of every attention kind (issue 25) ---------------------------------

# kind → words its pictures and texts must say, and words of another kind they must not
KIND_WORDS = {
    "SA": (("SA unit", "4 groups × 4 maps", "group 1 of 4", "first half"), ("softmax",)),
    "SE": (("SE unit", "one sigmoid per channel", "no spatial gate"), ("group", "half", "σ")),
    "ECA": (("ECA unit", "one sigmoid per channel", "no spatial gate"), ("group", "half", "σ")),
    "CBAM": (
        ("CBAM unit", "CBAM spatial gate, one map for all channels", "one sigmoid per position"),
        ("group", "half", "σ", "softmax", "averaged over"),
    ),
    "light CBAM": (("CBAM spatial gate", "one map"), ("group", "half", "softmax")),
    "GC": (
        ("GC attention over positions", "a softmax over the 28×42 positions", "entropy"),
        ("group", "half", "σ", "spatial gates of"),
    ),
    "GC, gca": (
        ("GC unit has no channel gate", "a softmax over the", "the context is added"),
        ("group", "half", "Channel gates"),
    ),
    "SK": (
        ("SK kernel path weights", "a softmax over the 2 kernel paths", "kernel path 1 of 2"),
        ("group", "half", "σ", "spatial gate of"),
    ),
    "SplAt": (
        ("SplAt radix split weights", "a softmax over the 2 radix splits", "radix split 1 of 2"),
        ("group", "half", "σ", "spatial gate of"),
    ),
}


@pytest.fixture
def drawn_text(monkeypatch):
    """Every text the gate pictures draw: titles, ticks, labels, the tiles' labels. Fails on
    any that does not lie whole inside its picture (cut off at an edge)."""
    from sa_viz.render import gate_panels, overlays, panels, text

    drawn: list[str] = []
    write, draw_labels = text.write, text.draw_labels

    def checked_write(draw, xy, words, size=12, *, anchor="la", fill="black", bold=False):
        left, top, right, bottom = text.font(size, bold).getbbox(words, anchor=anchor)
        width, height = draw.im.size
        x, y = xy
        inside = x + left >= -1 and y + top >= -1 and x + right <= width + 1
        assert inside and y + bottom <= height + 1, (
            f"{words!r} cut off in a {width}×{height} picture"
        )
        drawn.append(words)
        write(draw, xy, words, size, anchor=anchor, fill=fill, bold=bold)

    def checked_labels(picture, items, size=13):
        for words, x, _y in items:
            width = text.label_sprite(words, size)[0].shape[1]
            assert x + width <= picture.shape[1] + 2, f"label {words!r} cut off"
            drawn.append(words)
        return draw_labels(picture, items, size)

    for module in (text, panels, gate_panels):
        monkeypatch.setattr(module, "write", checked_write)
    monkeypatch.setattr(overlays, "draw_labels", checked_labels)
    return drawn


def figure_texts(fig) -> list[str]:
    """The texts of a matplotlib figure, once drawn checked to lie inside it (the tight box of
    what it draws: ticks outside an axis's range are not drawn)."""
    from matplotlib.text import Text

    render.figure_array(fig)
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    width, height = fig.get_size_inches()
    assert drawn.x0 >= -0.02 and drawn.y0 >= -0.02, f"a text cut off: {drawn}"
    assert drawn.x1 <= width + 0.02 and drawn.y1 <= height + 0.02, f"a text cut off: {drawn}"
    return [t.get_text().replace("\n", " ") for t in fig.findobj(Text) if t.get_text()]


@pytest.mark.parametrize("kind", list(KIND_WORDS))
def test_every_picture_of_every_attention_kind(kind, few_channels, drawn_text, tmp_path):
    """A small model of each kind (timm's own module; SA-Viz's SA): every view of every unit, row
    and colour scale is drawn without a cut-off text, its titles and texts say what the gates of
    that kind are (never another kind's words), its figure and ZIP are made and its document
    follows the schema with the layout's details."""
    from conftest import assert_explanation_document
    from kinds import kind_result

    from sa_viz.outputs.document import explanation_document

    result = kind_result(kind)
    (name,) = result.models
    m = result.models[name]
    texts = []
    for unit, gates in m.gates.items():
        for scale in render.GATE_SCALES:
            texts.append(views.gate_range_text(result, unit, scale))
            for group in range(gates.groups):
                for picture in views.gate_views(result, unit, group, scale=scale):
                    assert picture.ndim == 3 and picture.shape[2] == 3
        assert views.group_at(result, unit, 40, 60) in (None, *range(gates.groups))
    assert views.summary_picture(result).ndim == 3
    unit = next(iter(m.gates))
    fig = render.gate_grid_figure(result.image.display, m.gates[unit], unit)
    texts += figure_texts(fig)
    words = " ".join([*drawn_text, *texts])
    must, never = KIND_WORDS[kind]
    for phrase in must:
        assert phrase in words, f"{kind}: {phrase!r} missing"
    for phrase in never:
        assert phrase not in words, f"{kind}: {phrase!r} said of a {kind} unit"

    zipped = write_zip(result, tmp_path / "kind.zip", unit=unit, group=0)
    with zipfile.ZipFile(zipped) as archive:
        members = archive.namelist()
        document = json.loads(archive.read("explanation.json"))
    gates = m.gates[unit]
    assert (f"gates_{unit}_channel.png" in members) == gates.has_channel
    assert (f"gates_{unit}_spatial.png" in members) == gates.has_spatial
    assert_explanation_document(document)
    assert_explanation_document(explanation_document(result))
    entry = document["models"][name]["gates"][unit]
    layout = gates.layout
    assert entry["details"] == {"spatial_maps": layout.spatial_maps, **layout.details}
    assert (entry["summary"]["channel_mean"] is None) == (not gates.has_channel)


def test_attention_no_probe_reads_is_named(capsys, monkeypatch):
    """A model whose attention no probe reads: the gate explorer says so (and beside another
    model's gates), its document lists it, the CLI notes it; it is never silently left out."""
    import argparse

    from conftest import assert_explanation_document
    from kinds import kind_result, status, tiny_model

    from sa_viz.cli import models_or_exit
    from sa_viz.models import flags
    from sa_viz.models.weights import LoadedModel
    from sa_viz.outputs.document import explanation_document
    from sa_viz.probes import UNREAD

    unknown, sa = kind_result("unknown"), kind_result("SA")
    assert views.gated_models(unknown) == []
    why = views.no_gates_text(unknown)
    assert f"{UNREAD}: PixelAttention at layer1.0.attn, layer2.0.attn" in why
    both = Explanation(unknown.image, {**sa.models, **unknown.models}, "layer4", "gradcam", None)
    text = views.gate_range_text(both, "layer1.0", "unit range")
    assert "**tiny unknown** has attention of unknown kind, not read: PixelAttention" in text
    document = explanation_document(both)
    assert_explanation_document(document)
    assert document["models"]["tiny_unknown"]["unread_attention"] == {
        "layer1.0.attn": f"{UNREAD} (PixelAttention)",
        "layer2.0.attn": f"{UNREAD} (PixelAttention)",
    }
    assert "unread_attention" not in document["models"]["tiny_SA"]

    loaded = LoadedModel("resnet50", tiny_model("unknown"), status("resnet50", "ResNet-50"))
    monkeypatch.setattr(flags, "models_from_args", lambda _args, _names: {"resnet50": loaded})
    models_or_exit(argparse.ArgumentParser(), argparse.Namespace(), ["resnet50"])
    assert (
        f"note: ResNet-50 has {UNREAD}: PixelAttention at layer1.0.attn, layer2.0.attn"
        in capsys.readouterr().err
    )
