"""The study browser (issue 28): a study's images as one table (`StudyTable`), sorted and filtered
as the rows say, written as CSV, read from a study of an earlier version or refused with a
sentence; and the app's handlers over a real study: its first page, a filter, the CSV and the
ZIP of the filtered images with their maps, and a click that opens an image in the explorer
with the study's models and settings."""

from __future__ import annotations

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
    assert table.image_path(str(tmp_path / "secret.jpg")) is None
    cams = table.cams(["cats/a.jpg", "mugs/e.jpg"])
    assert set(cams) == {(k, m) for k in ("cats/a.jpg", "mugs/e.jpg") for m in MODELS}
    assert cams["cats/a.jpg", "resnet50"].shape == (7, 7)


# --- the app's handlers over a real study ------------------------------------------------------


@pytest.fixture(scope="module")
def app_with_a_study(tmp_path_factory, loaded_models):
    """The app around the test weights, with a studies folder holding a study of an
    ImageFolder (two cats, two mugs) that the CLI's `run_study` wrote."""
    root = tmp_path_factory.mktemp("browse")
    data = root / "data"
    for folder, name in (("n02123045", "chelsea.jpg"), ("n03063599", "coffee.jpg")):
        (data / folder).mkdir(parents=True)
        for i in range(2):
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
    assert shown[b.counter].startswith("Images 1–4 of **4**")
    assert shown[b.table]["value"]["data"][0][:2] == ["n02123045/0-chelsea.jpg", "281 tabby"]
    mugs = app.browsing.first(study, "504", "", "", "", None, None, "image", True)
    assert [r[0] for r in mugs[b.table]["data"]] == [
        "n03063599/1-coffee.jpg", "n03063599/0-coffee.jpg"
    ]  # fmt: skip
    assert mugs[b.counter].startswith("Images 1–2 of **2** (of 4)")
    thumbnails = app.browsing.thumbnails(study, "504", "", "", "", None, None, "image", True, 1)
    pictures = thumbnails[b.thumbnails]
    assert [caption for _, caption in pictures] == [
        "n03063599/1-coffee.jpg",
        "n03063599/0-coffee.jpg",
    ]
    assert all(path.startswith(str(app.handlers.space.root)) for path, _ in pictures)

    path = app.browsing.csv(study, "504", "", "", "", None, None, "", False)[b.download]["value"]
    assert pacsv.read_csv(path)["class"].to_pylist() == ["504 coffee mug"] * 2
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
