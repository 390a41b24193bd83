"""explain(): both models, one forward and one head-only backward each; and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ASSETS, REPO, assert_explanation_document
from PIL import Image

from sa_viz.data.preprocess import ImageError, prepare_image
from sa_viz.models import SA_UNIT_NAMES
from sa_viz.outputs.document import explanation_document
from sa_viz.pipeline.explain import explain


def count_calls(module: torch.nn.Module, counter: dict, key: str):
    return module.register_forward_hook(lambda *_: counter.__setitem__(key, counter[key] + 1))


def test_explain_both_models(loaded_models):
    result = explain(ASSETS / "chelsea.jpg", models=loaded_models)
    assert list(result.models) == ["resnet50", "sa_resnet50"]
    for name, m in result.models.items():
        assert len(m.top5) == 5
        probabilities = [p.probability for p in m.top5]
        assert probabilities == sorted(probabilities, reverse=True)
        assert m.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert m.target == m.top5[0]  # default: each model's own top-1
        assert m.cam.shape == result.image.size and m.cam.dtype == np.float32
        assert m.cam_raw.shape == (7, 11)
        assert not m.untrained and m.weights.pretrained
        assert (name == "sa_resnet50") == bool(m.gates)
    sa = result.models["sa_resnet50"]
    assert tuple(sa.gates) == SA_UNIT_NAMES
    assert sa.gates["layer4.2"].spatial.shape == (1, 64, 16, 7, 11)


def test_one_class_for_both(loaded_models):
    result = explain(ASSETS / "coffee.jpg", models=loaded_models, class_idx=967, layer="layer3")
    for m in result.models.values():
        assert m.target.index == 967 and m.target.label == "espresso"
        assert m.cam_raw.shape == (14, 21)


def test_one_forward_and_a_head_only_backward_per_model(loaded_models):
    image = prepare_image(ASSETS / "rocket.jpg")
    counts = {"stem": 0, "layer4": 0}
    handles = []
    for loaded in loaded_models.values():
        handles.append(count_calls(loaded.module.conv1, counts, "stem"))
        handles.append(count_calls(loaded.module.layer4, counts, "layer4"))
    backward_convs = []

    def spy(grad_fn):
        from test_cam import convolutions_in_graph

        backward_convs.append(convolutions_in_graph(grad_fn))

    original = torch.autograd.grad

    def recording_grad(outputs, inputs, *args, **kwargs):
        spy(outputs.grad_fn)
        return original(outputs, inputs, *args, **kwargs)

    torch.autograd.grad = recording_grad
    try:
        explain(image, models=loaded_models)
    finally:
        torch.autograd.grad = original
        for handle in handles:
            handle.remove()
    assert counts == {"stem": 2, "layer4": 2}
    assert backward_convs == [0, 0]  # layer4 target: the backward meets no convolution


def test_untrained_models_are_flagged(tmp_path):
    from sa_viz.models.weights import load_models

    models = load_models(tmp_path, allow_download=False)
    result = explain(ASSETS / "chelsea.jpg", models=models)
    for m in result.models.values():
        assert m.untrained and not m.weights.pretrained
    assert all(m["untrained"] for m in explanation_document(result)["models"].values())


def test_json_is_plain_and_complete(loaded_models):
    result = explain(ASSETS / "astronaut.jpg", models=loaded_models, method="gradcam++", crop=True)
    data = json.loads(json.dumps(explanation_document(result)))
    assert data["settings"] == {
        "layer": "layer4",
        "method": "gradcam++",
        "class": "each model's top-1",
    }
    assert data["image"]["crop"] is True
    assert data["image"]["input_size"] == {"width": 224, "height": 224}  # was [224, 224]
    for name in ("resnet50", "sa_resnet50"):
        model = data["models"][name]
        assert len(model["top5"]) == 5 and model["weights"]["sha256"]
    assert result.models["sa_resnet50"].gates  # other methods still record every gate


def test_the_documents_image_sizes_name_their_sides(loaded_models):
    """Before: `original_size` was [width, height] and `input_size` [height, width]."""
    result = explain(ASSETS / "chelsea.jpg", models=loaded_models)  # 451 × 300, whole image
    image = explanation_document(result)["image"]
    assert image["original_size"] == {"width": 451, "height": 300}
    assert image["input_size"] == {"width": 337, "height": 224}


def test_bad_input_raises_image_error(loaded_models):
    with pytest.raises(ImageError):
        explain(b"not an image", models=loaded_models)
    with pytest.raises(ValueError, match="unknown layer"):
        explain(ASSETS / "chelsea.jpg", models=loaded_models, layer="fc")


def run_cli(*args: str, env_dir) -> subprocess.CompletedProcess:
    env = {"SA_VIZ_WEIGHTS_DIR": str(env_dir), "SA_VIZ_NO_DOWNLOAD": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "sa_viz", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "HOME": str(env_dir), "PYTHONPATH": str(REPO)},
    )


def test_cli_end_to_end(weights_folder, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((ASSETS / "chelsea.jpg").read_bytes()[:2000])
    out = tmp_path / "out"
    result = run_cli(
        "explain",
        str(ASSETS / "chelsea.jpg"),
        str(broken),
        str(ASSETS / "coffee.jpg"),
        "--out",
        str(out),
        "--unit",
        "layer2.3",
        env_dir=weights_folder,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {broken}: " + errors[0].split(": ", 2)[2]]
    assert "truncated or corrupted" in errors[0]
    for stem in ("chelsea", "coffee"):
        for name in (f"{stem}_cam.png", f"{stem}_gates_layer2.3.png"):
            with Image.open(out / name) as image:
                assert image.size[0] > 600
        data = json.loads((out / f"{stem}.json").read_text())
        assert set(data["models"]) == {"resnet50", "sa_resnet50"}
    assert not (out / "broken_cam.png").exists()


def test_cli_all_good_exits_zero(weights_folder, tmp_path):
    result = run_cli(
        "explain",
        str(ASSETS / "rocket.jpg"),
        "--out",
        str(tmp_path),
        "--class",
        "space shuttle",
        "--method",
        "layercam",
        env_dir=weights_folder,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "rocket.json").read_text())
    assert data["models"]["resnet50"]["cam_target"]["label"] == "space shuttle"


def test_cli_any_pair_and_a_wrong_unit(weights_folder, tmp_path):
    result = run_cli(
        "explain",
        str(ASSETS / "chelsea.jpg"),
        "--out",
        str(tmp_path),
        "--models",
        "se_resnet50,sa_resnet50",
        "--unit",
        "layer4.1",
        env_dir=weights_folder,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "chelsea.json").read_text())
    assert_explanation_document(data)
    assert data["image"]["file"] == "chelsea.jpg"
    assert list(data["models"]) == ["se_resnet50", "sa_resnet50"]  # in the order asked
    assert data["models"]["se_resnet50"]["gates"]["layer4.1"]["layout"]["groups"] == 1
    for name in ("se_resnet50", "sa_resnet50"):  # both have gates: one figure each
        assert (tmp_path / f"chelsea_gates_{name}_layer4.1.png").stat().st_size > 10_000
    for args, message in (
        (
            ["--unit", "layer4.9"],
            "--unit 'layer4.9': not an attention unit; choose one of layer1.0",
        ),
        (["--models", "resnet50,vgg16"], "unknown model 'vgg16'; choose from resnet50"),
        (["--models", "sa_resnet50,sa_resnet50"], "to 4 different models"),
    ):
        chelsea = str(ASSETS / "chelsea.jpg")
        wrong = run_cli("explain", chelsea, "--out", str(tmp_path), *args, env_dir=weights_folder)
        assert wrong.returncode == 2 and message in wrong.stderr, wrong.stderr


def test_cli_analyses_in_the_json(weights_folder, tmp_path):
    """`--analyses` takes any registered analysis; each model's results land in the JSON (the
    knockout only for the model with gates); an unknown name is the parser's error."""
    result = run_cli(
        "explain", str(ASSETS / "coffee.jpg"), "--out", str(tmp_path), "--crop",
        "--analyses", "deletion_insertion,knockout", env_dir=weights_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "coffee.json").read_text())
    assert_explanation_document(document)
    found = document["analyses"]
    assert set(found["resnet50"]) == {"deletion_insertion"}
    assert set(found["sa_resnet50"]) == {"deletion_insertion", "knockout"}
    curve = found["sa_resnet50"]["deletion_insertion"]["details"]["deletion"]
    assert len(curve) == 17
    assert len(found["sa_resnet50"]["knockout"]["details"]["group_dp"]) == 64
    wrong = run_cli("explain", str(ASSETS / "coffee.jpg"), "--out", str(tmp_path),
                    "--analyses", "nonsense", env_dir=weights_folder)  # fmt: skip
    assert wrong.returncode == 2 and "unknown nonsense" in wrong.stderr


@pytest.mark.slow  # the MPRT: ~50 CAM passes per model
def test_cli_mprt_draws_every_models_curve(weights_folder, tmp_path):
    """`--analyses mprt` adds <name>_mprt.svg (and .png): both models' curves on one chart,
    titled by the models' titles, with their numbers in the JSON."""
    result = run_cli(
        "explain", str(ASSETS / "coffee.jpg"), "--out", str(tmp_path), "--crop",
        "--analyses", "mprt", "--format", "png,svg", env_dir=weights_folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "coffee_mprt.svg").read_text()
    assert "ResNet-50" in svg and "SA-ResNet-50" in svg and "baseline" in svg
    assert (tmp_path / "coffee_mprt.png").stat().st_size > 10_000
    found = json.loads((tmp_path / "coffee.json").read_text())["analyses"]
    assert set(found) == {"resnet50", "sa_resnet50"}
    for f in found.values():  # null where a randomised model's map is flat (no ranking)
        value = f["mprt"]["numbers"]["mprt_spearman"]
        assert value is None or -1 <= value <= 1


def test_the_cli_names_the_file_and_stage_of_an_unforeseen_failure(
    weights_folder, tmp_path, monkeypatch, capsys
):
    """One line per failed image, naming it and the stage; the other images still run; the
    traceback only with --debug."""
    import sa_viz.cam
    from sa_viz import cli

    calls = []

    def broken_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no luck\nand a second line")
        return original(*args, **kwargs)

    original = sa_viz.cam.scale_cams
    monkeypatch.setattr(sa_viz.cam, "scale_cams", broken_once)
    chelsea, coffee = ASSETS / "chelsea.jpg", ASSETS / "coffee.jpg"
    flags = ["--out", str(tmp_path), "--weights-dir", str(weights_folder), "--no-download"]
    assert cli.main(["explain", str(chelsea), str(coffee), *flags]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {chelsea}: failed while computing the CAM: RuntimeError: no luck "
        "(run again with --debug for the traceback)"
    ]
    assert "Traceback" not in err
    assert (tmp_path / "coffee_cam.png").exists() and not (tmp_path / "chelsea_cam.png").exists()

    calls.clear()
    assert cli.main(["explain", str(chelsea), *flags, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: no luck" in err
