"""The public Python API: `import sa_viz` gives the documented names (loaded on first use, so it
imports no torch), the old addresses warn with the new one, and the registries take new
models, probes and analyses."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest
from conftest import REPO

import sa_viz
from sa_viz.analyses import Analysis, Result, analyses
from sa_viz.models import get_model, list_models
from sa_viz.probes.recorder import probes

DOCUMENTED = {
    "explain": "sa_viz.pipeline.explain",
    "Explanation": "sa_viz.pipeline.explain",
    "prepare_image": "sa_viz.data.preprocess",
    "record_gates": "sa_viz.probes.recorder",
    "grad_cam": "sa_viz.cam",
    "compute_cam": "sa_viz.cam",
    "list_models": "sa_viz.models.registry",
    "get_model": "sa_viz.models.registry",
    "load_model": "sa_viz.models.weights",
    "load_checkpoint": "sa_viz.models.weights",
    "run_study": "sa_viz.studies.run",
    "register_model": "sa_viz.models.registry",
    "register_probe": "sa_viz.probes.recorder",
    "register_analysis": "sa_viz.analyses",
    "register_method": "sa_viz.cam.methods",
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_import_sa_viz_gives_each_documented_name(name):
    value = getattr(sa_viz, name)
    assert value.__module__.startswith(DOCUMENTED[name].rsplit(".", 1)[0]), value.__module__
    assert name in sa_viz.__all__ and name in dir(sa_viz)


def test_import_sa_viz_is_light_and_unknown_names_are_refused():
    code = "import sys, sa_viz; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sa_viz.nothing  # noqa: B018


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("sa_viz.weights", "sa_viz.models.weights", "load_checkpoint"),
        ("sa_viz.gates", "sa_viz.probes", "record_gates"),
        ("sa_viz.preprocess", "sa_viz.data.preprocess", "prepare_image"),
        ("sa_viz.models.hooks", "sa_viz.hooks", "time_limit"),
        ("sa_viz.outputs.study", "sa_viz.studies", "run_study"),
    ],
)
def test_old_addresses_work_and_warn_with_the_new_one(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"import from {new}"):
        # on import, or (a module that still has a life of its own) when the name is asked for
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_the_old_explain_module_says_to_import_the_function():
    sys.modules.pop("sa_viz.explain", None)
    with pytest.raises(ImportError, match="from sa_viz import explain"):
        importlib.import_module("sa_viz.explain")
    from sa_viz import explain

    assert callable(explain) and explain.__module__ == "sa_viz.pipeline.explain"


def test_a_registered_model_is_listed_and_a_taken_name_refused():
    from dataclasses import replace

    from sa_viz.models import registry

    entry = replace(get_model("resnet50"), name="resnet50_copy", title="ResNet-50 (copy)")
    try:
        assert sa_viz.register_model(entry) is entry
        assert "resnet50_copy" in list_models() and get_model("resnet50_copy") is entry
        with pytest.raises(ValueError, match="registered already"):
            sa_viz.register_model(replace(entry, title="another"))
    finally:
        registry._BY_NAME.pop("resnet50_copy", None)


def test_a_registered_cam_method_is_offered_and_computed():
    """A method from outside: one entry, then listed with the built-in ones, computed by
    `compute_cam` (after the one forward pass, with its classes) and refused under a taken key."""
    import numpy as np
    import torch

    from sa_viz.cam import METHODS, CamMethod, compute_cam, methods
    from sa_viz.cam.methods import _REGISTERED as registered_methods
    from sa_viz.models import resnet50

    seen = {}

    def centre(model, x, classes, layer):
        seen["classes"] = classes
        raw = np.zeros((len(x), 7, 7), np.float32)
        raw[:, 3, 3] = 1
        return np.ones((len(x), *x.shape[-2:]), np.float32), raw

    method = CamMethod("centre", "Centre", "the middle, always", centre)
    try:
        assert sa_viz.register_method(method) is method
        assert list(METHODS)[-1] == "centre" and methods()["centre"] is method
        assert list(METHODS)[:2] == ["gradcam", "gradcam++"]  # the built-ins keep their order
        from sa_viz.app.choices import method_choices

        assert method_choices()[-1] == ("Centre: the middle, always", "centre")  # the page's
        result = compute_cam(
            resnet50().eval(), torch.randn(2, 3, 64, 64), [5, None], "layer4", "centre"
        )
        assert result.class_idx[0] == 5 and seen["classes"] == result.class_idx
        assert result.raw[0, 3, 3] == 1 and result.maps.shape == (2, 64, 64)
        with pytest.raises(ValueError, match="built in"):
            sa_viz.register_method(CamMethod("gradcam", "x", "", centre))
        with pytest.raises(ValueError, match="needs a `compute`"):
            sa_viz.register_method(CamMethod("nothing", "x"))
    finally:
        registered_methods.clear()
        methods.cache_clear()
    assert "centre" not in METHODS
    with pytest.raises(ValueError, match="choose one of gradcam, gradcam\\+\\+"):
        compute_cam(resnet50().eval(), torch.randn(1, 3, 64, 64), method="centre")


def test_a_registered_probe_and_analysis_are_found():
    from sa_viz.analyses import _REGISTERED as registered_analyses
    from sa_viz.probes import recorder

    probe = probes()[0]
    before = len(probes())
    analysis = Analysis("always_one", "Always one", lambda image: Result({"one": 1.0}), ("one",))
    try:
        sa_viz.register_probe(probe)  # registered twice: kept once
        assert len(probes()) == before + 1
        assert sa_viz.register_analysis(analysis) is analysis
        assert analyses()["always_one"] is analysis
        with pytest.raises(ValueError, match="built in"):
            sa_viz.register_analysis(Analysis("road", "x", lambda image: None, ()))
    finally:
        recorder._REGISTERED.clear()
        registered_analyses.clear()
        probes.cache_clear()
        analyses.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "always_one" not in analyses()
