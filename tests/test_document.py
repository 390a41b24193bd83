"""One result document: the CLI's JSON, /explain_json, the ZIP's explanation.json and a study's
per-image documents all follow the schema shipped with the package, with every size as width
and height; a study's document says what an explanation of the same image says."""

from __future__ import annotations

import json
import shutil
import zipfile

import gradio as gr
import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import ASSETS, assert_explanation_document

from sa_viz.analyses import analyses
from sa_viz.app.engine import Engine
from sa_viz.app.wiring import build
from sa_viz.cli import write_outputs
from sa_viz.data.sources import read_source
from sa_viz.outputs import study as study_files
from sa_viz.outputs.document import SCHEMA, explanation_document, plain, schema
from sa_viz.outputs.study_report import write_report
from sa_viz.pipeline.explain import analyse_explanation, explain
from sa_viz.probes import gate_stats
from sa_viz.studies import run_study

PAIR = ("se_resnet50", "sa_resnet50")  # an SE model (one group, no spatial gate) and SA
CHELSEA_SIZE = {"width": 451, "height": 300}
BOX = (30.0, 0.0, 385.0, 300.0)  # the cat, in chelsea.jpg's pixels


@pytest.fixture(scope="module")
def pair(all_models):
    return {name: all_models[name] for name in PAIR}


@pytest.fixture(scope="module")
def whole(pair):
    """Chelsea whole (337 × 224: not square, so the order of a size shows)."""
    return explain(ASSETS / "chelsea.jpg", models=pair)


def test_the_schema_is_a_valid_draft_2020_12_schema():
    found = schema()
    jsonschema.Draft202012Validator.check_schema(found)
    assert found["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert found["properties"]["schema"]["const"] == SCHEMA == "sa-viz/explanation/1"


def test_the_document_of_an_explanation(whole):
    document = explanation_document(whole)
    assert_explanation_document(document)
    assert document["schema"] == SCHEMA and "analyses" not in document
    height, width = whole.image.display.shape[:2]
    assert (width, height) == (337, 224)
    assert document["image"]["input_size"] == {"width": width, "height": height}
    assert document["image"]["original_size"] == CHELSEA_SIZE
    assert document["agreement"]["models"] == list(PAIR)
    for name, m in whole.models.items():
        entry = document["models"][name]
        assert [p["index"] for p in entry["top5"]] == [p.index for p in m.top5]
        assert list(entry["gates"]) == list(m.gates) and len(entry["gates"]) == 16
        for unit, gates in m.gates.items():  # the gate statistics the page shows, per group
            summary = entry["gates"][unit]["summary"]
            stats = gate_stats(gates)
            np.testing.assert_allclose(summary["channel_mean"], stats.channel_mean, rtol=1e-6)
            np.testing.assert_allclose(summary["channel_std"], stats.channel_std, atol=1e-7)
            if stats.spatial_mean is not None:
                np.testing.assert_allclose(summary["spatial_mean"], stats.spatial_mean, rtol=1e-5)
    se = document["models"]["se_resnet50"]["gates"]["layer3.0"]
    assert se["layout"] == {"kind": "SE", "stage": 3, "groups": 1, "channels": 1024,
                            "spatial": False, "untrained_value": None}  # fmt: skip
    assert len(se["summary"]["channel_mean"]) == 1 and se["summary"]["spatial_entropy"] is None
    sa = document["models"]["sa_resnet50"]["gates"]["layer3.0"]
    assert sa["layout"]["groups"] == 64 and len(sa["summary"]["peak_x"]) == 64


def test_the_cli_writes_the_document_with_its_analyses(whole, pair, tmp_path):
    found = analyse_explanation(whole, pair, ["localisation", "knockout"], [BOX])
    written = write_outputs(whole, tmp_path, "cat", "layer3.0", "jet", 0.5, found, "/x/chelsea.jpg")
    document = json.loads((tmp_path / "cat.json").read_text())
    assert tmp_path / "cat.json" in written
    assert_explanation_document(document)
    assert document["image"]["file"] == "chelsea.jpg"  # the name, never where it was
    for name in PAIR:
        done = document["analyses"][name]
        assert set(done) == {"localisation", "knockout"}
        assert set(done["localisation"]["numbers"]) == {"pointing_hit", "energy_inside", "box_iou"}
        assert len(done["knockout"]["details"]["group_dp"]) == (1 if name == "se_resnet50" else 64)
    assert all("path" not in m["weights"] for m in document["models"].values())


def test_explain_json_and_the_zip(pair, tmp_path):
    app = build(Engine(lambda: pair).start())  # the analyses' results reach the ZIP
    handlers, found = app.handlers, app.analyses
    request = gr.Request(session_hash="document")
    document = handlers.explain_json(
        str(ASSETS / "chelsea.jpg"), model_a=PAIR[0], model_b=PAIR[1], request=request
    )
    assert_explanation_document(document)
    assert document["image"]["input_size"] == {"width": 337, "height": 224}
    assert document["image"]["original_size"] == CHELSEA_SIZE
    assert document["image"]["file"] == "chelsea.jpg"  # as the ZIP's (issue 27)
    assert "/" not in json.dumps(document["models"]["sa_resnet50"]["weights"])
    found.chosen_api("localisation", "30 0 385 300", request=request)
    found.knockout_document("layer4.2", "sa_resnet50", "both", "one", request=request)
    path = handlers.export("jet", 0.5, "per model", "layer4.2", 3, "0–1", request=request)
    with zipfile.ZipFile(path) as archive:
        zipped = json.loads(archive.read("explanation.json"))
        kept = json.loads(archive.read("analyses.json"))
    assert_explanation_document(zipped)
    assert set(kept) == {"localisation", "group_knockout"}  # analyses.json: as it was
    assert set(zipped["analyses"]["se_resnet50"]) == {"localisation"}
    knocked = zipped["analyses"]["sa_resnet50"]["group_knockout"]
    assert knocked["details"]["unit"] == "layer4.2" and len(knocked["details"]["group_dp"]) == 64
    assert "unit_dp" in knocked["numbers"]
    assert zipped["view"]["gate_unit"] == "layer4.2"
    without = {k: v for k, v in zipped.items() if k not in ("view", "analyses")}
    assert without == {k: v for k, v in document.items() if k != "analyses"}


@pytest.fixture(scope="module")
def study(pair, tmp_path_factory):
    """Two photos, the cat with its box, through the SE and SA models, with localisation."""
    folder = tmp_path_factory.mktemp("study")
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(ASSETS / name, folder / name)
    listed = folder / "list.jsonl"
    box = " ".join(str(int(v)) for v in BOX)
    lines = [{"path": "chelsea.jpg", "box": box}, {"path": "coffee.jpg"}]
    listed.write_text("\n".join(json.dumps(line) for line in lines))
    out = folder / "out"
    run_study(
        read_source(listed), out, pair, batch_size=2, workers=0, progress=False,
        analyses=["localisation"], report=False,
    )  # fmt: skip
    return out


def test_a_study_gives_one_document_per_image(study, pair):
    documents = list(study_files.read_documents(study))
    assert [d["image"]["file"] for d in documents] == ["chelsea.jpg", "coffee.jpg"]
    for document in documents:
        assert_explanation_document(document)
        assert document["image"]["input_size"] == {"width": 224, "height": 224}  # the crop
        assert document["settings"] == {"layer": "layer4", "method": "gradcam",
                                        "class": "each model's top-1"}  # fmt: skip
    cat, coffee = documents
    assert cat["image"]["original_size"] == CHELSEA_SIZE
    assert set(cat["analyses"]["sa_resnet50"]) == {"localisation"}
    assert coffee["analyses"] == {"se_resnet50": {}, "sa_resnet50": {}}  # no box: not applied
    assert cat["models"]["se_resnet50"]["weights"]["file"].endswith(".pth")
    # What an explanation of the same image says, up to float32 and batching.
    alone = explanation_document(explain(ASSETS / "chelsea.jpg", models=pair, crop=True))
    assert {key: cat["image"][key] for key in alone["image"]} == alone["image"]
    for name in PAIR:
        a, b = alone["models"][name], cat["models"][name]
        assert [p["index"] for p in a["top5"]] == [p["index"] for p in b["top5"]]
        assert a["cam_target"]["index"] == b["cam_target"]["index"]
        assert a["weights"] == b["weights"] and a["title"] == b["title"]
        for unit, entry in a["gates"].items():
            assert entry["layout"] == b["gates"][unit]["layout"]
            for key, values in entry["summary"].items():
                if values is None:
                    assert b["gates"][unit]["summary"][key] is None
                else:
                    np.testing.assert_allclose(
                        b["gates"][unit]["summary"][key], values, rtol=1e-3, atol=1e-5
                    )
    np.testing.assert_allclose(cat["agreement"]["pearson"], alone["agreement"]["pearson"], 1e-3)


def test_a_study_written_before_the_documents_still_reads(study, tmp_path):
    """Parts without the size and notes columns and a study.json without the weights status:
    documents with null sizes, the weights from what study.json had; the report still works."""
    old = tmp_path / "old"
    (old / "rows").mkdir(parents=True)
    for part in (study / "rows").glob("part-*.parquet"):
        table = pq.read_table(part).drop_columns(["input_size", "original_size", "notes"])
        pq.write_table(table, old / "rows" / part.name)
    summary = json.loads((study / "study.json").read_text())
    for entry in summary["models"].values():
        del entry["weights"]
    (old / "study.json").write_text(json.dumps(summary))
    documents = list(study_files.read_documents(old))
    assert len(documents) == 2
    for document in documents:
        assert_explanation_document(document)
        image = document["image"]
        assert image["input_size"] is None and image["original_size"] is None
        assert "notes" not in image
    weights = documents[0]["models"]["sa_resnet50"]["weights"]
    assert weights["sha256"] == summary["models"]["sa_resnet50"]["sha256"]
    assert write_report(old).stat().st_size > 1000


def test_an_analysis_owns_its_numbers():
    """A study's row merges every analysis's numbers; each analysis recognises its own."""
    known = analyses()
    owners = {
        "deletion_auc": "deletion_insertion",
        "pointing_hit": "localisation",
        "road_gap": "road",
        "knockout_unit_dp": "knockout",
        "knockout_dp_g07": "knockout",
        "knockout_unit_dp_layer3.0": "knockout_units",
        "knockout_dp_layer3.0_g07": "knockout_units",
        "mprt_spearman": "mprt",
        "mprt_baseline_ssim": "mprt",
        "mprt_cascade_layer4.2_topk": "mprt",
        "mprt_independent_conv1+bn1_spearman_abs": "mprt",
        "random_logit_ssim": "random_logit",
        "gates_random_below": "gate_randomisation",
        "gates_random_own_layer3.0": "gate_randomisation",
    }
    for number, owner in owners.items():
        assert [name for name, a in known.items() if a.owns(number)] == [owner], number


def test_plain_json_has_no_nan():
    found = plain({"a": np.float32(np.nan), "b": (np.int64(3), np.array([0.5, np.inf]))})
    assert found == {"a": None, "b": [3, [0.5, None]]}
