"""Figures for papers: each format is what it says (PNG, SVG with text as text, PDF with an
embedded TrueType font and image XObjects), maps stay one image at their own resolution, the
paper style's sizes, and the export's figures/ folder."""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from conftest import ASSETS
from PIL import Image

from sa_viz.outputs import files
from sa_viz.outputs.export import write_zip
from sa_viz.pipeline.explain import explain
from sa_viz.render import comparison_figure, paper
from sa_viz.render.figure_views import analysis_figures, cam_figures, gate_figures

SVG = "{http://www.w3.org/2000/svg}"
RNG = np.random.default_rng(0)
IMAGE = (RNG.random((120, 180, 3)) * 255).astype(np.uint8)  # not square: rows ≠ columns
CAM = RNG.random((120, 180)).astype(np.float32)


def two_models(width=None):
    panels = [("ResNet-50: tabby", CAM, False), ("SA-ResNet-50: tabby", 1 - CAM, True)]
    return comparison_figure(IMAGE, panels, suptitle="gradcam at layer4", width=width)


def svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)  # parses as XML
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def svg_images(data: bytes) -> list[tuple[int, int]]:
    """The pixel size of each image the SVG embeds."""
    sizes = []
    for element in ET.fromstring(data).iter(f"{SVG}image"):
        href = element.get("{http://www.w3.org/1999/xlink}href") or element.get("href")
        payload = base64.b64decode(href.split(",", 1)[1])
        sizes.append(Image.open(io.BytesIO(payload)).size)
    return sizes


def check_format(fmt: str, data: bytes, title: str, images: bool = True) -> None:
    """`data` is a file of `fmt`, naming `title` in text that stays text (and, for a PDF with
    `images`, holding images)."""
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        Image.open(io.BytesIO(data)).verify()
    elif fmt == "svg":
        assert any(title in text for text in svg_texts(data)), svg_texts(data)[:10]
    else:
        assert data.startswith(b"%PDF-")
        assert b"/FontFile2" in data  # a TrueType font embedded (Type 42), not Type 3 glyphs
        assert (b"/Subtype /Image" in data) == images  # the maps: image XObjects
        assert b"/Type3" not in data


@pytest.mark.parametrize("fmt", files.FIGURE_FORMATS)
def test_each_format_is_what_it_says(fmt):
    check_format(fmt, files.figure_bytes(two_models(), fmt), "SA-ResNet-50: tabby")


def test_maps_stay_one_image_each_at_their_own_resolution():
    fig = two_models(width=paper.WIDTHS["single"])
    # SVG: the input and the two overlays, each its own pixels (not resampled to a dpi); the
    # colour bar, drawn as one strip, besides.
    sizes = svg_images(files.figure_bytes(fig, "svg"))
    assert sizes.count((180, 120)) == 3, sizes
    assert len(sizes) == 4
    # PNG: enough dots per inch that each 180-px map gets 180 pixels or more.
    png = Image.open(io.BytesIO(files.figure_bytes(fig, "png")))
    dpi = paper.raster_dpi(fig, files.FIGURE_DPI)
    assert dpi > files.FIGURE_DPI  # three 180-px maps across 3.5 in need more than 110
    assert png.size[0] == round(paper.WIDTHS["single"] * dpi)
    for ax in fig.axes[:3]:
        box = ax.get_images()[0].get_window_extent()
        assert box.width / fig.dpi * dpi >= 180 - 1


@pytest.mark.parametrize("choice", ["single", "double"])
def test_the_paper_style_sets_width_and_type_sizes(choice):
    width = paper.figure_width(choice)
    fig = two_models(width=width)
    data = files.figure_bytes(fig, "svg")
    root = ET.fromstring(data)
    assert root.get("width") == f"{width * 72:g}pt"  # exactly the column's width, not cropped
    sizes = {float(s) for s in re.findall(rb"font-size: ?([\d.]+)px", data)}
    assert sizes <= {8.0, 9.0}, sizes  # SVG's px here are points (72 per inch)
    check_format("pdf", files.figure_bytes(fig, "pdf"), "")


def test_the_figure_width_and_formats_are_read_or_refused():
    assert paper.figure_width("single") == 3.5 and paper.figure_width("double") == 7.1
    assert paper.figure_width("5") == 5.0 and paper.figure_width(None) is None
    for wrong in ("wide", "0.2", "40"):
        with pytest.raises(ValueError, match="figure width"):
            paper.figure_width(wrong)
    assert files.parse_formats("pdf,PNG, svg") == ("png", "svg", "pdf")
    for wrong in ("png,eps", ""):
        with pytest.raises(ValueError, match="choose from png, svg, pdf"):
            files.parse_formats(wrong)


@pytest.fixture(scope="module")
def result(loaded_models):
    return explain(ASSETS / "chelsea.jpg", models=loaded_models)


def test_every_view_of_an_explanation_is_a_figure_in_every_format(result):
    height, width = result.image.display.shape[:2]
    drawn = cam_figures(result, width=paper.WIDTHS["double"])
    assert set(drawn) == {"resnet50", "sa_resnet50", "difference"}
    data = files.figure_bytes(drawn["sa_resnet50"], "svg")
    assert svg_images(data)[0] == (width, height)  # the overlay at the image's own size
    assert any("SA-ResNet-50: CAM of" in t for t in svg_texts(data))
    gates = gate_figures(result, "layer3.0", 5, width=paper.WIDTHS["single"])
    assert set(gates) == {"spatial", "channel", "group", "summary"}
    heat = svg_images(files.figure_bytes(gates["channel"], "svg"))[0]
    assert heat == (result.models["sa_resnet50"].gates["layer3.0"].channels, 64)  # c × groups
    for name, fig in gates.items():
        check_format("pdf", files.figure_bytes(fig, "pdf"), name, images=name != "summary")
        assert any("layer" in t or "Gate" in t for t in svg_texts(files.figure_bytes(fig, "svg")))


def test_the_export_zip_adds_the_figures_asked_for(result, tmp_path):
    path = write_zip(
        result,
        tmp_path / "paper.zip",
        unit="layer3.0",
        group=2,
        figure_formats=("svg", "pdf"),
        figure_width=paper.WIDTHS["single"],
    )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        stems = {
            "cam_resnet50",
            "cam_sa_resnet50",
            "cam_difference",
            "gates_layer3.0_spatial",
            "gates_layer3.0_channel",
            "gates_layer3.0_group2",
            "gates_summary",
        }
        for stem in stems:
            assert f"{stem}.png" in names  # the pictures as on the page, as before
            for fmt in ("svg", "pdf"):
                check_format(fmt, archive.read(f"figures/{stem}.{fmt}"), "", "summary" not in stem)
        assert not [n for n in names if n.startswith("figures/") and n.endswith(".png")]
        assert any(
            "SA-ResNet-50" in t for t in svg_texts(archive.read("figures/cam_sa_resnet50.svg"))
        )
        assert "figures/" in archive.read("README.txt").decode()


def test_the_analyses_charts_are_figures_too():
    curve = np.linspace(1, 0, 5).tolist()
    found = {
        "faithfulness": {
            m: {"title": t, "details": {"fractions": curve, "deletion": curve, "insertion": curve},
                "numbers": {"deletion_auc": 0.5, "insertion_auc": 0.5}}
            for m, t in (("resnet50", "ResNet-50"), ("sa_resnet50", "SA-ResNet-50"))
        },
        "group_knockout": {"model": "sa_resnet50", "unit": "layer3.0", "gates": "both",
                           "value": "one", "target": 281, "group_dp": [-0.1, 0.05, 0.0],
                           "unit_dp": -0.2},
    }  # fmt: skip
    drawn = analysis_figures(found, paper.WIDTHS["single"])
    assert set(drawn) == {"faithfulness", "knockout"}
    texts = svg_texts(files.figure_bytes(drawn["faithfulness"], "svg"))
    assert any("SA-ResNet-50: 0.500" in t for t in texts)
    texts = svg_texts(files.figure_bytes(drawn["knockout"], "svg"))
    assert any("SA-ResNet-50 layer3.0" in t for t in texts)


@pytest.mark.parametrize("kind", ["SA", "SE", "ECA", "CBAM", "light CBAM", "GC", "GC, gca", "SK",
                                  "SplAt", "unknown"])  # fmt: skip
def test_the_paper_figures_of_every_attention_kind(kind, tmp_path):
    """The figures for papers read the unit's layout, as the app's pictures do (render-gates):
    every kind a probe reads gets its figures in every format at a paper width, in its own
    words, for every row of gates; a unit without channel gates (Global Context, `gca`) has no
    channel figure, as it has no channel picture; a model whose attention no probe reads has no
    gate figures, and its ZIP still has its CAM's."""
    from kinds import KINDS, kind_result

    assert kind in KINDS
    result = kind_result(kind)
    (name,) = result.models
    m = result.models[name]
    for unit, gates in m.gates.items():
        for group in range(gates.groups):
            drawn = gate_figures(result, unit, group, width=paper.WIDTHS["single"])
            expected = {"group", "summary"}
            expected |= {"spatial"} if gates.has_spatial else set()
            expected |= {"channel"} if gates.has_channel else set()
            assert set(drawn) == expected
            texts = [t for fig in drawn.values() for t in svg_texts(files.figure_bytes(fig, "svg"))]
            words = " ".join(texts)
            assert f"{gates.layout.kind} unit" in words
            if gates.layout.kind != "SA":  # SA's words for another kind's gates
                assert "group" not in words and "half" not in words, words
    unit = next(iter(m.gates), "layer1.0")
    path = write_zip(
        result,
        tmp_path / "kind.zip",
        unit=unit,
        group=0,
        figure_formats=files.FIGURE_FORMATS,
        figure_width=paper.WIDTHS["double"],
    )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    figures = {n.removeprefix("figures/") for n in names if n.startswith("figures/")}
    stems = {f"cam_{name}"}
    if m.gates:
        gates = m.gates[unit]
        stems |= {f"gates_{unit}_group0", "gates_summary"}
        stems |= {f"gates_{unit}_spatial"} if gates.has_spatial else set()
        stems |= {f"gates_{unit}_channel"} if gates.has_channel else set()
    assert figures == {f"{stem}.{fmt}" for stem in stems for fmt in files.FIGURE_FORMATS}
    for stem in stems - {f"cam_{name}"}:  # each figure beside its picture, as before
        assert f"{stem}.png" in names
