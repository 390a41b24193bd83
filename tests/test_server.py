"""The app as users run it: `sa-viz serve` on loopback, called with gradio_client."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile

import numpy as np
import pytest
from conftest import ASSETS, api_client, assert_explanation_document
from gradio_client import handle_file
from PIL import Image

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(app_server):
    return api_client(app_server)


def read(path: str) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def test_page_and_weights_status(app_server, client):
    with urllib.request.urlopen(app_server, timeout=30) as response:
        assert response.status == 200
        assert b"SA-Viz" in response.read()
    status = client.predict(api_name="/weights_status")
    text = status["value"] if isinstance(status, dict) else status
    assert "ResNet-50" in text and "SA-ResNet-50" in text


def test_every_endpoint(client):
    out = client.predict(handle_file(str(ASSETS / "chelsea.jpg")), api_name="/explain")
    summary, table_r, table_sa, cam_r, cam_sa, diff, cam_text, grid = out[:8]
    gate_text = out[10]
    for picture in (out[8], out[9], out[11]):  # channel heatmap, group, summary
        assert read(picture).ndim == 3
    assert "predict" in summary or "disagree" in summary
    for table in (table_r, table_sa):
        assert len(table["data"]) == 5
    cams = [read(p) for p in (cam_r, cam_sa, diff)]  # the image over its colour bar, one height
    assert cams[0].shape == cams[1].shape == cams[2].shape and cams[0].shape[1:] == (337, 3)
    assert cams[0].shape[0] > 224
    assert "Pearson r" in cam_text and "layer3.0" in gate_text

    views = client.predict("layer1.2", 17, "viridis", 0.7, "per group", api_name="/gate_view")
    assert "layer1.2" in views[3]
    assert not np.array_equal(read(views[0]), read(grid))

    cams_again = client.predict("viridis", 0.8, "joint", api_name="/cam_view")
    assert not np.array_equal(read(cams_again[0]), cams[0])

    archive = client.predict("jet", 0.5, "per model", "layer4.0", 5, "0–1", api_name="/export_zip")
    with zipfile.ZipFile(archive) as z:
        assert "gates_layer4.0_group5.png" in z.namelist()
        assert json.loads(z.read("explanation.json"))["view"]["gate_group"] == 5


def test_class_by_name_and_settings(client):
    out = client.predict(
        handle_file(str(ASSETS / "rocket.jpg")),
        "centre crop 224 (evaluation protocol)",
        "space shuttle",
        "gradcam++",
        "layer3",
        api_name="/explain",
    )
    assert "space shuttle* (812" in out[6] and "Grad-CAM++ at layer3" in out[6]
    assert read(out[3]).shape[1:] == (224, 3)  # the centre crop


def test_bad_image_gets_a_message_and_the_server_keeps_serving(client, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is text, not a JPEG")
    with pytest.raises(Exception, match="not an image SA-Viz can read") as caught:
        client.predict(handle_file(str(bad)), api_name="/explain")
    assert str(tmp_path) not in str(caught.value)
    out = client.predict(handle_file(str(ASSETS / "coffee.jpg")), api_name="/explain")
    assert len(out[1]["data"]) == 5


def test_explain_json_is_one_document(client):
    photo = handle_file(str(ASSETS / "coffee.jpg"))
    document = client.predict(photo, method="layercam", layer="layer3", api_name="/explain_json")
    out = client.predict(photo, method="layercam", layer="layer3", api_name="/explain")
    settings = {"layer": "layer3", "method": "layercam", "class": "each model's top-1"}
    assert document["settings"] == settings
    assert list(document["models"]) == ["resnet50", "sa_resnet50"]
    for name, table in zip(document["models"], out[1:3], strict=True):
        top5 = document["models"][name]["top5"]
        rows = [row[0].removeprefix("▶ ") for row in table["data"]]  # ▶: the CAM's class
        assert [f"{p['index']} · {p['label']}" for p in top5] == rows
        weights = document["models"][name]["weights"]
        assert weights["untrained"] is False and weights["file"].endswith((".pth", ".tar"))
        assert "/" not in json.dumps(weights).replace("https://", "")  # no server path
    agreement = document["agreement"]
    assert agreement["models"] == ["resnet50", "sa_resnet50"]
    assert f"Pearson r = {agreement['pearson']:.3f}" in out[6]
    assert json.loads(json.dumps(document)) == document  # plain JSON types only
    assert_explanation_document(document)
    # One order for every size (the input's was (height, width), the original's the reverse)
    assert document["image"]["input_size"] == {"width": 336, "height": 224}
    assert document["image"]["original_size"] == {"width": 600, "height": 400}
    # the session keeps the result: views work after /explain_json alone
    fresh = api_client(client.src)
    fresh.predict(handle_file(str(ASSETS / "rocket.jpg")), api_name="/explain_json")
    assert fresh.predict("layer2.1", 5, api_name="/gate_view")[3].startswith(
        "**SA-ResNet-50 · layer2.1**"
    )


def test_explain_json_with_analyses(client):
    photo = handle_file(str(ASSETS / "coffee.jpg"))
    document = client.predict(photo, analyses="deletion_insertion,knockout",
                              api_name="/explain_json")  # fmt: skip
    assert_explanation_document(document)
    found = document["analyses"]
    assert set(found["resnet50"]) == {"deletion_insertion"}  # no gates: no knockout
    assert set(found["sa_resnet50"]) == {"deletion_insertion", "knockout"}
    assert "analyses" not in client.predict(photo, api_name="/explain_json")  # asked for none
    with pytest.raises(Exception, match="must name analyses"):
        client.predict(photo, analyses="nonsense", api_name="/explain_json")


def test_the_analyses_api(client):
    """/faithfulness and /knockout answer for the session's latest explanation, as JSON."""
    client.predict(handle_file(str(ASSETS / "chelsea.jpg")), api_name="/explain")
    found = client.predict("30 0 385 300", api_name="/faithfulness")
    assert set(found) == {"resnet50", "sa_resnet50"}
    assert {"pointing_hit", "energy_inside", "box_iou"} <= set(found["resnet50"]["numbers"])
    assert "pointing_hit" not in client.predict(api_name="/faithfulness")["resnet50"]["numbers"]
    with pytest.raises(Exception, match="four numbers"):
        client.predict("30 0 385", api_name="/faithfulness")
    for model in found.values():
        assert len(model["details"]["deletion"]) == 17 and len(model["details"]["insertion"]) == 17
        assert 0 <= model["numbers"]["insertion_auc"] <= 1
    knocked = client.predict("layer4.2", "sa_resnet50", "spatial", "zero", api_name="/knockout")
    assert knocked["unit"] == "layer4.2" and len(knocked["group_dp"]) == 64
    assert sorted(knocked["ranking"]) == list(range(64))
    with pytest.raises(Exception, match="has no attention unit"):
        client.predict("layer4.2", "resnet50", "both", "one", api_name="/knockout")
    # /analyses: any registered ones by name; the box (two numbers: one corner) is checked
    chosen = client.predict(analyses="road,localisation", box="30 0 385 300", api_name="/analyses")
    for model in ("resnet50", "sa_resnet50"):
        assert set(chosen[model]) == {"road", "localisation"}
        assert set(chosen[model]["road"]["numbers"]) == {"road_morf", "road_lerf", "road_gap"}
    assert set(client.predict("road", "", api_name="/analyses")["resnet50"]) == {"road"}
    with pytest.raises(Exception, match="one corner so far"):
        client.predict("localisation", "30 0", api_name="/analyses")
    with pytest.raises(Exception, match="must name analyses"):
        client.predict("road,nonsense", "", api_name="/analyses")
    # The ZIP of this result carries the analyses: JSON, and their curves as arrays.
    archive = client.predict("jet", 0.5, "per model", "layer4.0", 5, "0–1", api_name="/export_zip")
    with zipfile.ZipFile(archive) as z:
        analyses = json.loads(z.read("analyses.json"))
        assert set(analyses) == {"faithfulness", "group_knockout", "road", "localisation"}
        assert set(analyses["road"]["sa_resnet50"]["numbers"]) >= {"road_morf", "road_lerf"}
        assert analyses["group_knockout"]["unit"] == "layer4.2"
        document = json.loads(z.read("explanation.json"))  # the same analyses, per model
        assert_explanation_document(document)
        assert set(document["analyses"]["resnet50"]) == {"faithfulness", "road", "localisation"}
        assert document["analyses"]["sa_resnet50"]["group_knockout"]["details"]["ranking"]
        with np.load(io.BytesIO(z.read("arrays.npz"))) as arrays:
            assert arrays["analyses/faithfulness/sa_resnet50/details/deletion"].shape == (17,)
            assert arrays["analyses/group_knockout/group_dp"].shape == (64,)
    client.predict(handle_file(str(ASSETS / "coffee.jpg")), api_name="/explain")
    archive = client.predict("jet", 0.5, "per model", "layer4.0", 5, "0–1", api_name="/export_zip")
    with zipfile.ZipFile(archive) as z:
        assert "analyses.json" not in z.namelist()  # a new image: the old analyses are not its
