"""Issue 25, point 3: in centre-crop mode each model takes its own crop exactly, and each map lies
on the one display image where that model looked, blank (NaN) where it saw nothing.

ResNet-50 (torchvision: 224 of 256, 87.5 %) and ResNet-50 A1 (timm: 224 of 235, 95.3 %) see
different parts of a photo. The checks are against the pictures themselves: a model's own input
pixels, put where `place` says they lie, are the display's pixels there.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from conftest import ASSETS, REPO, running_app
from PIL import Image
from torchvision import transforms as T

from sa_viz import render
from sa_viz.cam import cam_agreement, compute_cam
from sa_viz.data.imagenet import MEAN, STD
from sa_viz.data.preprocess import prepare_image
from sa_viz.data.regions import place, take
from sa_viz.models.registry import get_model
from sa_viz.models.weights import load_model
from sa_viz.pipeline.explain import analyse_explanation, explain, layer_of
from sa_viz.render import views

NARROW, WIDE = "resnet50", "resnet50.a1_in1k"
P_NARROW, P_WIDE = get_model(NARROW).preprocessing, get_model(WIDE).preprocessing
ARTIFACTS = REPO / "tests" / "artifacts"
PHOTO = ASSETS / "chelsea.jpg"  # 451 × 300: the crops' offsets differ across and down


def placed_pixels(prepared, preprocessing, region):
    view = prepared.view_for(preprocessing).astype(np.float32)
    return np.stack([place(view[..., c], region, prepared.size) for c in range(3)], -1)


def test_each_model_takes_its_own_crop_and_the_display_is_the_widest():
    assert P_NARROW.crop_fraction < P_WIDE.crop_fraction
    photo = Image.open(PHOTO).convert("RGB")
    for order in ([P_NARROW, P_WIDE], [P_WIDE, P_NARROW]):
        prepared = prepare_image(PHOTO, crop=True, preprocessing=order)
        assert prepared.protocol == P_WIDE and prepared.region_of(P_WIDE) is None
        assert prepared.region_of(P_NARROW) is not None
        # The narrower model's tensor is torchvision's own evaluation transform of the photo
        theirs = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
        torch.testing.assert_close(
            prepared.input_for(P_NARROW)[0], theirs(photo), atol=1e-5, rtol=0
        )
        assert any("87.5% centre crop saw" in note for note in prepared.notes)


def test_a_models_own_pixels_lie_where_its_region_says():
    """The narrower model's input, placed on the display, is the display there (to resampling:
    bilinear 87.5 % vs bicubic 95.3 %); the same pixels placed one display pixel off are not."""
    prepared = prepare_image(PHOTO, crop=True, preprocessing=[P_NARROW, P_WIDE])
    region = prepared.region_of(P_NARROW)
    x0, y0, x1, y1 = region
    placed = placed_pixels(prepared, P_NARROW, region)
    seen = np.isfinite(placed[..., 0])
    # NaN exactly on the pixels whose centres lie outside the region
    centres_x, centres_y = np.arange(prepared.size[1]) + 0.5, np.arange(prepared.size[0]) + 0.5
    inside = ((centres_y >= y0) & (centres_y < y1))[:, None] & (
        (centres_x >= x0) & (centres_x < x1)
    )
    assert (seen == inside).all() and 0.7 < seen.mean() < 0.95
    error = np.abs(placed[seen] - prepared.display[seen]).mean()
    shifted = placed_pixels(prepared, P_NARROW, (x0 + 1, y0, x1 + 1, y1))
    both = np.isfinite(shifted[..., 0]) & seen
    error_shifted = np.abs(shifted[both] - prepared.display[both]).mean()
    assert error < 3.0 and error_shifted > 2 * error, (error, error_shifted)
    # `take` reads a smooth map (a CAM's kind) back on the model's grid, its edges included
    rows, cols = np.mgrid[0:224, 0:224] / 224.0
    blob = np.exp(-((rows - 0.3) ** 2 + (cols - 0.8) ** 2) / 0.05).astype(np.float32)
    back = take(place(blob, region, prepared.size), region, blob.shape)
    assert np.isfinite(back).all() and np.abs(back - blob).max() < 0.01


def test_a_region_that_sticks_out_of_the_display_by_a_fraction_of_a_pixel():
    """Two crops' offsets are rounded each on its own, so a narrower crop may reach past the
    wider one's edge by under a pixel (here 0.72 px at the top); reading a map back on its
    grid (`take`, every analysis's input) sliced the display from index -1 and failed."""
    from sa_viz.data.transforms import Preprocessing

    display, other = Preprocessing(resize=164, crop=160), Preprocessing(resize=198, crop=192)
    picture = np.random.default_rng(0).integers(0, 255, (529, 419, 3), dtype=np.uint8)
    prepared = prepare_image(picture, crop=True, preprocessing=[other, display])
    region = prepared.region_of(other)
    assert prepared.protocol == display and -1.0 < region[1] < -0.5, region
    rows, cols = np.mgrid[0:192, 0:192] / 192.0
    blob = np.exp(-((rows - 0.5) ** 2 + (cols - 0.4) ** 2) / 0.05).astype(np.float32)
    back = take(place(blob, region, prepared.size), region, blob.shape)
    assert np.isfinite(back).all() and np.abs(back - blob).max() < 0.02


@pytest.fixture(scope="module")
def pair(all_models, tmp_path_factory):
    """ResNet-50 (test weights) and ResNet-50 A1 (untrained: no hub here)."""
    wide = load_model(WIDE, folder=tmp_path_factory.mktemp("none"), allow_download=False)
    return {NARROW: all_models[NARROW], WIDE: wide}


def test_maps_are_blank_where_a_model_saw_nothing(pair):
    result = explain(PHOTO, models=pair, crop=True, class_idx=281)
    narrow, wide = result.models[NARROW], result.models[WIDE]
    region = result.image.region_of(P_NARROW)
    assert np.isfinite(wide.cam).all()
    unseen = np.isnan(narrow.cam)
    assert (unseen == np.isnan(place(np.zeros((7, 7)), region, result.image.size))).all()
    assert unseen.any() and not unseen.all()
    # The map on its own input, read back from the display, is the model's own CAM there
    x = result.image.input_for(P_NARROW)
    own = compute_cam(pair[NARROW].module, x, 281, layer_of(NARROW, "layer4"), "gradcam").maps[0]
    back = take(narrow.cam, region, own.shape)
    assert np.abs(back - own).mean() < 0.01
    # Agreement over the pixels both saw, as computed by hand
    both = ~unseen
    r = np.corrcoef(narrow.cam[both].astype(np.float64), wide.cam[both].astype(np.float64))[0, 1]
    assert cam_agreement(narrow.cam, wide.cam)["pearson"] == pytest.approx(r, abs=1e-9)
    # The picture: dark gray where the model saw nothing, its label says so; joint scale too
    for scale in views.NORMALIZATIONS:
        maps = views.cam_maps(result, scale)
        assert (np.isnan(maps.maps[0]) == unseen).all() and np.isfinite(maps.maps[1]).all()
        assert views.UNSEEN in maps.labels[0] and views.UNSEEN not in maps.labels[1]
        assert np.isfinite(maps.limit)
    picture = render.overlay(result.image.display, narrow.cam)
    dark = render.unseen(picture, result.image.display, np.ones(unseen.shape, bool))
    assert (picture[unseen] == dark[unseen]).all() and (picture[both] != dark[both]).any()
    # The document says where: its schema's `seen_region`, the NaN map's box
    from conftest import assert_explanation_document

    from sa_viz.outputs.document import explanation_document

    document = explanation_document(result)
    assert_explanation_document(document)
    assert "seen_region" not in document["models"][WIDE]
    assert tuple(document["models"][NARROW]["seen_region"].values()) == pytest.approx(region)
    shown = views.cam_view(result, pair=(NARROW, WIDE))
    assert np.isfinite(shown.agreement["pearson"]) and shown.partial
    assert "over the pixels both saw" in views.agreement_text(shown)


def test_analyses_run_on_each_models_own_input(pair):
    """Deletion/insertion and localisation take each model's own input and its map there; a box
    given on the display lands on the same object in the narrower model's pixels."""
    result = explain(PHOTO, models=pair, crop=True, class_idx=281)
    height, width = result.image.size
    box = (width * 0.3, height * 0.3, width * 0.7, height * 0.7)
    found = analyse_explanation(result, pair, ["deletion_insertion", "localisation"], [box])
    for name in pair:
        numbers = found[name]["deletion_insertion"]["numbers"]
        assert np.isfinite(numbers["deletion_auc"]) and np.isfinite(numbers["insertion_auc"])
        assert 0.0 <= found[name]["localisation"]["numbers"]["energy_inside"] <= 1.0
    # The box in the narrower model's own pixels is where the photo's box lands in its input
    from sa_viz.data.preprocess import boxes_in_input, point_in_source
    from sa_viz.pipeline.explain import in_model_input, region_of

    on_photo = (*point_in_source(box[0], box[1], result.image),
                *point_in_source(box[2], box[3], result.image))  # fmt: skip
    alone = prepare_image(PHOTO, crop=True, preprocessing=[P_NARROW])
    x = result.image.input_for(P_NARROW)
    _, mapped = in_model_input(result.models[NARROW].cam, [box], x, region_of(result.image, NARROW))
    np.testing.assert_allclose(mapped, boxes_in_input([on_photo], alone), atol=1e-6)
    # The page's box numbers (drawn with the box, no model run) are the same numbers
    from sa_viz.app.analyses_tab import box_localisation

    w, h = result.image.original_size
    text = box_localisation(result, f"{w * 0.3:.0f} {h * 0.3:.0f} {w * 0.7:.0f} {h * 0.7:.0f}")
    assert "nan" not in text and text.count("of its mass inside") == 2, text


def test_a_study_compares_the_maps_where_both_models_looked(pair, tmp_path):
    """A study's agreement is over the pixels both models saw, its analyses take each model's
    own input, and its thumbnails and report draw each map where that model looked."""
    import pyarrow.parquet as pq

    from sa_viz.app.study_browser import thumbnail
    from sa_viz.studies.browse import StudyTable
    from sa_viz.studies.run import run_study

    data = tmp_path / "data" / "n02123045"
    data.mkdir(parents=True)
    shutil.copy(PHOTO, data / "chelsea.jpg")
    out = tmp_path / "study"
    run_study(tmp_path / "data", out, pair, workers=0, progress=False, analyses=["localisation"])
    rows = {r["model"]: r for r in pq.read_table(out / "rows").to_pylist()}
    assert set(rows) == {NARROW, WIDE}
    assert any("87.5% centre crop saw" in note for note in rows[NARROW]["notes"])
    result = explain(PHOTO, models=pair, crop=True, class_idx=281)
    expected = cam_agreement(result.models[NARROW].cam, result.models[WIDE].cam)["pearson"]
    assert rows[NARROW]["pearson"] == pytest.approx(expected, abs=1e-4)
    # Its image's document says where the narrower model looked, as the explanation's does
    import json

    from conftest import assert_explanation_document

    from sa_viz.outputs.document import explanation_document, study_document

    summary = json.loads((out / "study.json").read_text())
    document = study_document(list(rows.values()), summary)
    assert_explanation_document(document)
    assert "seen_region" not in document["models"][WIDE]
    explained = explanation_document(result)["models"][NARROW]["seen_region"]
    assert document["models"][NARROW]["seen_region"] == pytest.approx(explained)
    table = StudyTable(out)
    picture = thumbnail(table, "n02123045/chelsea.jpg", table.cams(["n02123045/chelsea.jpg"]))
    half = picture.shape[1] // 2
    narrow_tile, wide_tile = picture[:, : half - 2], picture[:, half + 2 :]
    gray = lambda tile: (np.ptp(tile.astype(int), axis=-1) <= 2).mean()  # noqa: E731
    assert gray(narrow_tile) > gray(wide_tile) + 0.05  # its dark gray border: what it missed
    report = (out / "report.html").read_text()
    assert "ResNet-50 was evaluated with a narrower centre crop (87.5%)" in report


def test_spatial_gates_lie_on_the_crop_their_model_saw(tmp_path):
    """GC-ResNet-50-T (256 of 284 px, 90.1 %) beside ResNet-50 A1 (95.3 %): its spatial
    softmax is drawn over its own input's pixels (the part of the display it saw), and the text
    says so; the tiles a click finds are those drawn."""
    gc_name = "gcresnet50t.ra2_in1k"
    models = {
        name: load_model(name, folder=tmp_path, allow_download=False) for name in (gc_name, WIDE)
    }
    result = explain(PHOTO, models=models, crop=True, class_idx=281)
    p_gc = get_model(gc_name).preprocessing
    assert result.image.region_of(p_gc) is not None and result.image.size == (224, 224)
    seen = views.seen_by(result, gc_name)
    assert seen.shape == (256, 256, 3) and (seen == result.image.view_for(p_gc)).all()
    unit = next(iter(result.models[gc_name].gates))
    text = views.gate_range_text(result, unit, "unit range", model=gc_name)
    assert "Drawn over the part of the image GC-ResNet-50-T" in text and "90.1%" in text
    picture = views.gate_mosaic(result, unit, 0, model=gc_name)
    gates = result.models[gc_name].gates[unit]
    drawn = {
        name: render.gate_mosaic_panel(image, gates, unit, highlight=0, untrained=True)
        for name, image in (("own", seen), ("display", result.image.display))
    }
    assert (picture == drawn["own"]).all() and drawn["own"].shape == drawn["display"].shape
    assert not (picture == drawn["display"]).all()
    assert views.seen_by(result, WIDE) is result.image.display


@pytest.mark.browser
def test_on_the_page_crops_that_differ_and_a_model_with_other_unit_names(weights_folder, tmp_path):
    """In a real browser, at 1400 and 800 px: ResNet-50 beside ResNet-50 A1 in centre-crop mode
    explains with no error (no gated model: "Gates of" empty was refused after each explanation),
    ResNet-50's CAM says where it saw nothing and the agreement is over both crops; GC-ResNet-50-T
    beside them (units `stages.N.M`, none of the page's `layerN.M`) explains too, and the gate
    explorer shows its own units, over the part of the image it saw."""
    from test_browser import ARGS, CHROMIUM, TIMEOUT_MS

    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    gc_name = "gcresnet50t.ra2_in1k"
    flags = ("--models", f"{WIDE},{gc_name}")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub")}
    failures = """() => [...document.querySelectorAll('.toast-body')]
        .map(t => t.innerText).filter(t => /error/i.test(t))"""
    with (
        running_app(weights_folder, tmp_path / "app.log", *flags, env=env) as (url, _),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for width in (1400, 800):
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(f"{url}?example=chelsea&a={NARROW}&b={WIDE}&input=crop")
                page.locator("#cam-text").get_by_text("over the pixels both saw").wait_for()
                page.locator("#cam-a").scroll_into_view_if_needed()
                page.locator("#cam-a img").wait_for()
                assert "87.5% centre crop saw" in page.locator("#summary").inner_text()
                page.goto(f"{url}?example=chelsea&a={gc_name}&b={WIDE}&input=crop")
                page.locator("#cam-text").get_by_text("GC-ResNet-50-T").first.wait_for()
                page.get_by_role("tab", name="Gate explorer").click()
                page.locator("#gate-text").get_by_text(
                    "Drawn over the part of the image"
                ).wait_for()
                assert page.locator("#gate-unit input").input_value().startswith("stages.")
                assert page.evaluate(failures) == []
            finally:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"crops-{width}.png"), full_page=True)
                page.close()
        browser.close()
