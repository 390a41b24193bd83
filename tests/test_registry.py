"""The model registry (sa_viz/models/registry.py): every entry, checked the same way (as timm
parametrises its tests over `list_models()`)."""

from __future__ import annotations

import pytest
import torch

from sa_viz.cam import target_layer
from sa_viz.models import DEFAULT_PAIR, get_model, list_models, parse_pair
from sa_viz.models.registry import IMAGENET
from sa_viz.models.weights import load_model
from sa_viz.probes import probe_for, unit_layouts

MODELS = list_models()


def test_the_three_models_in_order():
    assert MODELS == ["resnet50", "sa_resnet50", "se_resnet50"]
    assert DEFAULT_PAIR == ("resnet50", "sa_resnet50")


@pytest.mark.parametrize("name", MODELS)
def test_each_entry_builds_its_architecture(name):
    entry = get_model(name)
    model = entry.builder()
    assert sum(p.numel() for p in model.parameters()) == entry.meta.parameters
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    for layer in entry.cam_layers:
        assert isinstance(target_layer(model, layer), torch.nn.Module)
    assert entry.preprocessing == IMAGENET  # all share one input: `check_models` relies on it
    assert 0 < entry.meta.top1 < 100 and entry.meta.paper and entry.meta.licence


@pytest.mark.parametrize("name", MODELS)
def test_each_entry_names_its_gates_and_the_probe_finds_them(name):
    entry = get_model(name)
    probe = probe_for(entry.builder())
    layouts = unit_layouts(name)
    if entry.gates is None:
        assert probe is None and layouts == {}
        return
    assert probe.kind == entry.gates
    assert (
        len(layouts) == 16
        and [u.stage for u in layouts.values()] == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3
    )
    assert all(u.kind == entry.gates for u in layouts.values())


@pytest.mark.parametrize("name", MODELS)
def test_each_entry_loads_strictly_from_its_published_file_name(name, weights_folder):
    """The test weights folder holds each model's file under the name the registry looks for,
    in that model's published format; each loads strictly and says so."""
    entry = get_model(name)
    loaded = load_model(name, folder=weights_folder, allow_download=False)
    assert loaded.status.pretrained and not loaded.status.untrained
    assert loaded.status.path.endswith(entry.weights.filenames[-1]) or any(
        loaded.status.path.endswith(f) for f in entry.weights.filenames
    )
    assert entry.weights.how_to_get
    if entry.weights.url:
        # torch.hub's scheme: the published file's name ends in the first hex digits of its
        # sha256, and the registry checks downloads against them.
        assert entry.weights.filenames[0].rsplit("-", 1)[1].startswith(entry.weights.hash_prefix)


@pytest.mark.parametrize("name", MODELS)
def test_a_missing_file_says_how_to_get_it(name, tmp_path):
    loaded = load_model(name, folder=tmp_path, allow_download=False)
    assert not loaded.status.pretrained and "UNTRAINED" in loaded.status.message
    assert loaded.status.how_to_get == get_model(name).weights.how_to_get


def test_pairs_are_checked():
    assert parse_pair("se_resnet50, sa_resnet50") == ("se_resnet50", "sa_resnet50")
    assert parse_pair(None) == DEFAULT_PAIR
    with pytest.raises(ValueError, match="unknown model 'vgg16'; choose from resnet50"):
        parse_pair("vgg16,resnet50")
    assert len(parse_pair("resnet50,sa_resnet50,se_resnet50,resnet50.a1_in1k")) == 4
    with pytest.raises(ValueError, match="one to 4 different models"):
        parse_pair("resnet50,sa_resnet50,se_resnet50,resnet50.a1_in1k,seresnet50.ra2_in1k")
    with pytest.raises(ValueError, match="one to 4 different models"):
        parse_pair("resnet50,resnet50")
    with pytest.raises(ValueError, match="unknown model"):
        get_model("")
