"""The sanity checks (issue 29, point 3): the similarity measures against SciPy and scikit-image,
the MPRT and the random logit test against Quantus's `MPRT` and `RandomLogit` on the same inputs
and against a hand computation on a tiny network, planted behaviour (a model that randomising
cannot change, gates that follow only their own parameters), and the served model untouched:
its parameters bitwise and its hooks as they were."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models.resnet import ResNet

from sa_viz.analyses import ImageInput, analyses
from sa_viz.analyses import randomisation as randomisation_module
from sa_viz.analyses.gate_randomisation import gate_randomisation
from sa_viz.analyses.mprt import curve, mprt, parameter_randomisation, turned
from sa_viz.analyses.random_logit import random_class, random_logit
from sa_viz.analyses.randomisation import block_steps, module_seed, module_steps, top_down
from sa_viz.analyses.similarity import similarities, spearman, ssim, topk_intersection
from sa_viz.cam import compute_cam
from sa_viz.hooks import Stopped, reporting, time_limit
from sa_viz.models.resnet import SABottleneck
from sa_viz.outputs.document import plain

SANITY = ("mprt", "random_logit", "gate_randomisation")


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class Tiny(nn.Module):
    """A stem, one stage of two residual blocks (`layer1`, the CAM's layer), a linear head."""

    def __init__(self, classes: int = 10, channels: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(Block(channels), Block(channels))
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def tiny(seed: int = 0, classes: int = 10) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Tiny(classes)
        for m in model.modules():  # trained-like statistics, so that a reset changes them
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.2)
    return model.eval()


def image(seed: int = 1, size: int = 20) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def maps(model: nn.Module, x: torch.Tensor, classes, layer: str = "layer1") -> np.ndarray:
    return compute_cam(model, x, classes, layer, "gradcam").maps


def small_sa(seed: int = 0, trained_gates: bool = True) -> nn.Module:
    """ResNet with one SA bottleneck per stage (16 SA units → 4), gate parameters drawn as
    training would leave them (or the paper's init: every gate σ(1), whatever the input)."""
    from conftest import randomize_gates

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNet(SABottleneck, [1, 1, 1, 1], num_classes=10).eval()
    return randomize_gates(model, seed) if trained_gates else model


# --- the measures -------------------------------------------------------------------------------


def test_measures_are_scipys_and_scikit_images():
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = np.round(rng.random((24, 30)) * 4) / 4  # many ties
    b = np.clip(a + rng.normal(0, 0.3, a.shape), 0, 1)
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    expected = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    found = similarities(a, b)
    assert found["spearman_abs"] == found["spearman"]  # non-negative maps
    assert similarities(a, a) == {"spearman": 1, "spearman_abs": 1, "ssim": 1, "topk": 1}


def test_topk_overlap_by_hand():
    a = np.arange(100.0).reshape(10, 10)  # top 20 %: 80…99
    b = a.copy()
    b.ravel()[[99, 98]] = -1  # two of a's top pixels leave b's top
    assert topk_intersection(a, b) == pytest.approx(18 / 20)
    assert topk_intersection(a, -a) == 0
    # Ties have no order: a map that is 0 outside its top 5 % agrees with itself doubled on
    # those 5 pixels, and on the 15 others only by chance (not in reading order).
    c = np.zeros((10, 10))
    c.ravel()[:5] = 1
    assert 5 / 20 <= topk_intersection(c, 2 * c) < 0.6


# --- the MPRT -----------------------------------------------------------------------------------


def test_block_steps_of_a_resnet():
    steps = block_steps(small_sa())
    assert [s.name for s in steps] == [
        "conv1+bn1", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "fc",
    ]  # fmt: skip
    from sa_viz.models import resnet50

    assert len(block_steps(resnet50())) == 18  # the stem, 16 bottlenecks, the head


def quantus_explain(model, inputs, targets, **_):
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
    return maps(model, x, [int(t) for t in np.atleast_1d(targets)])[:, None]


@pytest.mark.parametrize("order", ["top_down", "independent"])
def test_mprt_is_quantus(monkeypatch, order):
    """Quantus randomises one module at a time (each with `reset_parameters`, from the head
    down), reseeding torch with seed + 1 before each: with steps of one module and that seeding,
    our similarities after each step are Quantus's (its own Spearman)."""
    quantus = pytest.importorskip("quantus")  # see requirements-test.txt
    model, x = tiny(), image()
    target = 3
    monkeypatch.setattr(randomisation_module, "module_seed", lambda seed, _name: seed)
    ours = parameter_randomisation(model, x, target, "layer1", steps=module_steps(model), seed=43)
    metric = quantus.MPRT(
        layer_order=order, seed=42, abs=False, normalise=False, disable_warnings=True
    )
    theirs = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=np.array([target]),
        a_batch=maps(model, x, target)[:, None],
        explain_func=quantus_explain,
        device="cpu",
    )
    theirs.pop("original")
    if order == "top_down":
        assert list(theirs) == ours["steps"]  # the same cascade, step by step
    kind = "cascade" if order == "top_down" else "independent"
    found = dict(zip(ours["steps"], ours[kind]["spearman"], strict=True))
    assert sorted(found) == sorted(theirs)
    expected = [v[0] for v in theirs.values()]
    np.testing.assert_allclose([found[s] for s in theirs], expected, atol=1e-6)


def test_mprt_by_hand():
    """Block steps, each module reseeded by its own path, pytorch-grad-cam's Grad-CAM, SciPy's
    Spearman and scikit-image's SSIM: the cascade's last step and one independent step."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    model, x, target, seed = tiny(), image(), 4, 2
    found = parameter_randomisation(model, x, target, "layer1", seed=seed)
    assert found["steps"] == ["fc", "layer1.1", "layer1.0", "conv1+bn1"]

    def randomised(paths):
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for path in paths:
                for name, module in twin.get_submodule(path).named_modules(prefix=path):
                    if hasattr(module, "reset_parameters"):
                        torch.manual_seed(seed + zlib.crc32(name.encode()))
                        module.reset_parameters()
        return twin

    def grad_cam(net):
        with GradCAM(net, [net.layer1[-1]]) as cam:
            return cam(x, [ClassifierOutputTarget(target)])[0]

    own = grad_cam(model)
    for net, got in (
        (randomised(["fc", "layer1.1", "layer1.0", "conv1", "bn1"]), -1),  # the cascade's end
        (randomised(["layer1.1"]), 1),  # the block alone
    ):
        kind = "cascade" if got == -1 else "independent"
        theirs = grad_cam(net)
        rho = spearmanr(own.ravel(), theirs.ravel())[0]
        assert found[kind]["spearman"][got] == pytest.approx(rho, abs=1e-5)
        similar = structural_similarity(
            own, theirs, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=max(own.max(), theirs.max()) - min(own.min(), theirs.min()),
        )  # fmt: skip
        assert found[kind]["ssim"][got] == pytest.approx(similar, abs=1e-4)
    # The baseline: the model's own map of the image turned 180°, not turned back.
    with GradCAM(model, [model.layer1[-1]]) as cam:
        other = cam(turned(x), [ClassifierOutputTarget(target)])[0]
    rho = spearmanr(own.ravel(), other.ravel())[0]
    assert found["baseline"]["spearman"] == pytest.approx(rho, abs=1e-5)


class Frozen(nn.Conv2d):
    """A convolution that randomising cannot change."""

    def reset_parameters(self) -> None:
        pass


class FrozenNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = Frozen(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(Frozen(4, 4, 3, padding=1), Frozen(4, 4, 3, padding=1))
        self.fc = nn.Sequential()  # a head without parameters: the steps are the three convs
        with torch.no_grad():  # `reset_parameters` left the weights as allocated
            for m in self.modules():
                if isinstance(m, Frozen):
                    m.weight.normal_(0, 0.5)
                    m.bias.normal_(0, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(torch.relu(self.conv1(x)))
        return x.mean((2, 3))


def test_a_model_randomising_cannot_change_is_similar_throughout():
    torch.manual_seed(0)
    model = FrozenNet().eval()
    result = mprt(ImageInput(model, image(), None, 2, layer="layer1"))
    assert result.details["steps"] == ["layer1.1", "layer1.0", "conv1"]
    for kind in ("cascade", "independent"):  # (the model's own map came in a batch of two)
        for values in result.details[kind].values():
            assert values == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    assert result.numbers["mprt_spearman"] == pytest.approx(1.0, abs=1e-6)
    # …while a learned model's map moves away
    learned = mprt(ImageInput(tiny(), image(), None, 2, layer="layer1")).numbers
    assert learned["mprt_spearman"] < 0.9


def test_mprt_numbers_and_curve():
    result = mprt(ImageInput(tiny(), image(), None, 5, layer="layer1"))
    numbers = result.numbers
    analysis = analyses()["mprt"]
    assert set(analysis.numbers) <= set(numbers)
    for name in numbers:  # every number is the MPRT's, and no other analysis's
        assert [n for n, a in analyses().items() if a.owns(name)] == ["mprt"], name
    assert numbers["mprt_cascade_layer1.1_ssim"] == result.details["cascade"]["ssim"][1]
    json.dumps(plain(dataclasses.asdict(result)), allow_nan=False)  # a document's JSON
    drawn = curve(numbers, "ssim")
    assert drawn["steps"] == result.details["steps"]
    assert drawn["cascade"]["ssim"] == result.details["cascade"]["ssim"]


def test_mprt_figure_draws_every_model():
    from sa_viz.render import figure_array, mprt_figure

    a = mprt(ImageInput(tiny(0), image(), None, 1, layer="layer1")).details
    b = curve(mprt(ImageInput(tiny(1), image(), None, 1, layer="layer1")).numbers)
    titles = ["model A", "model B (study means)"]
    fig = mprt_figure(dict(zip(titles, (a, b), strict=True)))
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == titles
    assert len(ax.lines) == 2 + 2 + 1  # the curves, their baselines, the zero line
    assert [t.get_text() for t in ax.get_xticklabels()] == ["trained", *a["steps"]]
    assert figure_array(fig).shape[2] == 3


# --- the random logit test ----------------------------------------------------------------------


def test_random_logit_is_quantus():
    quantus = pytest.importorskip("quantus")  # see requirements-test.txt
    from quantus.functions.similarity_func import correlation_spearman

    model, x, target = tiny(), image(), 6
    ours = random_logit(ImageInput(model, x, None, target, layer="layer1"))
    metric = quantus.RandomLogit(
        num_classes=10, seed=42, similarity_func=correlation_spearman, abs=False,
        normalise=False, disable_warnings=True,
    )  # fmt: skip
    theirs = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=np.array([target]),
        a_batch=maps(model, x, target)[:, None],
        explain_func=quantus_explain,
        device="cpu",
    )
    assert ours.numbers["random_logit_spearman"] == pytest.approx(theirs[0], abs=1e-6)
    other = ours.details["other"]
    assert other != target and other == random_class(target, 10)
    by_hand = spearman(maps(model, x, target)[0], maps(model, x, other)[0])
    assert ours.numbers["random_logit_spearman"] == pytest.approx(by_hand, abs=1e-12)


def test_a_map_blind_to_its_class_fails_the_random_logit_test():
    model = tiny()
    with torch.no_grad():
        model.fc.weight[:] = model.fc.weight[0]  # every class scores the same features
    found = random_logit(ImageInput(model, image(), None, 3, layer="layer1")).numbers
    assert found["random_logit_spearman"] == pytest.approx(1.0, abs=1e-6)
    assert found["random_logit_ssim"] == pytest.approx(1.0, abs=1e-6)


# --- gates under randomisation ------------------------------------------------------------------


def test_gates_under_randomisation():
    model, x = small_sa(), image(size=64)  # layer4's gates on 2 × 2 pixels
    result = gate_randomisation(ImageInput(model, x, None, 0))
    d = result.details
    assert d["units"] == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    # Nothing above a unit feeds it: randomising the blocks above leaves its gates as they were.
    assert d["above"] == dict.fromkeys(d["units"], 1.0)
    for unit in d["units"]:  # the gates follow the image: random features below move them
        assert d["below"][unit] < 0.99
    assert result.numbers["gates_random_below"] == pytest.approx(np.mean(list(d["below"].values())))
    assert result.numbers["gates_random_own_layer3.0"] == d["own"]["layer3.0"]
    # Both cascades end at the same fully random network.
    assert [d["top_down"][u][-1] for u in d["units"]] == pytest.approx(
        [d["bottom_up"][u][-1] for u in d["units"]]
    )


def test_gates_of_untrained_units_ignore_the_image():
    """The paper's init makes every gate σ(bias): random features below change nothing."""
    result = gate_randomisation(ImageInput(small_sa(trained_gates=False), image(size=32), None, 0))
    assert set(result.details["below"].values()) == {1.0}


def test_no_gates_no_gate_randomisation():
    assert gate_randomisation(ImageInput(tiny(), image(), None, 0)) is None


# --- the served model ---------------------------------------------------------------------------


def hook_counts(model: nn.Module) -> list[int]:
    return [
        len(getattr(m, name))
        for m in model.modules()
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
    ]


def test_the_served_model_is_untouched():
    model, x = small_sa(), image(size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.requires_grad for p in model.parameters()]
    counts = hook_counts(model)
    calls = []
    # A hook of the served model's own (a gate recorder of another request, say) sees only the
    # passes through the model itself, never its randomised copies'.
    handle = model.fc.register_forward_hook(lambda *_: calls.append(1))
    try:
        with time_limit(model, time.monotonic() + 600):
            for name in SANITY:
                analyses()[name].per_image(ImageInput(model, x, None, 1))
    finally:
        handle.remove()
    assert len(calls) == 1 + 2 + 1  # MPRT's pass of two images, random logit's two, the gates'
    after = model.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert [p.requires_grad for p in model.parameters()] == grads
    assert hook_counts(model) == counts  # nothing left behind
    assert model.training is False


def test_the_copy_keeps_the_time_limit():
    """Stopped during the randomised passes: the copy checks the lane's limit like the model."""
    model, stop = tiny(), threading.Event()
    fractions = []

    def progress(fraction: float) -> None:
        fractions.append(fraction)
        if len(fractions) == 2:  # the first randomised pass is done
            stop.set()

    with time_limit(model, None, stop), reporting(progress), pytest.raises(Stopped):
        mprt(ImageInput(model, image(), None, 0, layer="layer1"))
    assert len(fractions) == 2


def test_progress_reaches_the_end():
    fractions = []
    with reporting(fractions.append):
        mprt(ImageInput(tiny(), image(), None, 0, layer="layer1"))
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(fractions) == 1 + 2 * 4  # the model's pass, then each step twice


def test_randomising_is_seeded_and_leaves_the_global_random_state():
    model = tiny()
    state = torch.random.get_rng_state()
    first = parameter_randomisation(model, image(), 2, "layer1", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = parameter_randomisation(model, image(), 2, "layer1", seed=3)
    other = parameter_randomisation(model, image(), 2, "layer1", seed=4)
    assert first["cascade"] == again["cascade"]
    assert first["cascade"] != other["cascade"]
    assert module_seed(3, "layer1.0.conv") != module_seed(3, "layer1.1.conv")
    assert [s.name for s in top_down(block_steps(model))] == first["steps"]


# --- on the page --------------------------------------------------------------------------------


@pytest.mark.slow  # the session's test weights, two ResNet-50s and their MPRT: ~25 s here
def test_the_page_offers_the_sanity_checks_unticked_and_shows_their_progress(
    loaded_models, tmp_path
):
    import gradio as gr
    from conftest import ASSETS, assert_explanation_document

    from sa_viz.app.engine import Engine
    from sa_viz.app.wiring import build
    from sa_viz.outputs.document import explanation_document

    # A generous time limit: the MPRT of two ResNet-50s takes ~10 s here, more on a busy
    # machine (CI's 2 cores hit the server's 30 s once); the limit is tested elsewhere.
    app = build(Engine(lambda: loaded_models, time_limit=300).start())
    offered = [value for _, value in app.analyses.tab.chosen.choices]
    assert set(SANITY) <= set(offered)
    assert not set(SANITY) & set(app.analyses.tab.chosen.value)  # asked for, never by default
    request = gr.Request(session_hash="sanity")
    app.handlers.explain(str(ASSETS / "chelsea.jpg"), request=request)
    said = []
    answer = app.analyses.chosen(
        ["random_logit"], "", progress=lambda f, desc=None: said.append((f, desc)), request=request
    )
    table = answer[app.analyses.tab.chosen_table]
    table = table["value"] if isinstance(table, dict) else table  # an update: it unfades
    assert list(table["number"]) == list(analyses()["random_logit"].numbers)
    assert set(table["better"]) == {"↓"}
    assert [f for f, _ in said] == [0.0, 0.5]  # each model's start (the test reports none)
    assert said[1][1] == "SA-ResNet-50: random_logit"
    # The document (and the ZIP) carry its numbers and details as JSON
    result = app.handlers.sessions.get("sanity").result()
    found = app.analyses.exports(request, result)["random_logit"]
    document = explanation_document(result, analyses={m: {"random_logit": found[m]} for m in found})
    assert_explanation_document(document)
    assert document["analyses"]["sa_resnet50"]["random_logit"]["details"]["seed"] == 42
    # The MPRT's chart: both models' curves on one picture, beside the table (issue 29)
    answer = app.analyses.chosen(["mprt"], "", progress=lambda *_, **__: None, request=request)
    chart = answer[app.analyses.tab.chosen_charts]
    chart = chart["value"] if isinstance(chart, dict) else chart
    assert Image.open(chart).size[0] >= 600
    # and the ZIP's figures, in the formats asked for
    from sa_viz.outputs.export import write_zip

    kept = app.analyses.exports(request, result)
    assert set(kept) == {"random_logit", "mprt"}
    path = write_zip(result, tmp_path / "page.zip", unit="layer4.0", group=0, analyses=kept,
                     figure_formats=("png", "svg"))  # fmt: skip
    with zipfile.ZipFile(path) as z:
        assert {"figures/analysis_mprt.png", "figures/analysis_mprt.svg"} <= set(z.namelist())
        assert "SA-ResNet-50" in z.read("figures/analysis_mprt.svg").decode()
