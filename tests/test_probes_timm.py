"""The probes of timm's ResNet attention family against the modules' own computation (issue 25).

Per family, on random weights with every gate parameter and norm statistic randomised (so no gate
is constant), at 64×64 with a batch of 2: the logits with the gates being read equal timm's own
forward; every recorded gate equals the gate computed here in float64 from the unit's input and
parameters, the formulas written out with `torch.nn.functional` (≤ 1e-5); and the recorded gates
applied to what they gate give the unit's output (for a softmax: the weighted sum over the
kernel paths, radix splits or positions that the unit computes).
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from sa_viz.probes import record_gates
from sa_viz.probes.recorder import units_of, unread_attention

TOL = {"rtol": 0.0, "atol": 1e-5}

# family → (timm name, its arguments, units, kind)
FAMILIES = {
    "SE": ("seresnet50", {}, 16, "SE"),
    "SE, legacy": ("legacy_seresnet50", {}, 16, "SE"),
    "ESE": ("resnet18", {"block_args": {"attn_layer": "ese"}}, 8, "SE"),
    "ECA": ("ecaresnet50d", {}, 16, "ECA"),
    "CBAM": ("resnet50", {"block_args": {"attn_layer": "cbam"}}, 16, "CBAM"),
    "light CBAM": ("resnet18", {"block_args": {"attn_layer": "lcbam"}}, 8, "CBAM"),
    "GC, gca": ("gcresnet50t", {}, 16, "GC"),
    "GC": ("resnet18", {"block_args": {"attn_layer": "gc"}}, 8, "GC"),
    "SplAt": ("resnest50d", {}, 16, "SplAt"),
    "SK": ("skresnext50_32x4d", {}, 16, "SK"),
}


def randomised(name: str, kwargs: dict, seed: int = 0) -> nn.Module:
    """timm's model, untrained, in eval mode, with every norm layer's statistics and affine
    parameters and every attention unit's parameters drawn at random (timm zero-inits the last
    norm of each block and GC's last layer, which would make every gate one constant)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    generator = torch.Generator().manual_seed(seed)

    def draw(t: torch.Tensor, scale: float, low: float | None = None) -> None:
        if low is not None:
            t.copy_(low + scale * torch.rand(t.shape, generator=generator))
        else:
            t.copy_(scale * torch.randn(t.shape, generator=generator))

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm):
                draw(module.weight, 0.5, low=0.25)  # keeps the residual sums moderate
                draw(module.bias, 0.2)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                draw(module.running_mean, 0.2)
                draw(module.running_var, 1.0, low=0.5)
        for _, unit, _ in units_of(model):
            for p in unit.parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 4
                draw(p, 1.5 / math.sqrt(fan_in))
    return model


class Seen:
    """Each unit's input and output, and what its gates weight where that is inside the unit
    (SK's path outputs, Split Attention's radix splits), copied during the forward."""

    def __init__(self, model: nn.Module) -> None:
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.paths: dict[str, list[torch.Tensor]] = {}
        self.splits: dict[str, torch.Tensor] = {}
        self.handles = []
        for name, unit, _ in units_of(model):
            self.handles += [
                unit.register_forward_pre_hook(
                    lambda _m, args, n=name: self.inputs.__setitem__(n, args[0].detach().clone())
                ),
                unit.register_forward_hook(
                    lambda _m, _a, out, n=name: self.outputs.__setitem__(n, out.detach().clone())
                ),
            ]
            if hasattr(unit, "act0"):  # Split Attention: the splits before they are weighted
                self.handles.append(
                    unit.act0.register_forward_hook(
                        lambda _m, _a, out, n=name: self.splits.__setitem__(n, out.detach().clone())
                    )
                )
            for path in getattr(unit, "paths", []):
                self.handles.append(
                    path.register_forward_hook(
                        lambda _m, _a, out, n=name: self.paths.setdefault(n, []).append(
                            out.detach().clone()
                        )
                    )
                )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


# --- the gates, written out from the papers and timm's module definitions, in float64 ---------


def d(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().double()


def conv(x: torch.Tensor, layer: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(
        x, d(layer.weight), d(layer.bias), layer.stride, layer.padding, layer.dilation, layer.groups
    )


def norm(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return F.batch_norm(
            x, d(layer.running_mean), d(layer.running_var), d(layer.weight), d(layer.bias),
            False, 0.0, layer.eps,
        )  # fmt: skip
    if isinstance(layer, nn.LayerNorm):  # timm's LayerNorm2d: over the channels
        shape = layer.normalized_shape
        y = F.layer_norm(x.permute(0, 2, 3, 1), shape, d(layer.weight), d(layer.bias), layer.eps)
        return y.permute(0, 3, 1, 2)
    assert isinstance(layer, nn.Identity | nn.Sequential) and not list(layer.parameters())
    return x


def sigmoid_like(z: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    return F.hardsigmoid(z) if "hard" in type(gate).__name__.lower() else torch.sigmoid(z)


def se_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    s = x.mean((2, 3), keepdim=True)
    if hasattr(unit, "fc1"):
        s = conv(F.relu(norm(conv(s, unit.fc1), getattr(unit, "bn", nn.Identity()))), unit.fc2)
    else:  # effective SE: one conv
        s = conv(s, unit.fc)
    gate = sigmoid_like(s, getattr(unit, "gate", getattr(unit, "sigmoid", None)))
    return {"channel": gate[:, None, :, 0, 0]}


def eca_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    k = unit.conv.kernel_size[0]
    y = F.conv1d(x.mean((2, 3))[:, None], d(unit.conv.weight), padding=(k - 1) // 2)
    gate = torch.sigmoid(y[:, 0])  # (B, C)
    return {"channel": gate[:, None]}


def cbam_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    def mlp(v: torch.Tensor) -> torch.Tensor:
        return conv(F.relu(conv(v, unit.channel.fc1)), unit.channel.fc2)

    mean, peak = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    light = type(unit).__name__ == "LightCbamModule"
    channel = torch.sigmoid(mlp(0.5 * mean + 0.5 * peak) if light else mlp(mean) + mlp(peak))
    gated = x * channel
    across = (gated.mean(1, keepdim=True), gated.amax(1, keepdim=True))
    pooled = 0.5 * across[0] + 0.5 * across[1] if light else torch.cat(across, 1)
    spatial = torch.sigmoid(norm(conv(pooled, unit.spatial.conv.conv), unit.spatial.conv.bn))
    return {"channel": channel[:, None, :, 0, 0], "spatial": spatial[:, None]}  # (B, 1, 1, h, w)


def gc_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    b, c, h, w = x.shape
    logits = conv(x, unit.conv_attn).reshape(b, h * w)
    weights = torch.exp(logits - logits.amax(1, keepdim=True))
    weights = weights / weights.sum(1, keepdim=True)  # softmax over the positions
    context = torch.einsum("bcp,bp->bc", x.reshape(b, c, h * w), weights)[:, :, None, None]

    def mlp(part: nn.Module, v: torch.Tensor) -> torch.Tensor:
        return conv(F.relu(norm(conv(v, part.fc1), part.norm)), part.fc2)

    out = {"spatial": weights.reshape(b, 1, 1, h, w)}
    if unit.mlp_scale is not None:
        out["channel"] = torch.sigmoid(mlp(unit.mlp_scale, context))[:, None, :, 0, 0]
    return out


def splat_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    r, groups = unit.radix, unit.fc1.groups
    splits = F.relu(norm(conv(x, unit.conv), unit.bn0))
    b, rc, h, w = splits.shape
    splits = splits.reshape(b, r, rc // r, h, w)
    pooled = splits.sum(1).mean((2, 3), keepdim=True)
    logits = conv(F.relu(norm(conv(pooled, unit.fc1), unit.bn1)), unit.fc2)[:, :, 0, 0]
    # fc2's outputs, group by group (cardinality), each group's radix splits in turn
    logits = logits.reshape(b, groups, r, rc // r // groups)
    weights = torch.softmax(logits, dim=2) if r > 1 else torch.sigmoid(logits)
    weights = weights.permute(0, 2, 1, 3).reshape(b, r, rc // r)  # (B, split, channel)
    return {"channel": weights}


def sk_reference(unit: nn.Module, x: torch.Tensor, seen: Seen, name: str) -> dict:
    paths = torch.stack([d(p) for p in seen.paths[name]], 1)  # (B, P, C, h, w)
    b, p, c = paths.shape[:3]
    pooled = paths.sum(1).mean((2, 3), keepdim=True)
    hidden = F.relu(norm(conv(pooled, unit.attn.fc_reduce), unit.attn.bn))
    weights = torch.softmax(conv(hidden, unit.attn.fc_select).reshape(b, p, c), dim=1)
    return {"channel": weights}


# --- the recorded gates (float32), applied as each unit applies them -----------------------


def channel_times_input(unit: nn.Module, x: torch.Tensor, gates, seen: Seen, name: str):
    return x * gates.channel[:, 0, :, None, None]


def cbam_applied(unit: nn.Module, x: torch.Tensor, gates, seen: Seen, name: str):
    return x * gates.channel[:, 0, :, None, None] * gates.spatial[:, 0]  # one map, all channels


def gc_applied(unit: nn.Module, x: torch.Tensor, gates, seen: Seen, name: str):
    b, c = x.shape[:2]
    weights = gates.spatial.reshape(b, -1, 1)  # (B, h·w, 1): the softmax over the positions
    context = (x.reshape(b, c, -1) @ weights).reshape(b, c, 1, 1)
    out = x if gates.channel is None else x * gates.channel[:, 0, :, None, None]
    return out if unit.mlp_add is None else out + unit.mlp_add(context)


def splat_applied(unit: nn.Module, x: torch.Tensor, gates, seen: Seen, name: str):
    splits = seen.splits[name]
    b, rc, h, w = splits.shape
    r = gates.groups
    return (splits.reshape(b, r, rc // r, h, w) * gates.channel[..., None, None]).sum(1)


def sk_applied(unit: nn.Module, x: torch.Tensor, gates, seen: Seen, name: str):
    paths = torch.stack(seen.paths[name], 1)  # (B, P, C, h, w)
    return (paths * gates.channel[..., None, None]).sum(1)


APPLIED = {
    "SE": channel_times_input,
    "ECA": channel_times_input,
    "CBAM": cbam_applied,
    "GC": gc_applied,
    "SplAt": splat_applied,
    "SK": sk_applied,
}

REFERENCES = {
    "SE": se_reference,
    "ECA": eca_reference,
    "CBAM": cbam_reference,
    "GC": gc_reference,
    "SplAt": splat_reference,
    "SK": sk_reference,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_gates_equal_the_units_own_computation(family):
    name, kwargs, count, kind = FAMILIES[family]
    model = randomised(name, kwargs)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(x)
        seen = Seen(model)
        try:
            with record_gates(model) as gates:
                logits = model(x)
        finally:
            seen.remove()
    torch.testing.assert_close(logits, plain, rtol=0.0, atol=1e-5)  # reading changes nothing
    assert list(gates) == [n for n, _, _ in units_of(model)] and len(gates) == count
    assert unread_attention(model) == {}
    for unit_name, got in gates.items():
        unit = model.get_submodule(next(p for n, _, p in _paths(model) if n == unit_name))
        assert got.layout.kind == kind
        want = REFERENCES[kind](unit, d(seen.inputs[unit_name]), seen, unit_name)
        for part in ("channel", "spatial"):
            recorded = getattr(got, part)
            assert (recorded is None) == (want.get(part) is None), f"{unit_name} {part}"
            if recorded is None:
                continue
            assert recorded.dtype == torch.float32 and recorded.shape[0] == 2
            torch.testing.assert_close(recorded.double(), want[part], **TOL)
            # not one constant: the values spread over a hundred times the tolerance (a softmax
            # over the positions compared with the uniform 1 / (h·w))
            spread = recorded.max() - recorded.min()
            if part == "spatial" and got.layout.spatial_function == "softmax":
                spread = spread * recorded[0, 0, 0].numel()
            assert spread > 100 * TOL["atol"], f"{unit_name}: {part} gate nearly constant"
        # the recorded gates, applied as the unit applies them, give the unit's output
        applied = APPLIED[kind](unit, seen.inputs[unit_name], got, seen, unit_name)
        torch.testing.assert_close(applied, seen.outputs[unit_name], rtol=1e-5, atol=1e-5)
        _check_layout(got)
    # the layouts need no forward: a model built on the meta device gives the same (timm
    # 1.0.3, the lowest allowed, cannot build gcresnet50t there: then a fresh, unrun copy)
    try:
        with torch.device("meta"):
            unrun = timm.create_model(name, pretrained=False, **kwargs)
    except NotImplementedError:
        unrun = timm.create_model(name, pretrained=False, **kwargs)
    layouts = {n: probe.layout(n, unit) for n, unit, probe in units_of(unrun)}
    assert layouts == {n: g.layout for n, g in gates.items()}
    assert [lay.details for lay in layouts.values()] == [g.layout.details for g in gates.values()]


def _paths(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    paths = {id(m): p for p, m in model.named_modules()}
    return [(n, u, paths[id(u)]) for n, u, _ in units_of(model)]


def _check_layout(got) -> None:
    """The layout says the shapes the recorder gave and how the values were made."""
    layout = got.layout
    assert got.groups == layout.groups
    if got.channel is not None:
        assert got.channels == layout.channels
        if layout.channel_function == "softmax":  # across the rows, per channel
            torch.testing.assert_close(got.channel.sum(1), torch.ones(2, layout.channels))
        else:
            assert got.channel.min() >= 0 and got.channel.max() <= 1
    else:
        assert layout.channels == 0
    if got.spatial is not None:
        assert layout.spatial and got.spatial.shape[2] == layout.spatial_maps
        if layout.spatial_function == "softmax":  # across the positions, per map
            sums = got.spatial.flatten(3).sum(3)
            torch.testing.assert_close(sums, torch.ones_like(sums))
    else:
        assert not layout.spatial
    assert layout.gated and layout.stage in (1, 2, 3, 4)
