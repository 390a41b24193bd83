"""ResNet-50 and SA-ResNet-50 (sa_viz/models/resnet.py): the official state-dict layout,
parameter counts, the units, and the official checkpoint against an independent implementation."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, matches_functional, randomize_gates, seeded
from torchvision.models import resnet50 as torchvision_resnet50

from sa_viz.models import SA_UNIT_NAMES, resnet50, sa_resnet50
from sa_viz.probes import units_of

# A copy of shared/reference/sa_resnet50_shapes.json: the official checkpoint's names and shapes.
REFERENCE = REPO / "tests" / "reference" / "sa_resnet50_shapes.json"


@pytest.fixture(scope="module")
def reference_shapes() -> dict[str, list[int]]:
    return json.loads(REFERENCE.read_text())


def test_sa_resnet50_state_dict_is_the_official_layout(reference_shapes):
    state = sa_resnet50().state_dict()
    assert len(state) == 416
    assert list(state) == list(reference_shapes), "names or their order differ"
    for name, tensor in state.items():
        assert list(tensor.shape) == reference_shapes[name], name


def test_parameter_counts():
    assert sum(p.numel() for p in resnet50().parameters()) == 25_557_032
    assert sum(p.numel() for p in sa_resnet50().parameters()) == 25_557_740


def test_resnet50_is_torchvisions():
    ours, theirs = resnet50().state_dict(), torchvision_resnet50().state_dict()
    assert len(ours) == 320
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_sixteen_units_with_named_gates():
    model = sa_resnet50()
    units = {name: unit for name, unit, _ in units_of(model)}
    assert tuple(units) == SA_UNIT_NAMES and len(units) == 16
    widths = {f"layer{s}": c for s, c in zip((1, 2, 3, 4), (2, 4, 8, 16), strict=True)}
    for name, unit in units.items():
        assert unit.groups == 64
        assert unit.channels_per_half == widths[name.split(".")[0]]
        assert isinstance(unit.channel_gate, torch.nn.Sigmoid)
        assert isinstance(unit.spatial_gate, torch.nn.Sigmoid)
        assert model.get_submodule(f"{name}.sa.channel_gate") is unit.channel_gate


def test_untrained_units_are_detected():
    def untrained(model):
        return [name for name, unit, probe in units_of(model) if probe.untrained(unit)]

    model = sa_resnet50()
    assert untrained(model) == list(SA_UNIT_NAMES)
    randomize_gates(model)
    assert untrained(model) == []


def test_every_parameter_gets_a_gradient():
    model = randomize_gates(seeded(sa_resnet50)).train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_official_checkpoint_reproduces_an_independent_implementation(weights_folder):
    """Logits and gates of our model, loaded from the official-format file, equal those of a
    functional implementation fed the same file's tensors."""
    matches_functional(sa_resnet50().eval(), weights_folder / "sa_resnet50.pth.tar", 1e-5, 1e-5)
