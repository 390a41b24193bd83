"""Hardening, in one process: every CAM method within the time limit and a memory bound, sessions
that expire say so, parameters checked by name, links found wherever they hide, inputs not kept
per session, and a request body bound enforced before the body is read."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import tracemalloc

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import ASSETS
from gradio.state_holder import SessionState
from pytorch_grad_cam import EigenCAM, EigenGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from sa_viz.app.engine import Engine, NothingYet, ResultExpired, Sessions, Settings
from sa_viz.app.guard import RequestGuard, body_limit
from sa_viz.app.validation import has_link
from sa_viz.app.wiring import build, build_app
from sa_viz.cam import compute_cam, first_component, target_layer
from sa_viz.hooks import Stopped, TimeLimitExceeded, check_time, time_limit


def activations(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(shape).astype(np.float32)
    return np.maximum(base + rng.standard_normal((*shape[:2], 1, 1)).astype(np.float32), 0)


@pytest.mark.parametrize("shape", [(1, 256, 14, 22), (2, 512, 7, 9), (1, 2048, 7, 11)])
def test_first_component_equals_the_library(shape):
    x = activations(shape)
    x[0, 0, 0, 0] = np.nan  # the library zeroes NaNs; so do we
    ours, theirs = first_component(x), get_2d_projection(x)
    # the same LAPACK driver gives the same first singular vector, sign included (bit for bit
    # with this NumPy; a tolerance in case another build rounds differently)
    assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())


def test_first_component_of_a_panorama_at_layer1_needs_no_positions_squared_matrix():
    # layer1 of a 224×896 input: 12,544 positions × 256 channels. The library's full SVD
    # allocates U, 12,544² float32 = 630 MB; the reduced one needs positions × channels.
    x = activations((1, 256, 56, 224))
    tracemalloc.start()
    try:
        first_component(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, peak / 2**20


def test_first_component_stops_at_the_time_limit():
    model = torch.nn.Identity()
    with time_limit(model, time.monotonic() - 1), pytest.raises(TimeLimitExceeded):
        first_component(activations((1, 64, 4, 4)))
    stop = threading.Event()
    stop.set()
    with time_limit(model, None, stop), pytest.raises(Stopped):
        check_time()
    check_time()  # outside any limit: nothing to check


@pytest.mark.parametrize(
    ("method", "library"), [("eigencam", EigenCAM), ("eigengradcam", EigenGradCAM)]
)
def test_eigen_methods_equal_the_library(loaded_models, method, library):
    from sa_viz.data.preprocess import prepare_image

    model = loaded_models["sa_resnet50"].module
    x = prepare_image(ASSETS / "coffee.jpg", crop=True).tensor
    ours = compute_cam(model, x, [967], "layer3", method).maps
    with torch.enable_grad(), library(model, [target_layer(model, "layer3")]) as cam:
        theirs = cam(
            input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(967)]
        )
    model.zero_grad(set_to_none=True)
    assert np.abs(ours - theirs).max() < 1e-4


def test_a_stopped_engine_stops_the_running_computation(loaded_models):
    engine = Engine(lambda: loaded_models, time_limit=None).start()
    engine.models(timeout=60)
    failure = {}

    def run():
        try:
            engine.explain(str(ASSETS / "chelsea.jpg"), Settings(method="scorecam"))
        except Exception as error:
            failure["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    started = time.monotonic()
    assert engine.shutdown(timeout=20)
    worker.join(timeout=20)
    assert time.monotonic() - started < 5
    assert isinstance(failure.get("error"), Stopped)
    for loaded in loaded_models.values():  # no hook left behind
        assert not any(m._forward_pre_hooks or m._forward_hooks for m in loaded.module.modules())


def test_sessions_that_expire_say_so():
    sessions = Sessions(capacity=2, forgotten=3)
    with pytest.raises(NothingYet, match="Explain an image first"):
        sessions.get("a")
    for name in "abc":
        sessions.keep(name, name)  # any value: Sessions only holds it
    assert len(sessions) == 2 and sessions.get("b") == "b"
    with pytest.raises(ResultExpired, match=r"expired.*2 most recently active.*Press Explain"):
        sessions.get("a")
    sessions.keep("a", "again")  # explaining again restores it
    assert sessions.get("a") == "again"
    for name in "defgh":
        sessions.keep(name, name)
    with pytest.raises(NothingYet):  # long forgotten: the plain first-time message
        sessions.get("b")


def test_views_keep_a_lane_free_for_results_in_memory(loaded_models):
    engine = Engine(lambda: loaded_models, cache_size=1).start()
    handlers = build(engine).handlers
    request = gr.Request(session_hash="evicted")
    handlers.explain(str(ASSETS / "chelsea.jpg"), request=request)
    handlers.explain(str(ASSETS / "coffee.jpg"), request=gr.Request(session_hash="other"))
    busy = pytest.raises(gr.Error, match="busy computing other results")
    with engine._recomputing, engine._recomputing, busy:  # two view updates computing again
        handlers.update_gates("layer3.0", 0, "jet", 0.5, "unit range", request=request)
    handlers.update_gates("layer3.0", 0, "jet", 0.5, "unit range", request=request)


def test_links_are_found_wherever_a_file_payload_can_be():
    tag = {"meta": {"_type": "gradio.FileData"}}
    for link in ("https://example.com/a.png", "http://127.0.0.1:1/x", "HTTPS://x/y", "//host/x",
                 "file:///etc/passwd", "ftp://x/y"):  # fmt: skip
        assert has_link({"path": link, **tag})
        assert has_link({"path": None, "url": link, **tag})
        assert has_link(["x", {"nested": [{"path": link}]}])
    uploaded = {"path": "/tmp/gradio/abc/x.png", "url": "http://127.0.0.1:7860/gradio_api/file=x"}
    assert not has_link(uploaded)  # the page's own uploads carry a URL back to this server
    assert not has_link({"path": None, "url": "data:image/png;base64,AAAA"})
    assert not has_link("https://example.com/a.png")  # a plain string is not a file payload


@pytest.fixture(scope="module")
def demo(loaded_models):
    return build_app(Engine(lambda: loaded_models).start())


def event(demo, api_name):
    return next(fn for fn in demo.fns.values() if fn.api_name == api_name)


MODELS = ["resnet50", "sa_resnet50", "sa_resnet50"]  # model A, model B, the gates shown


def preprocess(demo, api_name, inputs, state=None):
    return asyncio.run(demo.preprocess_data(event(demo, api_name), inputs, state))


def test_every_parameter_is_checked_with_a_sentence_that_names_it(demo):
    good = {
        "explain": [None, "whole image", "each model's own top-1", "gradcam", "layer4", "jet",
                    0.5, "per model", "layer3.0", 0, "unit range", *MODELS],
        "explain_json": [None, "whole image", "each model's own top-1", "gradcam", "layer4",
                         *MODELS[:2]],
        "cam_view": ["jet", 0.5, "per model"],
        "gate_view": ["layer3.0", 0, "jet", 0.5, "unit range", "sa_resnet50"],
        "export_zip": ["jet", 0.5, "per model", "layer3.0", 0, "unit range", "sa_resnet50",
                       ["svg", "pdf"], "single"],
    }  # fmt: skip
    names = {
        "explain": ["image", "crop_mode", "target", "method", "layer", "colormap", "alpha",
                    "normalization", "unit", "group", "scale", "model_a", "model_b",
                    "gate_model"],
        "explain_json": ["image", "crop_mode", "target", "method", "layer", "model_a",
                         "model_b"],
        "cam_view": ["colormap", "alpha", "normalization"],
        "gate_view": ["unit", "group", "colormap", "alpha", "scale", "gate_model"],
        "export_zip": ["colormap", "alpha", "normalization", "unit", "group", "scale",
                       "gate_model", "figure_formats", "figure_width"],
    }  # fmt: skip
    wrong = [None, "abc", "5", 3.5, -1, 10**6, True, ["x"], {"a": 1}]
    for_image = ["abc", "5", 3.5, True, ["x"]]  # None asks for an image; a dict is a payload
    for api_name, inputs in good.items():
        for i, name in enumerate(names[api_name]):
            if name == "target":
                continue  # any text or index; parse_target names the class it can't find
            # All wrong for `name`; None is "Gates of" with no gated model compared (the
            # page's own value then: `Handlers.captions` empties the list).
            values = for_image if name == "image" else wrong[1:] if name == "gate_model" else wrong
            for value in values:
                call = [*inputs]
                call[i] = value
                try:
                    preprocess(demo, api_name, call)
                except gr.Error as error:
                    assert f"parameter `{name}`" in error.message, (api_name, name, value)
                    assert "got" in error.message
                else:
                    pytest.fail(f"{api_name}: {name}={value!r} was accepted")
        preprocess(demo, api_name, inputs)  # the right types pass
    with pytest.raises(gr.Error, match="parameter `target`"):
        preprocess(demo, "explain", [*good["explain"][:2], 3.5, *good["explain"][3:]])


def test_no_input_payload_is_kept_in_the_session(demo):
    state = SessionState(demo)
    image = {"path": None, "url": "data:image/png;base64," + "A" * 10_000,
             "meta": {"_type": "gradio.FileData"}}  # fmt: skip
    inputs = [image, "whole image", "each model's own top-1", "gradcam", "layer4", "jet", 0.5,
              "per model", "layer3.0", 0, "unit range", *MODELS]  # fmt: skip
    preprocess(demo, "explain", inputs, state)
    kept = [c for c in state.config_values.values() if "AAAA" in str(c)]
    assert not kept


def test_a_link_is_refused_before_gradio_sees_it(demo, monkeypatch):
    fetched = []
    for block in demo.blocks.values():
        monkeypatch.setattr(
            block, "async_move_resource_to_block_cache", lambda p: fetched.append(p), raising=False
        )
    link = {"path": "https://example.com/a.png", "meta": {"_type": "gradio.FileData"}}
    for api_name, inputs in {
        "explain": [link, *["whole image", None, "gradcam", "layer4", "jet", 0.5, "per model",
                            "layer3.0", 0, "unit range", *MODELS]],
        "gate_view": ["layer3.0", link, "jet", 0.5, "unit range", "sa_resnet50"],
    }.items():  # fmt: skip
        with pytest.raises(gr.Error, match="Links are not fetched"):
            preprocess(demo, api_name, inputs)
    assert not fetched


class Received:
    """A downstream ASGI app that reads the whole body, as FastAPI does, and says how much."""

    def __init__(self):
        self.read = 0

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def asgi_call(app, path, body_chunks, content_length=None):
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "path": path, "method": "POST", "headers": headers}
    chunks = list(body_chunks)
    sent, pulled = [], {"n": 0}

    async def receive():
        if pulled["n"] < len(chunks):
            pulled["n"] += 1
            return {"type": "http.request", "body": chunks[pulled["n"] - 1],
                    "more_body": pulled["n"] < len(chunks)}  # fmt: skip
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), pulled["n"]


def test_request_bodies_over_the_bound_are_refused_before_they_are_read():
    limit = body_limit(3 * 2**20)
    assert limit == 4 * 2**20 + 2 * 2**20  # one base64 image of 3 MB, plus 2 MB
    inner = Received()
    guard = RequestGuard(inner, max_body=limit, max_image_bytes=3 * 2**20)
    chunk = b"x" * 2**20
    # Announced: answered from the header, nothing read.
    status, body, pulled = asgi_call(guard, "/gradio_api/call/explain", [chunk] * 100, 100 * 2**20)
    assert status == 413 and pulled == 0 and b"at most 6.0 MB" in body and b"3.0 MB" in body
    # Chunked, no length: refused as soon as it passes the bound.
    status, body, pulled = asgi_call(guard, "/gradio_api/queue/join", [chunk] * 100)
    assert status == 413 and pulled == 7 and inner.read <= 6 * 2**20
    # Within the bound: passed on whole.
    inner.read = 0
    status, body, _ = asgi_call(guard, "/gradio_api/upload", [chunk] * 5, 5 * 2**20)
    assert status == 200 and inner.read == 5 * 2**20
    status, body, _ = asgi_call(guard, "/gradio_api/deep_link", [])
    assert status == 404 and b"does not offer" in body


def test_an_example_click_does_not_remove_the_image_checks(demo):
    # An example's click returns an update of the image input; gradio then keeps a plain copy
    # of the component for the session and preprocesses with it.
    state = SessionState(demo)
    image = next(b for b in event(demo, "explain").inputs if isinstance(b, gr.Image))
    state.blocks_config.blocks[image._id] = gr.Image(type="filepath", render=False)
    rest = ["whole image", None, "gradcam", "layer4", "jet", 0.5, "per model", "layer3.0", 0,
            "unit range", *MODELS]  # fmt: skip
    for payload, message in (
        ({"path": "/etc/passwd"}, "Only files uploaded to this app"),
        ({"path": str(ASSETS / "chelsea.jpg"), "meta": {"_type": "gradio.FileData"}}, "Only files"),
        ({"path": 5}, "parameter `image`"),
        ({"path": "x.png", "meta": "gradio.FileData"}, "parameter `image`"),
    ):
        with pytest.raises(gr.Error, match=message):
            preprocess(demo, "explain", [payload, *rest], state)
    assert state.blocks_config.blocks[image._id] is image


def test_callers_from_before_the_model_choice_still_work(demo):
    """A raw call that sends /explain's 11 parameters of before (no models) compares the
    default pair; one that leaves out an older parameter is refused with their names."""
    old = [None, "whole image", "each model's own top-1", "gradcam", "layer4", "jet", 0.5,
           "per model", "layer3.0", 0, "unit range"]  # fmt: skip
    preprocess(demo, "explain", [*old])
    preprocess(demo, "gate_view", ["layer3.0", 0, "jet", 0.5, "unit range"])
    with pytest.raises(gr.Error, match="takes 17 parameters"):
        preprocess(demo, "explain", old[:10])


def test_missing_parameters_and_unknown_classes_are_named(demo):
    with pytest.raises(gr.Error, match=r"takes 6 parameters \(unit, group, colormap, alpha"):
        preprocess(demo, "gate_view", [])
    handlers = build(Engine(dict).start()).handlers
    for target in ("zzz-not-a-class", "²"):
        with pytest.raises(gr.Error, match=r"parameter `target`.*Pick a class"):
            handlers.explain(str(ASSETS / "chelsea.jpg"), target=target)
    with pytest.raises(gr.Error, match="not part of the API"):
        handlers.choose_prediction(None)


def test_mistakes_are_logged_as_one_line(demo, caplog):
    """A refused parameter and a handler's expected error: one line each, no traceback."""
    caplog.set_level(logging.INFO, logger="sa_viz")
    with pytest.raises(gr.Error):
        preprocess(demo, "gate_view", ["layer3.0", 64000, "jet", 0.5, "unit range", "sa_resnet50"])
    handlers = build(Engine(dict).start()).handlers
    with pytest.raises(gr.Error):
        handlers.explain(str(ASSETS / "chelsea.jpg"), target="zzz-not-a-class")
    lines = [r for r in caplog.records if "refused" in r.message or "answered" in r.message]
    assert len(lines) == 2 and not any(r.exc_info for r in caplog.records)
    assert "refused /gate_view: Group (parameter `group`)" in lines[0].message
    assert "handler explain answered 'Unknown class'" in lines[1].message
