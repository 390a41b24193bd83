"""Which modules the probes read (by what a module is and computes, not one class), which ones
look like attention but are not read, and the layouts and statistics of the new kinds."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch
from timm.layers import EcaModule, GlobalContext, SEModule
from torch import nn

from sa_viz.analyses.knockout import knocked_out
from sa_viz.models import resnet50, sa_resnet50, se_resnet50
from sa_viz.outputs.document import details_entry, layout_entry
from sa_viz.probes import GateLayout, gate_stats, is_constant, record_gates, unit_summary
from sa_viz.probes.base import stage_of
from sa_viz.probes.recorder import UNREAD, units_of, unread_attention


class HomeMadeSE(nn.Module):
    """A researcher's own SE unit: not timm's class, built the same way."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 2, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // 2, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class PixelAttention(nn.Module):
    """An attention type no probe knows: a softmax over positions that reweights them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return x * self.softmax(self.score(x).flatten(1)).reshape(b, 1, h, w) * (h * w)


def net(**blocks: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Sequential(OrderedDict(blocks))).eval()


def test_a_module_built_like_se_is_read_as_se():
    torch.manual_seed(0)
    model = net(se=HomeMadeSE(8))
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad(), record_gates(model) as gates:
        out = model(x)
        features = model[0](x)
    assert list(gates) == ["1"] and gates["1"].layout.kind == "SE"
    torch.testing.assert_close(features * gates["1"].channel[:, 0, :, None, None], out)
    assert unread_attention(model) == {}


def test_attention_of_unknown_kind_is_listed_not_ignored():
    model = net(attn=PixelAttention(8), relu=nn.ReLU())
    assert unread_attention(model) == {"1.attn": f"{UNREAD} (PixelAttention)"}
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(1, 3, 8, 8))
    assert gates == {}


def test_timms_coordinate_attention_is_listed_as_unread():
    from timm.layers import get_attn

    try:
        get_attn("coord")
    except AssertionError:  # timm 1.0.25 brought it; pyproject allows 1.0.3
        pytest.skip("this timm has no coordinate attention (CoordAttn)")
    with torch.device("meta"):  # timm's coordinate attention: no probe yet
        coord = timm.create_model("resnet18", block_args={"attn_layer": "coord"})
    unread = unread_attention(coord)
    assert len(unread) == 8 and unread["layer1.0.se"] == f"{UNREAD} (CoordAttn)"


@pytest.mark.parametrize("builder", [resnet50, sa_resnet50, se_resnet50])
def test_models_whose_attention_is_read_or_absent_list_nothing(builder):
    with torch.device("meta"):
        model = builder()
    assert unread_attention(model) == {}  # no false alarms on blocks or whole networks


def test_a_unit_inside_a_unit_belongs_to_it_and_two_units_in_one_block_keep_their_paths():
    with torch.device("meta"):
        cbam = timm.create_model("resnet18", block_args={"attn_layer": "cbam"})
    # CBAM's channel part is built like SE, but it is part of the CBAM unit
    assert {probe.kind for _, _, probe in units_of(cbam)} == {"CBAM"}
    model = net(se=SEModule(8, rd_ratio=0.5), eca=EcaModule(8))
    assert [(name, probe.kind) for name, _, probe in units_of(model)] == [
        ("1.se", "SE"),
        ("1.eca", "ECA"),
    ]


def test_a_unit_without_a_channel_gate_has_spatial_figures_only():
    torch.manual_seed(0)
    unit = GlobalContext(8, fuse_add=True, fuse_scale=False)  # timm's `gca`: `gate` never runs
    with torch.no_grad():
        unit.conv_attn.weight.normal_()
    model = net(attn=unit)
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(2, 3, 6, 5))
    got = gates["1"]
    assert got.channel is None and got.channels == 0 and got.groups == 1
    assert got.spatial.shape == (2, 1, 1, 6, 5)
    stats = gate_stats(got, 1)
    assert stats.channel_mean is None and stats.spatial_mean.shape == (1,)
    assert set(stats.summary()) == {"spatial_mean", "spatial_std", "spatial_group_spread"}
    summary = unit_summary(got, 0)
    assert summary["channel"] is None and summary["groups"] == 1
    assert 0 < summary["spatial_entropy"][0] < 1
    assert not is_constant(got)
    assert (
        got.layout.describe()
        == "GC unit, stage 0: spatial gates: 1 map, softmax over the positions"
    )
    # its softmax is computed from conv_attn's output: a knockout cannot replace it there
    with pytest.raises(ValueError, match="no both gate"), knocked_out(model, "1", [0, 0]):
        pass


def test_layouts_say_sizes_functions_and_rows():
    cbam = GateLayout("CBAM", 2, 1, 512, True, spatial_channels=1)
    assert cbam.spatial_maps == 1
    assert cbam.describe() == (
        "CBAM unit, stage 2: channel gates: 512 channels, sigmoid; spatial gates: 1 map, sigmoid"
    )
    sk = GateLayout("SK", 3, 2, 256, False, channel_function="softmax", rows="kernel path")
    assert sk.describe() == (
        "SK unit, stage 3: channel gates: 2 kernel paths × 256 channels, "
        "softmax over the kernel paths"
    )
    sa = GateLayout("SA", 1, 64, 2, True)
    assert sa.spatial_maps == 2  # one map per channel-gate channel, as before
    # the explanation document (schema sa-viz/explanation/1) keeps its six layout keys (the
    # rest in its optional `details`)
    assert layout_entry(cbam) == {
        "kind": "CBAM",
        "stage": 2,
        "groups": 1,
        "channels": 512,
        "spatial": True,
        "untrained_value": None,
    }
    assert cbam.details["spatial_channels"] == 1 and sk.details["rows"] == "kernel path"
    assert details_entry(sk) == {
        "spatial_maps": 0,
        "spatial_channels": None,
        "channel_function": "softmax",
        "spatial_function": "sigmoid",
        "rows": "kernel path",
        "gated": "",
    }
    assert GateLayout("SE", 4, 1, 2048, False).spatial_maps == 0


def test_stages_are_read_from_resnet_and_timm_names():
    assert stage_of("layer3.0.se") == 3
    assert stage_of("stages.0.1.attn") == 1 and stage_of("stages.3.2.attn") == 4
    assert stage_of("blocks.1") == 0 and stage_of("se") == 0
