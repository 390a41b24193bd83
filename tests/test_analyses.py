"""The analyses (issue 17, point 6): deletion/insertion against a hand computation on a tiny
model, ROAD against pytorch-grad-cam's own call, the pointing game on a drawn case, and group
knockout against the network with that unit's gates removed by hand, leaving nothing behind."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from sa_viz.analyses import ImageInput, analyses, run_analyses
from sa_viz.analyses.faithfulness import deletion_insertion
from sa_viz.analyses.knockout import WHOLE, from_block, group_knockout, knocked_out
from sa_viz.analyses.pointing import localisation
from sa_viz.analyses.stats import mean_interval, paired


def test_every_analysis_is_found():
    assert set(analyses()) == {
        "deletion_insertion", "gate_randomisation", "knockout", "knockout_units", "localisation",
        "mprt", "random_logit", "road",
    }  # fmt: skip
    for analysis in analyses().values():
        assert analysis.numbers and analysis.title


def tiny_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 3))
    return model.eval()


def test_deletion_and_insertion_by_hand():
    """2 × 2 pixels, 4 steps, both baselines the mean colour (0): each step deletes (inserts)
    one more pixel, in the CAM's order."""
    model = tiny_model()
    x = torch.randn(1, 3, 2, 2)
    cam = np.array([[0.1, 0.9], [0.5, 0.3]])  # order: (0,1), (1,0), (1,1), (0,0)
    target = 2
    result = deletion_insertion(
        ImageInput(model, x, cam, target), steps=4, insertion_baseline="mean"
    )
    order = [(0, 1), (1, 0), (1, 1), (0, 0)]
    deletion, insertion = [], []
    for k in range(5):
        deleted, inserted = x.clone(), torch.zeros_like(x)
        for y, xx in order[:k]:
            deleted[0, :, y, xx] = 0
            inserted[0, :, y, xx] = x[0, :, y, xx]
        with torch.no_grad():
            deletion.append(float(torch.softmax(model(deleted).double(), 1)[0, target]))
            insertion.append(float(torch.softmax(model(inserted).double(), 1)[0, target]))
    np.testing.assert_allclose(result.details["deletion"], deletion, rtol=1e-6)
    np.testing.assert_allclose(result.details["insertion"], insertion, rtol=1e-6)
    # The trapezoid rule over fractions 0, 1/4, …, 1, written out.
    area = sum((deletion[k] + deletion[k + 1]) / 2 * 0.25 for k in range(4))
    assert result.numbers["deletion_auc"] == pytest.approx(area, rel=1e-6)
    area = sum((insertion[k] + insertion[k + 1]) / 2 * 0.25 for k in range(4))
    assert result.numbers["insertion_auc"] == pytest.approx(area, rel=1e-6)


@pytest.fixture(scope="module")
def sa_model(loaded_models):
    return loaded_models["sa_resnet50"].module


@pytest.fixture(scope="module")
def photo():
    from conftest import ASSETS

    from sa_viz.data.preprocess import prepare_image

    return prepare_image(ASSETS / "chelsea.jpg", crop=True).tensor  # (1, 3, 224, 224)


def test_road_is_pytorch_grad_cams(sa_model, photo):
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    cam = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    ours = run_analyses(["road"], ImageInput(sa_model, photo, cam, 281))["road"].numbers
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's draws: untouched
    again = run_analyses(["road"], ImageInput(sa_model, photo, cam, 281))["road"].numbers
    assert again == ours  # the imputer's noise is seeded: the same numbers each time
    targets = [ClassifierOutputSoftmaxTarget(281)]
    torch.manual_seed(0)  # ROAD_SEED: the same draws as ours
    morf = ROADMostRelevantFirst(percentile=80)(photo, cam[None], targets, sa_model)
    lerf = ROADLeastRelevantFirst(percentile=20)(photo, cam[None], targets, sa_model)
    assert ours["road_morf"] == pytest.approx(float(morf[0]), abs=1e-6)
    assert ours["road_lerf"] == pytest.approx(float(lerf[0]), abs=1e-6)
    assert ours["road_gap"] == pytest.approx(float(lerf[0] - morf[0]), abs=1e-6)


def test_the_pointing_game_on_a_drawn_case():
    cam = np.zeros((10, 10))
    cam[2, 3] = 1.0  # the peak, inside the box
    cam[8, 8] = 0.6  # a second blob, outside
    image = ImageInput(None, None, cam, 0, boxes=((2, 1, 5, 4),))  # x 2–5, y 1–4
    numbers = localisation(image).numbers
    assert numbers["pointing_hit"] == 1.0
    assert numbers["energy_inside"] == pytest.approx(1.0 / 1.6)
    inside = 3 * 3  # pixel centres 2.5, 3.5, 4.5 in x and 1.5, 2.5, 3.5 in y
    assert numbers["box_iou"] == pytest.approx(1 / (inside + 1))  # two pixels above 0.5
    assert localisation(ImageInput(None, None, cam, 0)) is None  # no box: does not apply


class Ones(nn.Module):
    """A gate replaced by hand: 1 where `rows` says (rows of the (B·G, …) gate tensor)."""

    def __init__(self, gate: nn.Module, groups: int, chosen: set[int] | None) -> None:
        super().__init__()
        self.gate, self.groups, self.chosen = gate, groups, chosen

    def forward(self, t):
        out = self.gate(t)
        for row in range(out.shape[0]):
            if self.chosen is None or row % self.groups in self.chosen:
                out[row] = 1.0
        return out


def by_hand(model, unit, chosen, x):
    edited = copy.deepcopy(model)
    sa = edited.get_submodule(unit).sa
    sa.channel_gate = Ones(sa.channel_gate, sa.groups, chosen)
    sa.spatial_gate = Ones(sa.spatial_gate, sa.groups, chosen)
    with torch.no_grad():
        return edited(x)


def test_knockout_equals_the_network_with_those_gates_removed(sa_model):
    x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    found = group_knockout(sa_model, x, target=5, unit="layer3.0")
    with torch.no_grad():
        base = sa_model(x).double()
    whole = by_hand(sa_model, "layer3.0", None, x).double()
    assert found["unit_dlogit"] == pytest.approx(float(whole[0, 5] - base[0, 5]), abs=1e-4)
    p = torch.softmax(whole, 1)[0, 5] - torch.softmax(base, 1)[0, 5]
    assert found["unit_dp"] == pytest.approx(float(p), abs=1e-6)
    for group in (0, 17, 63):
        one = by_hand(sa_model, "layer3.0", {group}, x).double()
        expected = float(one[0, 5] - base[0, 5])
        assert found["group_dlogit"][group] == pytest.approx(expected, abs=1e-4)
    assert len(found["group_dp"]) == 64 and sorted(found["ranking"]) == list(range(64))
    assert found["group_dp"][found["ranking"][0]] == min(found["group_dp"])


def test_the_remainder_of_the_network_is_the_network(all_models):
    from sa_viz.analyses.knockout import block_input

    x = torch.randn(1, 3, 96, 96)
    for name in ("sa_resnet50", "se_resnet50"):  # torchvision's head and timm's forward_head
        model = all_models[name].module
        logits, h = block_input(model, "layer2.1", x)
        with torch.no_grad():
            np.testing.assert_allclose(from_block(model, "layer2.1", h), logits, atol=1e-4)


def test_se_knockout_is_its_one_group_passed_through(all_models):
    """SE has one group: knocking it out (gate (B, C, 1, 1) → 1) is the unit removed."""
    model = all_models["se_resnet50"].module
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    found = group_knockout(model, x, target=7, unit="layer3.0")
    assert len(found["group_dp"]) == 1 and found["group_dp"][0] == found["unit_dp"]
    edited = copy.deepcopy(model)
    se = edited.get_submodule("layer3.0").se_module
    se.sigmoid = Ones(se.sigmoid, 1, None)
    with torch.no_grad():
        base, whole = model(x).double(), edited(x).double()
    assert found["unit_dlogit"] == pytest.approx(float(whole[0, 7] - base[0, 7]), abs=1e-4)


def hooks_of(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_knockout_leaves_no_hook_and_no_changed_parameter(sa_model):
    before = {k: v.clone() for k, v in sa_model.state_dict().items()}
    hooks = hooks_of(sa_model)
    x = torch.randn(1, 3, 64, 64)
    values = ["one", "zero", "mean"]
    for i in range(100):
        try:
            with knocked_out(sa_model, "layer4.2", [i % 8 if i % 10 else WHOLE],
                             ("both", "channel", "spatial")[i % 3], values[i % 3]):  # fmt: skip
                with torch.no_grad():
                    sa_model(x)
                if i % 7 == 0:
                    raise RuntimeError("a failure inside the block")
        except RuntimeError:
            pass
    with pytest.raises(ValueError, match="groups 0–63"), knocked_out(sa_model, "layer4.2", [99]):
        pass
    assert hooks_of(sa_model) == hooks
    after = sa_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_knockout_does_not_change_what_the_recorder_sees_outside(sa_model):
    from sa_viz.probes import record_gates

    x = torch.randn(1, 3, 64, 64)
    with record_gates(sa_model) as first, torch.no_grad():
        sa_model(x)
    with knocked_out(sa_model, "layer1.0", [WHOLE], value="zero"), torch.no_grad():
        sa_model(x)
    with record_gates(sa_model) as second, torch.no_grad():
        sa_model(x)
    for unit in first:
        assert torch.equal(first[unit].channel, second[unit].channel)


def test_bootstrap_intervals_and_the_paired_test():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.1, 200)
    summary = mean_interval(a)
    assert summary["ci95"][0] < summary["mean"] < summary["ci95"][1]
    assert summary["ci95"][1] - summary["ci95"][0] < 0.04  # ~4 standard errors of 0.007
    better = paired(a, a + 0.05 + rng.normal(0, 0.01, 200))
    assert better["p"] < 0.01 and better["ci95"][0] > 0.04
    same = paired(a, a + rng.normal(0, 0.01, 200))
    assert same["p"] > 0.05
    assert mean_interval([])["mean"] is None


@pytest.mark.slow
def test_knockout_at_every_unit_is_each_units_knockout(sa_model, photo):
    """Every SA unit's groups and the whole unit, each the one-unit knockout's numbers; the
    dataset view names per unit and class the groups that hurt most."""
    from sa_viz.analyses.knockout_units import UNITS, harmful_groups_per_unit

    photo = photo[..., 64:160, 64:160]  # 96 pixels: the same arithmetic, 5 × cheaper
    cam = np.ones((96, 96), np.float32)
    found = run_analyses(["knockout_units"], ImageInput(sa_model, photo, cam, 281))
    numbers = found["knockout_units"].numbers
    assert len(UNITS) == 16 and len(numbers) == 16 * (64 + 1)
    one = group_knockout(sa_model, photo, 281, "layer2.1")
    assert numbers["knockout_unit_dp_layer2.1"] == pytest.approx(one["unit_dp"], abs=1e-9)
    dp = [numbers[f"knockout_dp_layer2.1_g{g:02d}"] for g in range(64)]
    np.testing.assert_allclose(dp, one["group_dp"], atol=1e-9)
    view = harmful_groups_per_unit({"a.jpg": numbers, "b.jpg": {}}, {"a.jpg": 281, "b.jpg": 3})
    assert list(view) == UNITS  # in forward order
    assert view["layer2.1"]["per_class"]["281"]["groups"] == one["ranking"][:3]
    assert "3" not in view["layer2.1"]["per_class"]  # an image without the numbers
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 96 * 96, 3))
    assert run_analyses(["knockout_units"], ImageInput(plain, photo, cam, 0)) == {}  # no gates
