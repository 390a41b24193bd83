"""The study browser (issue 28): a study's images as one table (`StudyTable`), sorted and filtered
as the rows say, written as CSV, read from a study of an earlier version or refused with a
sentence; and the app's handlers over a real study: its first page, a filter, the CSV and the
ZIP of the filtered images with their maps, and a click that opens an image in the explorer
with the study's models and settings."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import ASSETS

from sa_viz.app.choices import CLASS_CHOICES, CROP, NONE
from sa_viz.app.engine import Engine
from sa_viz.app.wiring import build
from sa_viz.outputs.rows import ADDED_LATER, EARLIER_SCHEMA, SCHEMA, ForeignRows
from sa_viz.outputs.study import write_part
from sa_viz.studies import run_study
from sa_viz.studies.browse import Query, StudyTable

MODELS = ("resnet50", "sa_resnet50")
# (key, label, ResNet-50's top-1 and p, SA's top-1 and p, Pearson, SA's deletion AUC)
IMAGES = [
    ("cats/a.jpg", 281, (281, 0.9), (285, 0.4), 0.5, 0.10),
    ("cats/b.jpg", 281, (285, 0.3), (281, 0.8), 0.9, float("nan")),
    ("cats/c.jpg", 281, (281, 0.6), (281, 0.6), None, 0.30),
    ("mugs/d.jpg", 504, (504, 0.7), (968, 0.5), 0.1, 0.20),
    ("mugs/e.jpg", 504, (968, 0.2), (968, 0.9), 0.5, 0.05),
    ("other/f.jpg", None, (1, 0.5), (2, 0.5), 0.3, 0.40),
]


def record(key, label, model, top1, p, pearson, deletion):
    found = dict.fromkeys(SCHEMA.names)
    found |= {
        "key": key,
        "model": model,
        "label": label,
        "top5": [top1, 0, 0, 0, 0],
        "top5_p": [p, 0, 0, 0, 0],
        "correct1": None if label is None else top1 == label,
        "target": label,
        "cam_raw": np.arange(49, dtype=np.float32).tolist(),
        "cam_shape": [7, 7],
        "pearson": pearson,
        "units": [],
        "analyses": [("deletion_auc", deletion if model == "sa_resnet50" else 0.5)],
    }
    return found


def write_study(out, schema=SCHEMA, source=None):
    records = []
    for key, label, a, b, pearson, deletion in IMAGES:
        records.append(record(key, label, MODELS[0], *a, pearson, deletion))
        records.append(record(key, label, MODELS[1], *b, pearson, deletion))
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    if schema is not SCHEMA:
        table = table.drop_columns(list(ADDED_LATER)).cast(schema)
    (out / "rows").mkdir(parents=True)
    write_part(out, 0, [table], out / "problems.txt", [])
    titles = {"resnet50": "ResNet-50", "sa_resnet50": "SA-ResNet-50"}
    summary = {
        "models": {m: {"title": titles[m]} for m in MODELS},
        "settings": {"layer": "layer3", "crop": True},
        "source": {"path": str(source or out / "images"), "layout": "imagefolder"},
    }
    (out / "study.json").write_text(json.dumps(summary))
    return out


@pytest.fixture
def table(tmp_path):
    return StudyTable(write_study(tmp_path / "study"))


def keys(view):
    return view["image"].to_pylist()


def test_one_row_per_image_with_each_models_columns(table):
    assert len(table) == 6 and keys(table.view()) == [k for k, *_ in IMAGES]
    assert [c.title for c in table.columns] == [
        "image", "class",
        "ResNet-50 top-1", "ResNet-50 p", "ResNet-50 right",
        "SA-ResNet-50 top-1", "SA-ResNet-50 p", "SA-ResNet-50 right",
        "CAM Pearson (ResNet-50, SA-ResNet-50)", "CAM IoU top 20 % (ResNet-50, SA-ResNet-50)",
        "ResNet-50 deletion_auc", "SA-ResNet-50 deletion_auc",
    ]  # fmt: skip
    (first,) = table.page(table.view(Query(name="B.JPG")), 0, 20)
    assert first[:9] == [
        "cats/b.jpg", "281 tabby", "285 Egyptian cat", "0.300", "✗", "281 tabby", "0.800", "✓",
        "0.900",
    ]  # fmt: skip
    assert first[11] == "–"  # a NaN (a constant map's correlation) is no number
    (unlabelled,) = table.page(table.view(Query(name="f.jpg")), 0, 20)
    assert unlabelled[1] == "–" and unlabelled[4] == "–"
    assert table.classes() == [(281, 3), (504, 2)]


@pytest.mark.parametrize("descending", [False, True])
def test_a_sort_by_any_column_keeps_ties_in_order_and_missing_values_last(table, descending):
    by_p = keys(table.view(Query(sort="sa_resnet50.p", descending=descending)))
    expected = sorted(IMAGES, key=lambda i: i[3][1], reverse=descending)
    if descending:  # ties (0.5: d and f) in the study's order whichever the direction
        assert by_p == ["mugs/e.jpg", "cats/b.jpg", "cats/c.jpg", "mugs/d.jpg", "other/f.jpg",
                        "cats/a.jpg"]  # fmt: skip
    else:
        assert by_p == [i[0] for i in expected]
    by_pearson = keys(table.view(Query(sort="pearson", descending=descending)))
    assert by_pearson[-1] == "cats/c.jpg"  # no value: last
    by_auc = keys(table.view(Query(sort="sa_resnet50.deletion_auc", descending=descending)))
    assert by_auc[-1] == "cats/b.jpg"  # NaN: last too
    assert keys(table.view(Query(sort="label")))[-1] == "other/f.jpg"
    with pytest.raises(ValueError, match="nonsense: not a column"):
        table.view(Query(sort="nonsense"))


def test_filters_by_class_outcome_name_and_ranges(table):
    assert keys(table.view(Query(label=504))) == ["mugs/d.jpg", "mugs/e.jpg"]
    assert keys(table.view(Query(outcome="resnet50>sa_resnet50"))) == ["cats/a.jpg", "mugs/d.jpg"]
    assert keys(table.view(Query(outcome="sa_resnet50>resnet50"))) == ["cats/b.jpg"]
    assert keys(table.view(Query(outcome="all"))) == ["cats/c.jpg"]
    assert keys(table.view(Query(outcome="none"))) == ["mugs/e.jpg"]
    differ = [k for k, _, a, b, *_ in IMAGES if a[0] != b[0]]
    assert keys(table.view(Query(outcome="differ"))) == differ
    assert keys(table.view(Query(name="CATS/"))) == ["cats/a.jpg", "cats/b.jpg", "cats/c.jpg"]
    ranged = Query(ranges=(("pearson", 0.3, 0.5),))
    assert keys(table.view(ranged)) == ["cats/a.jpg", "mugs/e.jpg", "other/f.jpg"]
    both = Query(label=281, ranges=(("sa_resnet50.deletion_auc", None, 0.2),), outcome="")
    assert keys(table.view(both)) == ["cats/a.jpg"]
    with pytest.raises(ValueError, match="not a number column"):
        table.view(Query(ranges=(("image", 0, 1),)))
    with pytest.raises(ValueError, match="not an outcome"):
        table.view(Query(outcome="resnet50>nobody"))
    assert [v for _, v in table.outcomes()] == [
        "", "resnet50>sa_resnet50", "sa_resnet50>resnet50", "differ", "all", "none"
    ]  # fmt: skip


def test_the_csv_is_the_view_under_the_columns_titles(table, tmp_path):
    view = table.view(Query(sort="resnet50.p", descending=True))
    path = table.write_csv(view, tmp_path / "out" / "images.csv")
    read = pacsv.read_csv(path)
    assert read.column_names == [c.title for c in table.columns]
    assert read["image"].to_pylist() == keys(view)
    assert read["class"].to_pylist()[:2] == ["281 tabby", "504 coffee mug"]
    assert read["class"].to_pylist()[3] in ("", None)  # f, unlabelled: empty
    assert read["ResNet-50 p"].to_pylist()[0] == pytest.approx(0.9)


def test_an_older_study_is_read_and_a_foreign_file_is_refused_by_name(tmp_path):
    older = StudyTable(write_study(tmp_path / "older", schema=EARLIER_SCHEMA))
    assert len(older) == 6 and keys(older.view(Query(label=504))) == ["mugs/d.jpg", "mugs/e.jpg"]
    (tmp_path / "older" / "rows" / "notes.csv").write_text("a,b\n")
    with pytest.raises(ForeignRows, match=r"notes.csv is not a part of this study; move it"):
        StudyTable(tmp_path / "older")


def test_an_image_is_found_where_the_study_read_it_and_never_outside(tmp_path):
    source = tmp_path / "source"
    (source / "cats").mkdir(parents=True)
    shutil.copy(ASSETS / "chelsea.jpg", source / "cats" / "a.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"not for the page")
    table = StudyTable(write_study(tmp_path / "study", source=source))
    assert table.image_path("cats/a.jpg") == (source / "cats" / "a.jpg").resolve()
    assert table.image_path("cats/b.jpg") is None  # not there any more
    assert table.image_path("../secret.jpg") is None
    (source / "cats" / "notes.txt").write_text("not an image")
    assert table.image_path("cats/notes.txt") is None  # an image file or nothing
    assert table.image_path(str(tmp_path / "secret.jpg")) is None
    cams = table.cams(["cats/a.jpg", "mugs/e.jpg"])
    assert set(cams) == {(k, m) for k in ("cats/a.jpg", "mugs/e.jpg") for m in MODELS}
    assert cams["cats/a.jpg", "resnet50"].shape == (7, 7)


# --- the app's handlers over a real study ------------------------------------------------------


@pytest.fixture(scope="module")
def app_with_a_study(tmp_path_factory, loaded_models):
    """The app around the test weights, with a studies folder holding a study of an
    ImageFolder (three cats, three mugs) that the CLI's `run_study` wrote."""
    root = tmp_path_factory.mktemp("browse")
    data = root / "data"
    for folder, name in (("n02123045", "chelsea.jpg"), ("n03063599", "coffee.jpg")):
        (data / folder).mkdir(parents=True)
        for i in range(3):
            shutil.copy(ASSETS / name, data / folder / f"{i}-{name}")
    run_study(data, root / "studies" / "set", loaded_models, workers=0, progress=False)
    app = build(Engine(lambda: loaded_models), studies_dir=root / "studies")
    return app, root


EVERY = ["every class", "", "", "", None, None, "", False]  # the controls at their start


def test_a_study_opened_on_the_page_is_browsed_exported_and_opened_in_the_explorer(
    app_with_a_study,
):
    app, root = app_with_a_study
    b, tab, i = app.page.study.browser, app.page.study, app.page.inputs
    study = app.studies.open("set")[tab.study]
    assert study == str((root / "studies" / "set").resolve())  # the rows where they are
    shown = app.browsing.opened(study)
    assert shown[b.box]["visible"] is True
    assert [v for _, v in shown[b.label]["choices"]] == ["every class", "281", "504"]
    assert shown[b.counter].startswith("Images 1–6 of **6**")
    assert shown[b.table]["value"]["data"][0][:2] == ["n02123045/0-chelsea.jpg", "281 tabby"]
    mugs = app.browsing.first(study, "504", "", "", "", None, None, "image", True)
    assert [r[0] for r in mugs[b.table]["data"]] == [
        "n03063599/2-coffee.jpg", "n03063599/1-coffee.jpg", "n03063599/0-coffee.jpg"
    ]  # fmt: skip
    assert mugs[b.counter].startswith("Images 1–3 of **3** (of 6)")
    thumbnails = app.browsing.thumbnails(study, "504", "", "", "", None, None, "image", True, 1)
    pictures = thumbnails[b.thumbnails]
    assert [caption for _, caption in pictures] == [r[0] for r in mugs[b.table]["data"]]
    assert all(path.startswith(str(app.handlers.space.root)) for path, _ in pictures)

    path = app.browsing.csv(study, "504", "", "", "", None, None, "", False)[b.download]["value"]
    assert pacsv.read_csv(path)["class"].to_pylist() == ["504 coffee mug"] * 3
    archive = app.browsing.zip(study, "504", "", "", "", None, None, "", False)[b.download]
    with zipfile.ZipFile(archive["value"]) as z:
        names = set(z.namelist())
        assert {
            "images.csv",
            "README.txt",
            "maps/001_0-coffee.png",
            "maps/002_1-coffee.png",
        } <= names
        assert z.read("images/001_0-coffee.jpg") == (ASSETS / "coffee.jpg").read_bytes()

    click = gr.EventData(None, {"row_value": ["n02123045/1-chelsea.jpg", "281 tabby"]})
    opened = app.browsing.open_image(study, click)
    assert Path(opened[i.image]).read_bytes() == (ASSETS / "chelsea.jpg").read_bytes()
    assert opened[i.image].startswith(str(app.handlers.space.root))
    assert opened[i.target] == CLASS_CHOICES[281 + 1]
    assert (opened[i.model_a], opened[i.model_b], opened[i.model_c]) == (*MODELS, NONE)
    assert opened[i.crop_mode] == CROP and opened[i.layer] == "layer4"
    assert opened[i.method] == "gradcam"
    # A thumbnail's click names its image by its caption
    picked = gr.EventData(None, {"value": {"caption": "n03063599/0-coffee.jpg"}})
    assert app.browsing.open_image(study, picked)[i.target] == CLASS_CHOICES[504 + 1]


def test_the_browser_says_what_to_do_and_reads_no_other_folder(app_with_a_study, tmp_path):
    app, root = app_with_a_study
    b = app.page.study.browser

    def hint(answer):
        return answer[b.hint]["value"]

    assert "Run a study or open one first" in hint(app.browsing.first(None, *EVERY))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root / "studies" / "set", elsewhere)
    assert "not one this server shows" in hint(app.browsing.first(str(elsewhere), *EVERY))
    study = str((root / "studies" / "set").resolve())
    unknown = gr.EventData(None, {"row_value": ["../../etc/passwd"]})
    assert "Click a row" in hint(app.browsing.open_image(study, unknown))
    bad_range = ["every class", "", "", "image", 0, 1, "", False]
    assert "not a number column" in hint(app.browsing.first(study, *bad_range))


# --- the map: t-SNE and spectral clustering of the filtered images ----------------------------


def planted_study(out, count=30, seed=0):
    """`count` tabby images whose CAMs (under both models) and SA's layer3.0 channel gates
    follow three planted patterns in turn, as `run_study` would write them."""
    rng = np.random.default_rng(seed)
    records, truth = [], []
    for i in range(count):
        which = i % 3
        cam = np.zeros((7, 7), np.float32)
        cam[(slice(0, 3), slice(4, 7), slice(3, 4))[which], :] = 1
        cam = cam * rng.uniform(0.5, 20) + rng.uniform(0, 0.15, (7, 7)).astype(np.float32)
        gates = np.full(16, 0.1, np.float32)
        gates[which * 5 : which * 5 + 5] = 0.9
        gates += rng.uniform(0, 0.05, 16).astype(np.float32)
        for model in MODELS:
            found = record(f"cats/{i:02d}.jpg", 281, model, 281, 0.5, 0.5, 0.5)
            found["cam_raw"] = cam.ravel().tolist()
            if model == "sa_resnet50":
                found["units"] = [{"unit": "layer3.0", "groups": 1, "channel": gates.tolist()}]
            records.append(found)
        truth.append(which)
    (out / "rows").mkdir(parents=True)
    write_part(out, 0, [pa.Table.from_pylist(records, schema=SCHEMA)], out / "p.txt", [])
    summary = {"models": {m: {"title": m, "pretrained": False} for m in MODELS}, "settings": {}}
    (out / "study.json").write_text(json.dumps(summary))
    return out, truth


def test_the_map_of_one_class_is_its_strategies_as_sa_viz_cluster_finds_them(tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from sa_viz.studies.clusters import cluster_study
    from sa_viz.studies.embedding import draw_map, gated_units

    folder, truth = planted_study(tmp_path / "study")
    table = StudyTable(folder)
    assert table.untrained == list(MODELS)  # study.json: pretrained false (the page says so)
    drawn = draw_map(table, table.view(Query(label=281)), ["sa_resnet50"], seed=0)
    (expected,) = cluster_study(folder, models=["sa_resnet50"], seed=0)
    assert drawn.strategies.k == expected.k == 3
    np.testing.assert_array_equal(drawn.strategies.clusters, expected.clusters)
    np.testing.assert_allclose(drawn.xy, expected.embedding)
    assert drawn.strategies.label == 281 and drawn.strategies.model == "sa_resnet50"
    assert adjusted_rand_score(truth, drawn.strategies.clusters) == 1.0
    assert drawn.groups["right"] == ["right"] * 30 and set(drawn.groups["class"]) == {"281 tabby"}
    # The gates of a unit: the same planted groups, read from the rows' units
    assert gated_units(table) == {"sa_resnet50": ["layer3.0"]}
    by_gates = draw_map(table, table.view(), ["sa_resnet50"], "layer3.0")
    assert adjusted_rand_score(truth, by_gates.strategies.clusters) == 1.0
    # Both models: one point per image and model, coloured by model
    both = draw_map(table, table.view(), list(MODELS))
    assert len(both.keys) == 60 and both.groups["model"] == ["resnet50"] * 30 + ["sa_resnet50"] * 30
    assert len(draw_map(table, table.view(), list(MODELS), max_points=10).keys) == 10  # 5 × 2
    with pytest.raises(ValueError, match="a map needs 3 at least"):
        draw_map(table, table.view(Query(name="cats/00")), ["resnet50"])


def test_a_drawn_point_is_where_the_picture_shows_it():
    from sa_viz.render.figures import drawn_positions, figure_array, map_figure

    xy = np.random.default_rng(0).normal(size=(40, 2))
    fig, ax = map_figure(xy, ["a"] * 20 + ["b"] * 20, "t", "group")
    positions = drawn_positions(fig, ax, xy)
    picture = figure_array(fig)
    for x, y in positions.round().astype(int):
        assert picture[y, x].std() > 20, (x, y)  # a coloured dot, not white or grey


def test_the_page_draws_the_map_and_a_click_on_a_point_opens_its_image(app_with_a_study):
    from sa_viz.app.study_map import MapHandlers

    app, root = app_with_a_study
    m, i = app.page.study.map, app.page.inputs
    maps = MapHandlers(app.browsing, m)
    study = str((root / "studies" / "set").resolve())
    choices = maps.opened(study)
    assert [v for _, v in choices[m.model]["choices"]] == [*MODELS, ""]
    drawn = maps.draw(study, "", "cam", "model", *EVERY)
    assert drawn[m.hint]["visible"] is False, drawn[m.hint]
    assert "**12 points**" in drawn[m.text]  # six images, two models
    assert drawn[m.strategies]["visible"] is False  # two classes, two models: no SpRAy figure
    state = drawn[m.drawn]
    x, y = state["positions"][5]
    opened = maps.open_point(study, state, gr.EventData(None, {"index": [x + 3, y - 2]}))
    # The image of the point nearest the click (copies of one photo lie on one spot)
    positions, keys = state["positions"], state["map"].keys
    at = [j for j, k in enumerate(keys) if Path(k).name == Path(opened[i.image]).name]
    assert min(np.hypot(*(positions[j] - positions[5])) for j in at) < 1e-6
    assert maps.open_point(study, state, gr.EventData(None, {"index": [-50, -50]})) == gr.skip()
    one_class = maps.draw(study, "sa_resnet50", "cam", "cluster", *["281", *EVERY[1:]])
    assert one_class[m.strategies]["visible"] is True
    assert "choose one class" not in one_class[m.text] and "**3 points**" in one_class[m.text]
    archive = maps.files(study, one_class[m.drawn])[m.file]["value"]
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert names == {"map.png", "map.svg", "strategies.png", "strategies.svg", "points.csv"}
        assert z.read("points.csv").decode().startswith("image,model,x,y,cluster,class")
    assert "Draw the map first" in maps.files(study, None)[m.hint]["value"]


def test_an_image_over_the_upload_limit_is_refused_not_read(app_with_a_study):
    app, root = app_with_a_study
    study = str((root / "studies" / "set").resolve())
    kept = app.browsing.limits
    app.browsing.limits = dataclasses.replace(kept, max_bytes=1000)
    try:
        click = gr.EventData(None, {"row_value": ["n02123045/0-chelsea.jpg"]})
        answer = app.browsing.open_image(study, click)
    finally:
        app.browsing.limits = kept
    assert "explains images of at most 0 MB" in answer[app.page.study.browser.hint]["value"]
    assert app.page.inputs.image not in answer


def test_a_study_still_being_written_is_read_again(tmp_path):
    from sa_viz.app.study_browser import Tables

    folder = write_study(tmp_path / "study")
    tables = Tables()
    first = tables.get(folder)
    assert tables.get(folder) is first and len(first) == 6  # kept
    more = pa.Table.from_pylist(
        [record("late/g.jpg", 1, m, 1, 0.5, 0.5, 0.5) for m in MODELS], schema=SCHEMA
    )
    write_part(folder, 1, [more], folder / "problems.txt", [])
    assert len(tables.get(folder)) == 7  # a new part: read again


def test_the_map_shows_each_clusters_typical_images_and_a_click_opens_one(app_with_a_study):
    from sa_viz.app.study_map import MapHandlers

    app, root = app_with_a_study
    m, i = app.page.study.map, app.page.inputs
    maps = MapHandlers(app.browsing, m)
    study = str((root / "studies" / "set").resolve())
    drawn = maps.draw(study, "sa_resnet50", "cam", "cluster", *["281", *EVERY[1:]])
    pictures = drawn[m.typical]["value"]
    state = drawn[m.drawn]
    expected = [
        (c, point.split("\n")[0])
        for c, found in enumerate(state["map"].strategies.typical(3))
        for point in found
    ]
    assert [caption for _, caption in pictures] == [f"cluster {c}: {k}" for c, k in expected]
    assert state["typical"] == [k for _, k in expected]
    opened = maps.open_typical(study, state, gr.EventData(None, {"index": 1}))
    assert Path(opened[i.image]).name == Path(expected[1][1]).name
    assert maps.open_typical(study, state, gr.EventData(None, {"index": 99})) == gr.skip()
