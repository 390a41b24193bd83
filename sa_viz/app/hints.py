"""Failures in words for people: the sentence for each kind of failure (`handler`), and the page's
hints beside the control that caused one, the results on screen kept (`on_page`).

Every tab's events go through `on_page`: a handler returns `{component: value}`; on a failure
no output changes and the tab's `HintBoard` says what went wrong; on a success the hints it
names are cleared. The API's endpoints call the handlers themselves, and get errors.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

from sa_viz.app.engine import ModelsUnavailable, NothingYet, ResultExpired
from sa_viz.cam import SCORECAM_CHANNELS
from sa_viz.data.preprocess import ImageError
from sa_viz.errors import failed_while, new_error_id
from sa_viz.hooks import Stopped, TimeLimitExceeded

log = logging.getLogger(__name__)

# One hint for every action that needs an image before there is one.
EMPTY = "Upload an image or pick an example first."
SUPERSEDED = "Superseded"
STOPPING = "The server is shutting down and stopped this computation. Try again once it is back."


class Superseded(Exception):
    """A page's long explanation was replaced by a newer request of the same page."""


def refuse(message: str, title: str = "Error") -> gr.Error:
    """The error a handler raises for a person: `title` decides where the page shows it."""
    return gr.Error(message, title=title, print_exception=False)


def time_limit_message(limit: float | None, method: str = "gradcam") -> str:
    bound = "time limit" if limit is None else f"limit of {limit:g} s"
    message = f"Explaining took longer than this server's {bound} and was stopped."
    if method == "scorecam":
        return (
            f"{message} ScoreCAM runs each model once per scored channel ({SCORECAM_CHANNELS} "
            "at any layer) on the whole image: choose the centre crop (fewer pixels) or a "
            "one-pass method such as Grad-CAM."
        )
    return f"{message} Try a smaller image or GradCAM; the server's operator can raise the limit."


def failure_message(name: str, error: Exception, time_limit: float | None) -> tuple[str, str]:
    """(message, title) for a handler's failure; an unforeseen one is logged here."""
    if isinstance(error, gr.Error):
        return error.message, error.title
    if isinstance(error, ImageError):
        return str(error), "This image can't be used"
    if isinstance(error, Stopped):
        return STOPPING, "Server stopping"
    if isinstance(error, TimeLimitExceeded):
        return time_limit_message(time_limit), "Too slow"
    if isinstance(error, NothingYet):
        return str(error), "Nothing to show yet"
    if isinstance(error, ResultExpired):
        return str(error), "Result expired"
    if isinstance(error, Superseded):
        return "A newer request of this page replaced this one.", SUPERSEDED
    if isinstance(error, (ModelsUnavailable, ValueError)):
        return str(error), "Error"
    return unforeseen(name, error), "Error"


def unforeseen(name: str, error: Exception) -> str:
    """A failure the code did not foresee: logged with its traceback under a new error id, and
    answered with the stage that failed and that id (no file, path or value of the request)."""
    error_id = new_error_id()
    where = failed_while(error)
    log.error("handler %s %s [error id %s]", name, where, error_id, exc_info=error)
    return (
        f"Something unexpected went wrong on the server: it {where} "
        f"({type(error).__name__}; error id `{error_id}`, which the server log shows beside the "
        "details). The server is still running: try again, or try another image."
    )


def handler(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an event handler (a method of an object with an `engine`): log its server time
    ("handler <name> took <s> s"; benchmarks/bench_app.py reads these lines) and turn every
    failure into a `gr.Error` for people (`failure_message`: no file or path; the app runs with
    show_error=False, so gradio shows only these)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            try:
                return method(self, *args, **kwargs)
            except Exception as error:
                message, title = failure_message(
                    method.__name__, error, getattr(self.engine, "time_limit", None)
                )
                refused_image = isinstance(error, ImageError)
        finally:
            log.info("handler %s took %.4f s", method.__name__, time.perf_counter() - start)
        # Raised here, outside the `except`: an error raised inside it would carry the failed
        # call's traceback as its context, and with it every frame's locals (the request's
        # image, decoded) for as long as gradio keeps the error (seen: ~150 MB per refused
        # 40 MB data: URL, for the last few requests).
        if refused_image:
            self.engine.release_refused()
        log.info("handler %s answered %r: %s", method.__name__, title, message[:300])
        raise refuse(message, title)

    return wrapper


class HintBoard:
    """A tab's hints: one Markdown per place, and which place a failure's title belongs to
    (anything else goes to `default`)."""

    def __init__(
        self,
        places: Mapping[str, gr.Markdown],
        place_of: Mapping[str, str] | None = None,
        default: str | None = None,
        empty: Sequence[str] = (),
    ) -> None:
        self.places = dict(places)
        self.place_of = dict(place_of or {})
        self.default = default or next(iter(self.places))
        self.empty = tuple(empty)  # titles answered with `EMPTY`: "there is no image yet"

    def show(self, error: gr.Error) -> dict[gr.Markdown, Any]:
        """`error` beside its control; every other hint hidden."""
        place = self.place_of.get(error.title, self.default)
        if error.title in self.empty:
            text = EMPTY
        else:
            # The control is beside the hint: the API's name for it is not needed there.
            text = f"**{error.title}.** " + re.sub(r" \(parameter `\w+`\)", "", error.message)
        return {
            hint: gr.update(value=text if p == place else "", visible=p == place)
            for p, hint in self.places.items()
        }

    def clear(self, places: Sequence[str] | None = None) -> dict[gr.Markdown, Any]:
        """The hints at `places` (default: all) hidden."""
        chosen = self.places if places is None else places
        return {self.places[p]: gr.update(value="", visible=False) for p in chosen}


def on_page(
    clears: Sequence[str] | None = None,
    undo: Callable[..., dict] | None = None,
) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """A handler as the page calls it, on an object with `hints` (a `HintBoard`): its outputs
    by component and the hints.

    On a failure no output changes and the hint says what went wrong; a superseded request
    changes nothing. `undo(self, error, *args, **kwargs)`, if given, returns what the failure
    puts back (the image box after a refused image) and may say more than the hint. A success
    clears the hints at `clears` only (None: all): a view update leaves a hint about the
    explanation's inputs (an unknown class still in its box, an unusable upload) in place; a
    handler's `gr.skip()` changes nothing, the hints included."""

    def decorate(method: Callable[..., dict]) -> Callable[..., dict]:
        @functools.wraps(method)
        def page(self: Any, *args: Any, **kwargs: Any) -> dict:
            try:
                values = method(self, *args, **kwargs)
            except Exception as error:
                if not isinstance(error, gr.Error):  # a handler without `handler` around it
                    limit = getattr(getattr(self, "engine", None), "time_limit", None)
                    message, title = failure_message(method.__name__, error, limit)
                    error = refuse(message, title)
                if error.title == SUPERSEDED:
                    return gr.skip()  # every output as it is (an empty dict is no answer)
                name, title, said = method.__name__, error.title, error.message[:300]
                log.info("page %s answered %r: %s", name, title, said)
                put_back = undo(self, error, *args, **kwargs) if undo is not None else {}
                return {**self.hints.show(error), **put_back}
            if values == gr.skip():
                # Merged with the hints it would be neither a skip nor a dict of components
                # (gradio refused it: "Returned dictionary included some keys as Components").
                return values
            return {**values, **self.hints.clear(clears)}

        return page

    return decorate
