"""Gate capture: every unit's gates, read before the shuffle, copied, hooks always removed."""

from __future__ import annotations

import gc
import math
import threading
import warnings

import numpy as np
import pytest
import torch
from conftest import trained_like_sa

from sa_viz.models import SA_UNIT_NAMES, resnet50
from sa_viz.probes import UnitGates, gate_stats, is_constant, record_gates

C_PER_STAGE = {"layer1": (2, 56), "layer2": (4, 28), "layer3": (8, 14), "layer4": (16, 7)}


@pytest.fixture(scope="module")
def model():
    return trained_like_sa()


def hook_count(module: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in module.modules()
    )


def test_every_unit_has_both_gates_with_the_right_shapes(model):
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert tuple(gates) == SA_UNIT_NAMES
    for name, unit_gates in gates.items():
        c, side = C_PER_STAGE[name.split(".")[0]]
        assert unit_gates.channel.shape == (2, 64, c)
        assert unit_gates.spatial.shape == (2, 64, c, side, side)
        for values in (unit_gates.channel, unit_gates.spatial):
            # σ in float32 reaches 0 or 1 exactly for large |logits|: a closed interval
            assert values.min() >= 0 and values.max() <= 1 and values.std() > 0
        assert not is_constant(unit_gates)


def test_gates_are_read_per_group_before_the_shuffle(model):
    """The recorded gates equal the formulas applied to each group of the unit's input."""
    unit = model.get_submodule("layer2.1.sa")
    inputs = {}
    handle = unit.register_forward_pre_hook(lambda _m, args: inputs.update(x=args[0].clone()))
    try:
        with torch.no_grad(), record_gates(model) as gates:
            model(torch.randn(1, 3, 224, 224))
    finally:
        handle.remove()
    x = inputs["x"]  # (1, 512, 28, 28), 64 groups of 8 channels: 4 for each gate
    grouped = x.reshape(64, 8, 28, 28)
    first, second = grouped[:, :4], grouped[:, 4:]
    w = {n: p.detach().flatten() for n, p in unit.named_parameters()}
    channel = torch.sigmoid(w["cweight"] * first.mean((2, 3)) + w["cbias"])
    mean = second.mean((2, 3), keepdim=True)
    std = torch.sqrt(second.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    normed = (second - mean) / std * w["gn.weight"][:, None, None] + w["gn.bias"][:, None, None]
    spatial = torch.sigmoid(w["sweight"][:, None, None] * normed + w["sbias"][:, None, None])
    torch.testing.assert_close(gates["layer2.1"].channel[0], channel, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gates["layer2.1"].spatial[0], spatial, rtol=1e-5, atol=1e-6)


def test_gates_are_copies_not_views(model):
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(1, 3, 96, 96))
        first = {k: (v.channel, v.spatial) for k, v in gates.items()}  # what a caller holds
        before = {k: (c.clone(), s.clone()) for k, (c, s) in first.items()}
        model(torch.randn(1, 3, 96, 96) * 3)  # a second pass refills the mapping...
        second = dict(gates)
    for name, (channel, spatial) in first.items():  # ...with new tensors, not overwritten ones
        assert not torch.equal(second[name].spatial, spatial)
        assert torch.equal(channel, before[name][0]) and torch.equal(spatial, before[name][1])
    for unit in [*second.values(), *(g for pair in first.values() for g in pair)]:
        tensors = (unit.spatial, unit.channel) if hasattr(unit, "spatial") else (unit,)
        assert all(t._base is None for t in tensors)  # own storage, not a view of an activation


def test_hooks_are_removed_after_the_block_and_on_error(model):
    baseline = hook_count(model)
    with torch.no_grad(), record_gates(model):
        assert hook_count(model) == baseline + 32
        model(torch.randn(1, 3, 64, 64))
    assert hook_count(model) == baseline
    with pytest.raises(RuntimeError), torch.no_grad(), record_gates(model):
        model(torch.randn(1, 5, 64, 64))  # wrong channel count: the forward raises
    assert hook_count(model) == baseline


def test_no_growth_over_100_calls(model):
    x = torch.randn(1, 3, 64, 64)

    def live_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance() pokes deprecated torch module attributes
            warnings.simplefilter("ignore")
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    def one_call():
        with torch.no_grad(), record_gates(model) as gates:
            model(x)
        return len(gates)

    one_call()
    tensors, hooks = live_tensors(), hook_count(model)
    assert all(one_call() == 16 for _ in range(100))
    assert hook_count(model) == hooks
    assert live_tensors() <= tensors


def test_a_model_without_sa_units_yields_nothing():
    model = resnet50().eval()
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(1, 3, 64, 64))
    assert gates == {}


@pytest.mark.parametrize("shared", [False, True], ids=["two models", "one shared model"])
def test_recorders_in_two_threads_do_not_interfere(shared):
    models = [trained_like_sa(seed=1), trained_like_sa(seed=1 if shared else 2)]
    if shared:
        models[1] = models[0]
    inputs = [torch.randn(1, 3, 96, 96), torch.randn(1, 3, 128, 128)]
    expected = []
    for m, x in zip(models, inputs, strict=True):
        with torch.no_grad(), record_gates(m) as gates:
            m(x)
        expected.append(dict(gates))
    results: list[dict | None] = [None, None]
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            with torch.no_grad(), record_gates(models[i]) as gates:
                models[i](inputs[i])
        results[i] = dict(gates)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        assert got is not None and set(got) == set(want)
        for name in want:
            torch.testing.assert_close(got[name].spatial, want[name].spatial)


def test_stats_summarise_groups(model):
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(1, 3, 64, 64))
    unit: UnitGates = gates["layer3.0"]
    stats = gate_stats(unit)
    assert stats.channel_mean.shape == (64,) and stats.spatial_std.shape == (64,)
    torch.testing.assert_close(
        torch.from_numpy(stats.channel_mean), unit.channel[0].double().mean(1)
    )
    # the spatial figures: each group's map, its channels averaged, over the positions
    maps = unit.spatial[0].double().mean(1).flatten(1)  # (G, h·w)
    torch.testing.assert_close(
        torch.from_numpy(stats.spatial_mean), maps.mean(1), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(
        torch.from_numpy(stats.spatial_std), maps.std(1, correction=0), rtol=1e-5, atol=0
    )
    p = maps / maps.sum(1, keepdim=True)
    entropy = -(p * p.log()).sum(1) / math.log(maps.shape[1])
    torch.testing.assert_close(torch.from_numpy(stats.spatial_entropy), entropy, rtol=1e-5, atol=0)
    peak = maps.argmax(1)
    h, w = unit.spatial.shape[-2:]
    np.testing.assert_allclose(stats.peak_y, ((peak // w).numpy() + 0.5) / h)
    np.testing.assert_allclose(stats.peak_x, ((peak % w).numpy() + 0.5) / w)
    summary = stats.summary()
    assert 0 < summary["channel_mean"] < 1 and summary["spatial_group_spread"] > 0


def test_spatial_mean_averages_each_groups_channels(model):
    with torch.no_grad(), record_gates(model) as gates:
        model(torch.randn(1, 3, 64, 64))
    for unit in gates.values():
        mean = unit.spatial_mean()
        assert mean.shape == (1, unit.groups, *unit.spatial.shape[-2:])
        torch.testing.assert_close(mean, unit.spatial.double().mean(dim=2).float())
