"""Every private name of gradio that `sa_viz/app/gradio_internals.py` uses is still there, with
the shape it is used with: a gradio release that renames or reshapes one fails here, by name,
instead of a check or a bound silently doing nothing."""

from __future__ import annotations

import asyncio
import inspect

import gradio as gr
import pytest
from gradio.block_function import BlockFunction
from gradio.blocks import BlocksConfig
from gradio.queueing import Event, Queue
from gradio.state_holder import SessionState

from sa_viz.app import gradio_internals
from sa_viz.app.engine import Engine
from sa_viz.app.wiring import build


@pytest.fixture(scope="module")
def app():
    return build(Engine(dict))


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_blocks_preprocess_data_takes_the_event_its_inputs_and_the_session(app):
    original = gr.Blocks.preprocess_data
    assert inspect.iscoroutinefunction(original)
    assert parameters(original)[:4] == ["self", "block_fn", "inputs", "state"]
    assert "preprocess_data" in vars(app.demo)  # replaced on this app's Blocks only
    assert gr.Blocks.preprocess_data is original


def test_an_events_function_and_a_components_id(app):
    fn = next(iter(app.demo.fns.values()))
    assert isinstance(fn, BlockFunction)
    for name in ("inputs", "api_name", "concurrency_id", "targets"):
        assert hasattr(fn, name), name
    component = app.page.inputs.image
    assert gradio_internals.component_id(component) == component._id
    assert isinstance(component._id, int)


def test_a_sessions_stored_components_and_payloads(app):
    state = SessionState(app.demo)
    assert isinstance(state.blocks_config, BlocksConfig)
    assert isinstance(state.blocks_config.blocks, dict)
    image = app.page.inputs.image
    gradio_internals.keep_component(state, image, image)  # no error for a known component
    assert hasattr(state, "config_values")


def test_the_queue_has_the_push_and_the_attributes_the_lanes_use(app):
    assert parameters(Queue.push)[:4] == ["self", "body", "request", "username"]
    assert inspect.iscoroutinefunction(Queue.push)
    demo = gradio_internals.configure_queue(build(Engine(dict)).demo, max_size=3)
    queue = demo._queue
    for name in ("blocks", "event_queue_per_concurrency_id"):
        assert hasattr(queue, name), name
    assert queue.sleep_when_free == pytest.approx(gradio_internals.QUEUE_IDLE_POLL_S)
    # and it neither summarises past events with pandas nor keeps more than one of them
    assert queue.ANAYLTICS_CACHE_FREQUENCY > 10**12 and queue.ANALYTICS_MAX_EVENTS == 1
    assert queue.lane_max_size == 3 and queue.max_size is None  # bound per lane
    assert "session_hash" in parameters(Event.__init__)


def test_an_events_raw_data_and_the_component_methods_replaced(app):
    event = gr.EventData(None, {"index": [1, 2]})
    assert gradio_internals.event_data(event) == {"index": [1, 2]}
    image = app.page.inputs.image
    for name in ("preprocess", "api_info", "example_payload", "example_value"):
        assert callable(getattr(gr.Image, name)), name
        assert name in vars(image), f"{name} is replaced on the page's image input"
    with pytest.raises(AttributeError, match="no method"):
        gradio_internals.replace_methods(image, not_a_method=lambda: None)


def test_a_refused_input_never_reaches_gradio(app):
    """The replaced `preprocess_data` runs the check first: a link is refused with a sentence."""
    fn = next(fn for fn in app.demo.fns.values() if fn.api_name == "explain")
    link = {"path": "https://example.com/x.jpg", "meta": {"_type": "gradio.FileData"}}
    inputs = [link, *(None for _ in fn.inputs[1:])]
    with pytest.raises(gr.Error, match="not fetched"):
        asyncio.run(app.demo.preprocess_data(fn, inputs, None))
