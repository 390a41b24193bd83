"""The architectures: the official state-dict layout, parameter counts, the SA unit's math."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, randomize_gates, seeded
from torchvision.models import resnet50 as torchvision_resnet50

from sa_viz.models import SA_UNIT_NAMES, resnet50, sa_resnet50, sa_units, untrained_sa_units
from sa_viz.models.attention import ShuffleAttention

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
    units = dict(sa_units(model))
    assert tuple(units) == SA_UNIT_NAMES and len(units) == 16
    widths = {f"layer{s}": c for s, c in zip((1, 2, 3, 4), (2, 4, 8, 16), strict=True)}
    for name, unit in units.items():
        assert unit.groups == 64
        assert unit.channels_per_half == widths[name.split(".")[0]]
        assert isinstance(unit.channel_gate, torch.nn.Sigmoid)
        assert isinstance(unit.spatial_gate, torch.nn.Sigmoid)
        assert model.get_submodule(f"{name}.sa.channel_gate") is unit.channel_gate


def hand_computed_unit(unit: ShuffleAttention, x: torch.Tensor) -> torch.Tensor:
    """`hand_computed_sa` with `unit`'s own parameters."""
    return hand_computed_sa(
        x,
        unit.cweight.flatten(),
        unit.cbias.flatten(),
        unit.sweight.flatten(),
        unit.sbias.flatten(),
        unit.gn.weight,
        unit.gn.bias,
        groups=unit.groups,
    )


def hand_computed_sa(x, cweight, cbias, sweight, sbias, gn_weight, gn_bias, groups, eps=1e-5):
    """DESIGN.md's four steps, one element-wise loop at a time (independent of the module)."""
    b, ch = x.shape[:2]
    c = ch // (2 * groups)
    pre_shuffle = torch.empty_like(x)
    for n in range(b):
        for g in range(groups):
            for j in range(c):
                first = x[n, g * 2 * c + j]  # X1, channel j of group g
                s = first.mean()
                gate = torch.sigmoid(cweight[j] * s + cbias[j])
                pre_shuffle[n, g * 2 * c + j] = first * gate
                second = x[n, g * 2 * c + c + j]  # X2, channel j
                normed = (second - second.mean()) / torch.sqrt(second.var(unbiased=False) + eps)
                normed = normed * gn_weight[j] + gn_bias[j]
                gate = torch.sigmoid(sweight[j] * normed + sbias[j])
                pre_shuffle[n, g * 2 * c + c + j] = second * gate
    # channel shuffle, 2 groups: output channel 2m + t comes from channel t·C/2 + m
    out = torch.empty_like(x)
    for m in range(ch // 2):
        for t in range(2):
            out[:, 2 * m + t] = pre_shuffle[:, t * ch // 2 + m]
    return out


def test_sa_unit_matches_hand_computation():
    torch.manual_seed(0)
    unit = ShuffleAttention(channels=24, groups=3)  # c = 4
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(2, 24, 5, 7)
    expected = hand_computed_unit(unit, x)
    torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-5)


def test_sa_unit_without_autograd_is_bit_identical():
    """Inference writes the gated halves straight into their shuffled places; same values."""
    torch.manual_seed(1)
    unit = ShuffleAttention(channels=32, groups=4)  # c = 4, an even number of groups
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(torch.randn_like(p))
        x = torch.randn(2, 32, 6, 5)
        fast = unit(x)
    expected = hand_computed_unit(unit, x)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(fast, unit(x).detach())  # the autograd path: cat + ChannelShuffle


def test_untrained_units_are_detected():
    model = sa_resnet50()
    assert untrained_sa_units(model) == list(SA_UNIT_NAMES)
    randomize_gates(model)
    assert untrained_sa_units(model) == []


def test_every_parameter_gets_a_gradient():
    model = randomize_gates(seeded(sa_resnet50)).train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def functional_sa_resnet50(state: dict[str, torch.Tensor], x: torch.Tensor):
    """SA-ResNet-50 written from DESIGN.md with torch.nn.functional only, straight from a state
    dict: an implementation independent of our modules. Returns logits and every unit's gates."""
    import torch.nn.functional as F

    def bn(t, name):
        return F.batch_norm(
            t,
            state[f"{name}.running_mean"],
            state[f"{name}.running_var"],
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            training=False,
            eps=1e-5,
        )

    def sa(t, name, gates):
        b, ch, h, w = t.shape
        p = {k: state[f"{name}.{k}"] for k in ("cweight", "cbias", "sweight", "sbias")}
        groups = t.reshape(b * 64, ch // 64, h, w)
        x1, x2 = groups[:, : ch // 128], groups[:, ch // 128 :]
        gc = torch.sigmoid(p["cweight"] * x1.mean((2, 3), keepdim=True) + p["cbias"])
        normed = F.group_norm(x2, x2.shape[1], state[f"{name}.gn.weight"], state[f"{name}.gn.bias"])
        gs = torch.sigmoid(p["sweight"] * normed + p["sbias"])
        gates[name.removesuffix(".sa")] = (gc.reshape(b, 64, -1), gs.reshape(b, 64, *gs.shape[1:]))
        out = torch.cat([x1 * gc, x2 * gs], 1).reshape(b, ch, h, w)
        return out.reshape(b, 2, ch // 2, h, w).transpose(1, 2).reshape(b, ch, h, w)

    gates: dict = {}
    t = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    t = F.max_pool2d(t, 3, 2, 1)
    for stage, depth in enumerate((3, 4, 6, 3), 1):
        for block in range(depth):
            n = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            out = F.relu(bn(F.conv2d(t, state[f"{n}.conv1.weight"]), f"{n}.bn1"))
            out = F.conv2d(out, state[f"{n}.conv2.weight"], stride=stride, padding=1)
            out = F.relu(bn(out, f"{n}.bn2"))
            out = sa(bn(F.conv2d(out, state[f"{n}.conv3.weight"]), f"{n}.bn3"), f"{n}.sa", gates)
            if f"{n}.downsample.0.weight" in state:
                t = bn(
                    F.conv2d(t, state[f"{n}.downsample.0.weight"], stride=stride),
                    f"{n}.downsample.1",
                )
            t = F.relu(out + t)
    logits = F.linear(t.mean((2, 3)), state["fc.weight"], state["fc.bias"])
    return logits, gates


def test_official_checkpoint_reproduces_an_independent_implementation(weights_folder):
    """Logits and gates of our model, loaded from the official-format file, equal those of a
    functional implementation fed the same file's tensors."""
    matches_functional(sa_resnet50().eval(), weights_folder / "sa_resnet50.pth.tar", 1e-5, 1e-5)


def matches_functional(model, path, gate_rtol: float, gate_atol: float) -> None:
    """`model`, loaded from `path`, gives the logits (within 1e-4) and every gate (within the
    given tolerances) of `functional_sa_resnet50` fed the same file's tensors."""
    from sa_viz.models.weights import load_checkpoint, read_checkpoint
    from sa_viz.probes import record_gates

    load_checkpoint(model, path)
    state, _ = read_checkpoint(path)
    x = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), record_gates(model) as gates:
        logits = model(x)
        expected_logits, expected_gates = functional_sa_resnet50(state, x)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-4)
    assert set(gates) == set(expected_gates) == set(SA_UNIT_NAMES)
    for name, (channel, spatial) in expected_gates.items():
        torch.testing.assert_close(gates[name].channel, channel, rtol=gate_rtol, atol=gate_atol)
        torch.testing.assert_close(gates[name].spatial, spatial, rtol=gate_rtol, atol=gate_atol)
