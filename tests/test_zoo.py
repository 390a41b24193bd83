"""timm's attention zoo as registry entries (sa_viz/models/zoo.py), checked against timm itself:
each model's preprocessing is timm's own transform, tensor for tensor; its probes read the kind
of attention the zoo says it has; its weights come from a Hugging Face cache laid out as the hub
lays it out (refs, snapshots, blobs named by their sha256) and give timm's logits; with no file the
status says how to get one. No network: the cache is made here from seeded weights."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from conftest import ASSETS, REPO, SEED
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config

from sa_viz.data.preprocess import prepare_image
from sa_viz.models import get_model, parse_models
from sa_viz.models.weights import load_model
from sa_viz.models.zoo import ZOO
from sa_viz.probes import units_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.open(ASSETS / "chelsea.jpg").convert("RGB")


@pytest.mark.parametrize("name", list(ZOO))
def test_preprocessing_is_timms_transform(name, chelsea):
    """Centre-crop mode gives the tensor timm's own eval transform gives (resize to
    floor(size / crop_pct), centre crop, the model's interpolation, mean and std)."""
    entry = get_model(name)
    config = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    theirs = create_transform(**config, is_training=False)(chelsea).unsqueeze(0)
    ours = prepare_image(chelsea, crop=True, preprocessing=[entry.preprocessing]).input_for(
        entry.preprocessing
    )
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(ZOO))
def test_probes_read_the_attention_the_zoo_names(name):
    """The kind written by hand in ZOO is the kind the probes find in timm's model, in every
    block that has attention (ResNeSt's and SK's units are in each bottleneck)."""
    entry = get_model(name)
    model = entry.builder()
    kinds = {probe.kind for _, _, probe in units_of(model)}
    assert kinds == ({ZOO[name].gates} if ZOO[name].gates else set())
    assert entry.meta.top1 == ZOO[name].top1
    assert entry.meta.parameters == sum(p.numel() for p in model.parameters())
    for layer in entry.cam_layers:
        assert isinstance(model.get_submodule(layer), torch.nn.Module)


def hub_cache(root, repo_id: str, state: dict[str, torch.Tensor], revision: str = "a" * 40):
    """A Hugging Face hub cache holding `state` as the repository's model.safetensors, laid out
    as huggingface_hub lays it out: the blob named by its sha256, a snapshot link to it."""
    folder = root / ("models--" + repo_id.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    staged = root / "staged.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, staged)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    blob = folder / "blobs" / digest
    staged.rename(blob)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(os.path.relpath(blob, snapshot))
    return blob


def test_weights_from_the_hub_cache_give_timms_logits(tmp_path, monkeypatch, chelsea):
    """timm's `pretrained=True` leaves its file in the hub cache; SA-Viz finds it there with no
    network, checks it against the blob's name (the hub's sha256), and the loaded model's logits
    are timm's model's with the same weights. A changed file is not called the published one."""
    name = "ecaresnet50d.miil_in1k"
    torch.manual_seed(SEED)
    reference = timm.create_model(name, pretrained=False).eval()
    repo_id = timm.models.get_pretrained_cfg(name).hf_hub_id
    blob = hub_cache(tmp_path / "hub", repo_id, reference.state_dict())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model(name, folder=tmp_path / "empty")
    assert loaded.status.pretrained and loaded.status.verified, loaded.status.message
    assert "published hash verified" in loaded.status.message
    entry = get_model(name)
    x = prepare_image(chelsea, crop=True, preprocessing=[entry.preprocessing]).input_for(
        entry.preprocessing
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), reference(x), atol=1e-5, rtol=1e-5)

    state = reference.state_dict()
    state["fc.bias"] = state["fc.bias"] + 1
    save_file(state, blob.with_suffix(".changed"))
    blob.with_suffix(".changed").replace(blob)  # the blob's name no longer is its hash
    changed = load_model(name, folder=tmp_path / "empty")
    assert changed.status.pretrained and not changed.status.verified
    assert "not the published weights" in changed.status.message


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    """No file anywhere and no network allowed: the model runs untrained and its status names
    the hub repository, the command that fetches it and where to put it."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model("resnest50d.in1k", folder=tmp_path)
    assert loaded.status.untrained
    assert "UNTRAINED" in loaded.status.message and "Hugging Face cache" in loaded.status.message
    repo_id = timm.models.get_pretrained_cfg("resnest50d.in1k").hf_hub_id
    assert f"hf download {repo_id}" in loaded.status.how_to_get


def test_any_timm_model_by_name_and_wrong_names():
    """ "timm:NAME" takes any timm ImageNet classifier (its preprocessing from its own config);
    names timm does not know, and more than four models, are errors that say what to do."""
    assert parse_models("resnet50,timm:resnet18.a1_in1k") == ("resnet50", "resnet18.a1_in1k")
    entry = get_model("resnet18.a1_in1k")
    assert entry.preprocessing.interpolation == "bicubic"
    assert entry.gates is None and entry.cam_layers[-1] == "layer4"
    with pytest.raises(ValueError, match="timm has no model 'notanet'"):
        parse_models("timm:notanet")
    with pytest.raises(ValueError, match="one to 4 different models"):
        parse_models("resnet50,sa_resnet50,se_resnet50,resnet18.a1_in1k,ecaresnet50d.miil_in1k")


@pytest.mark.slow
def test_four_models_from_the_command_line(weights_folder, tmp_path):
    """`sa-viz explain --models` takes four models, built-in and zoo, each at its own input
    (ECA-ResNet-50-D: bicubic, 224 of 256 pixels; GC-ResNet-50-T: 256 of 292): one figure with
    four CAMs, a gate figure for each model with gates at the unit, one document."""
    names = "resnet50,sa_resnet50,ecaresnet50d.miil_in1k,gcresnet50t.ra2_in1k"
    command = [sys.executable, "-m", "sa_viz", "explain", str(ASSETS / "chelsea.jpg"), "--crop"]
    command += ["--out", str(tmp_path), "--models", names, "--unit", "layer3.0"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SA_VIZ_WEIGHTS_DIR": str(weights_folder)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "ECA-ResNet-50-D (MIIL) is UNTRAINED" in result.stderr  # no zoo weights here
    document = json.loads((tmp_path / "chelsea.json").read_text())
    assert list(document["models"]) == names.split(",")
    for name, model in document["models"].items():
        assert len(model["top5"]) == 5
        assert bool(model["gates"]) == (name != "resnet50")
    assert (tmp_path / "chelsea_cam.png").stat().st_size > 10_000


def test_using_a_zoo_model_does_not_list_it():
    """A zoo model works by name without joining `list_models` (what the app offers and loads,
    and what the weights flags are made from); registering its entry lists it."""
    from sa_viz.models import list_models, register_model, registry

    before = list_models()
    entry = get_model("seresnet50.ra2_in1k")
    assert get_model("timm:seresnet50.ra2_in1k") is entry and list_models() == before
    try:
        assert register_model(entry) is entry and list_models() == [*before, entry.name]
    finally:
        registry._BY_NAME.pop(entry.name, None)
