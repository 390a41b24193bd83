"""SE-ResNet-50 (sa_viz/models/senet.py, timm's legacy_seresnet50) and its probe: the published
file's layout loads strictly, and the recorded gates equal the SE formula computed by hand."""

from __future__ import annotations

import torch
from conftest import seeded

from sa_viz.models import se_resnet50
from sa_viz.models.weights import load_checkpoint
from sa_viz.probes import record_gates, unit_layouts


def test_the_published_layout_loads_strictly(weights_folder):
    model = se_resnet50()
    info = load_checkpoint(model, weights_folder / "se_resnet50-ce0d4300.pth")
    assert info.format == "state dict"
    state = model.state_dict()
    assert "layer0.conv1.weight" in state and "last_linear.weight" in state
    assert "layer4.2.se_module.fc2.weight" in state and len(state) == 384


def test_gates_are_the_se_formula():
    """σ(W2 · ReLU(W1 · mean(x) + b1) + b2), per image and channel, at every unit's input."""
    model = seeded(se_resnet50)
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    inputs = {}
    handles = [
        unit.register_forward_pre_hook(lambda _m, args, n=name: inputs.__setitem__(n, args[0]))
        for name, unit in model.named_modules()
        if name.endswith(".se_module")
    ]
    try:
        with torch.no_grad(), record_gates(model) as gates:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    assert list(gates) == list(unit_layouts("se_resnet50"))
    for path, feature in inputs.items():
        unit = model.get_submodule(path)
        pooled = feature.mean((2, 3))
        hidden = torch.relu(pooled @ unit.fc1.weight[:, :, 0, 0].T + unit.fc1.bias)
        expected = torch.sigmoid(hidden @ unit.fc2.weight[:, :, 0, 0].T + unit.fc2.bias)
        got = gates[path.removesuffix(".se_module")]
        assert got.spatial is None and got.groups == 1 and got.layout.kind == "SE"
        torch.testing.assert_close(got.channel[:, 0], expected, rtol=1e-5, atol=1e-6)
