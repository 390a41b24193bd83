"""Every use of gradio's private names, in one place (tests/test_gradio_internals.py fails when
a gradio release changes one): the inputs' check before gradio reads them, the queue's lanes and
bounds, component methods replaced on one instance, and an event's raw data."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gradio as gr

if TYPE_CHECKING:
    import fastapi
    from gradio.block_function import BlockFunction
    from gradio.data_classes import PredictBodyInternal
    from gradio.state_holder import SessionState


log = logging.getLogger(__name__)

QUEUE_IDLE_POLL_S = 0.01
PER_SESSION = 2  # requests of one session that may wait in a lane


def intercept_inputs(
    demo: gr.Blocks,
    check: Callable[[list[Any], list[Any], Any], gr.Error | None],
    on_refusal: Callable[[], None] = lambda: None,
) -> None:
    """Run `check(components, inputs, state)` on every event's inputs before gradio touches
    them, and keep none of them afterwards.

    gradio moves each input's files into its cache first, downloading any http(s) URL it finds
    in a file payload (of any component), then stores each input's payload in the session's
    copy of the page's config (for deep links, which this app does not offer), then runs the
    components' own preprocessing, whose errors reach a caller without a message when
    `show_error` is off. So, on this app's Blocks only (an instance attribute),
    `Blocks.preprocess_data` first runs `check`, whose `gr.Error` (returned or raised) refuses
    the request with its sentence, and afterwards drops the stored payloads (a 40 MB data: URL
    stayed in memory per session before).
    """
    original = demo.preprocess_data

    async def preprocess_data(
        block_fn: BlockFunction,
        inputs: list[Any],
        state: SessionState | None,
        *args: Any,
        **kwargs: Any,
    ) -> list[Any]:
        try:
            refusal = check(block_fn.inputs, inputs, state)
        except gr.Error as error:
            refusal = error
        if refusal is not None:
            # What the refused request sent is freed now (`Engine.release_refused`), and the
            # error is raised outside the `except`, without the request's frames.
            message, title = refusal.message, refusal.title
            del inputs, refusal
            on_refusal()
            # One line in the server's log (a person's mistake, not the server's: no traceback).
            log.info("refused /%s: %s", getattr(block_fn, "api_name", "?"), message[:300])
            raise gr.Error(message, title=title, print_exception=False)
        try:
            return await original(block_fn, inputs, state, *args, **kwargs)
        finally:
            forget_inputs(state, block_fn)

    demo.preprocess_data = preprocess_data


def forget_inputs(state: Any, block_fn: Any) -> None:
    """Drop the input payloads gradio stored in the session's config (see `intercept_inputs`)."""
    configs = getattr(state, "config_values", None)
    if not configs:
        return
    for block in block_fn.inputs:
        props = (configs.get(block._id) or {}).get("props")
        if isinstance(props, dict) and "value" in props:
            props["value"] = None


def bound_lanes(queue: Any, max_size: int | None, per_session: int = PER_SESSION) -> None:
    """At most `max_size` requests wait in each lane (explanations; view updates and exports),
    and at most `per_session` of one session in a lane.

    gradio's own bound counts every lane together: a client with 32 ScoreCAM requests queued
    made everyone's view updates answer "Queue is full" for minutes. So the bound is checked
    here, in `push` of this app's queue (an instance attribute; gradio's bound is off), with
    gradio's own "queue is full" answer (HTTP 503) when a lane or a session has too many.

    A page's load events are never refused for their session: an opening page sends three
    into the views lane at once, and on a busy machine (CI, 2 cores) the third arrived while
    the other two still waited, so the list of studies showed "Error" (stop 21's CI). Each
    runs once per page opened, so they cannot pile up within a session.
    """
    queue.lane_max_size = max_size
    original = queue.push

    async def push(
        body: PredictBodyInternal, request: fastapi.Request, username: str | None
    ) -> tuple[bool, str | list[dict[str, Any]], str]:
        fn = queue.blocks.fns.get(body.fn_index) if body.fn_index is not None else None
        lane = queue.event_queue_per_concurrency_id.get(fn.concurrency_id) if fn else None
        waiting = list(lane.queue) if lane is not None else []
        if max_size is not None and len(waiting) >= max_size:
            return False, f"Queue is full: {len(waiting)} requests are waiting.", "queue_full"
        mine = sum(event.session_hash == body.session_hash for event in waiting)
        loading = fn is not None and bool(fn.targets) and all(e == "load" for _, e in fn.targets)
        if body.session_hash and mine >= per_session and not loading:
            return (
                False,
                f"Queue is full for this session: {mine} of its requests are waiting.",
                "queue_full",
            )
        return await original(body, request, username)

    queue.push = push


def configure_queue(demo: gr.Blocks, *, max_size: int | None) -> gr.Blocks:
    """One explanation at a time, at most `max_size` waiting (None: no bound).

    gradio's queue looks for new work every millisecond while it has none: 11% of a core on an
    idle server here, and GIL hand-offs taken from the models while they run (measured: 115 CPU
    ticks in 10 idle seconds, 32 at 10 ms). gradio has no setting for it, so the attribute is
    set where this gradio has it (tests/test_gradio_internals.py checks that it does); a queued
    request then starts at most 10 ms later. The same for gradio's event analytics (below).
    """
    # api_open=False: no /gradio_api/api/<name> route, which would run handlers outside the
    # queue (no queue bound, no lanes) and without a session. The bound is per lane (below).
    demo.queue(max_size=None, default_concurrency_limit=1, api_open=False)
    queue = getattr(demo, "_queue", None)
    bound_lanes(queue, max_size)
    if hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_IDLE_POLL_S)
    # After every event gradio also summarises its last 10,000 events with pandas for the
    # monitoring dashboard, which this app turns off (4 ms per event with 100 recorded, 16 ms
    # with 10,000, measured; and the records stay in memory): record one, summarise never.
    if hasattr(queue, "ANAYLTICS_CACHE_FREQUENCY") and hasattr(queue, "ANALYTICS_MAX_EVENTS"):
        queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize
        queue.ANALYTICS_MAX_EVENTS = 1
    return demo


def component_id(component: Any) -> int:
    """The id gradio knows a component by in an event (`Block._id`)."""
    return component._id


def keep_component(state: Any, component: Any, kept: Any) -> None:
    """Have the session use `kept` for `component`: an update of a component (an example's
    click returns one) makes gradio build a plain copy of it for the session, without the
    checks this app added to its instance (`replace_methods`)."""
    if state is not None and component._id in state.blocks_config.blocks:
        state.blocks_config.blocks[component._id] = kept


def replace_methods(component: Any, **methods: Callable[..., Any]) -> Any:
    """`component` with some of its methods replaced on this instance only (`preprocess`,
    `api_info`, `example_payload`, …): a subclass would make gradio write a .pyi stub next to
    its module at import time."""
    for name, method in methods.items():
        if not callable(getattr(component, name, None)):
            raise AttributeError(f"{type(component).__name__} has no method {name!r} to replace")
        setattr(component, name, method)
    return component


def event_data(event: Any) -> Any:
    """What the browser sent with an event (`EventData._data`), as sent: gradio builds a
    `SelectData` from it before any handler runs, and raises a TypeError without a message
    when a caller sends none, so handlers of clicks take `gr.EventData` and read this."""
    return getattr(event, "_data", None)
