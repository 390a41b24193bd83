"""The Gradio app: layout and event wiring only. The only module that imports gradio.

Every computation goes through `sa_viz.app.engine` (models, cache) and every picture through
`sa_viz.render.views`; the handlers translate between widgets and those calls and turn errors into
messages for people. They are methods of `Handlers`, so tests call them directly.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import logging
import re
import reprlib
import shutil
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr
from gradio import utils as gradio_utils
from gradio.data_classes import ImageData

from sa_viz import render
from sa_viz.analyses import analyses as registered_analyses
from sa_viz.analyses.knockout import GATES, VALUES
from sa_viz.app.analyses_tab import AnalysesTab, AnalysisHandlers, analyses_tab
from sa_viz.app.engine import (
    Engine,
    ModelsUnavailable,
    NothingYet,
    Progress,
    ResultExpired,
    Sessions,
    Settings,
)
from sa_viz.app.guard import LINK, LINKS_REFUSED
from sa_viz.app.study_tab import StudyHandlers, StudyLimits, StudyTab, study_tab
from sa_viz.app.tempspace import TempSpace
from sa_viz.cam import DEFAULT_LAYER, LAYERS, METHODS, SCORECAM_CHANNELS
from sa_viz.data.examples import EXAMPLES, EXAMPLES_DIR
from sa_viz.data.imagenet import choice_label, class_index, labels
from sa_viz.data.preprocess import DEFAULT_LIMITS, ImageError, prepare_image
from sa_viz.errors import failed_while, new_error_id, stage
from sa_viz.models import DEFAULT_PAIR, get_model, list_models
from sa_viz.models.hooks import Stopped, TimeLimitExceeded
from sa_viz.models.weights import WeightsStatus
from sa_viz.outputs.document import explanation_document
from sa_viz.outputs.export import write_zip
from sa_viz.pipeline.explain import Explanation, analyse_explanation
from sa_viz.probes import unit_layouts, unit_names
from sa_viz.render import views

if TYPE_CHECKING:
    import fastapi
    from gradio.block_function import BlockFunction
    from gradio.data_classes import PredictBodyInternal
    from gradio.state_holder import SessionState

log = logging.getLogger(__name__)

ASSETS = EXAMPLES_DIR
OWN_TOP1 = "each model's own top-1"
# "934: hotdog (hot dog, red hot)": the list's filter finds a class by any of its names.
CLASS_CHOICES = [OWN_TOP1] + [choice_label(i) for i in range(len(labels()))]
WHOLE, CROP = "whole image", "centre crop 224 (evaluation protocol)"
DEFAULT_UNIT = "layer3.0"
TABLE_HEADERS = ["class", "p", "in other top-5"]
QUEUE_IDLE_POLL_S = 0.01
METHOD_CHOICES = [(f"{m.title}: {m.note}", key) for key, m in METHODS.items()]
VIEW_LANE_SIZE = 4  # view updates and exports running at once (explanations: one at a time)
PER_SESSION = 2  # requests of one session that may wait in a lane
LOCAL_SESSION = "local"  # handlers called from Python, without a gradio request
EXPLAIN_OUTPUTS = 12  # summary, 2 tables, 2 CAMs, difference, CAM text, 4 gate pictures, text
# Gradio keeps per-session copies of the page's components (for the captions' labels); results
# are held by `Sessions`, not by gradio, so a small number is enough.
GRADIO_SESSIONS = 200
SLOTS = ("a", "b")  # the two compared models' places on the page
RESULTS_MIN_WIDTH = 640  # px: the results column's narrowest (two top-5 tables side by side)
# The attention units of every registered model with gates, in order (the handler checks that
# the chosen model has the unit).
UNIT_NAMES = list(
    dict.fromkeys(u for name in list_models() if get_model(name).gates for u in unit_names(name))
)
# The most groups any unit has: the API's bound for `group`; each unit's own count is checked
# against the chosen model's.
MAX_GROUPS = max(
    (
        u.groups
        for name in list_models()
        if get_model(name).gates
        for u in unit_layouts(name).values()
    ),
    default=1,
)


def model_choice(name: str) -> tuple[str, str]:
    return get_model(name).title, name


def models_info() -> str:
    """One line per registered model: its published top-1, size, attention type and paper."""
    lines = []
    for name in list_models():
        entry = get_model(name)
        gates = f", {entry.gates} gates" if entry.gates else ", no attention gates"
        lines.append(
            f"**{entry.title}**: {entry.meta.top1:.2f}% ImageNet top-1, "
            f"{entry.meta.parameters / 1e6:.1f} M parameters{gates} · {entry.meta.paper}"
        )
    return "  \n".join(lines)


MODEL_CHOICES = [model_choice(name) for name in list_models()]
GATED_CHOICES = [model_choice(name) for name in list_models() if get_model(name).gates]

CSS = """
/* The Study tab shows a study's report.html: its own look, scoped to it */
#study-report img {max-width: 100%;}
#study-report img.examples {width: min(100%, 620px);}
#study-report table {border-collapse: collapse; margin: .5em 0;}
#study-report td, #study-report th {border: 1px solid #ccc; padding: 4px 8px; text-align: right;}
#study-report th:first-child {text-align: left;}
.untrained-banner {border-left: 6px solid #b00020; padding-left: 10px;}
.ok-banner {border-left: 6px solid #2e7d32; padding-left: 10px;}
.hint {border-left: 4px solid #b00020; padding: 2px 8px; background: #fdecee; color: #5f0010;}
/* gradio floats a picture's label and buttons over its top edge: room for them above it, so
   they never cover a title, a stamp or a colour bar's end */
.picture .image-frame {margin-top: 36px;}
"""


def bounded_image_input(**kwargs: Any) -> gr.Image:
    """A gr.Image whose handler gets an uploaded file's path, or a `data:` URL, undecoded.

    gr.Image would decode a `data:` URL itself before any handler runs, without our size,
    pixel-count and mode checks; here every image reaches `sa_viz.data.preprocess`, which bounds it.
    A payload that names a file must name one in gradio's upload folder: gradio checks that
    only for payloads tagged as files, and an untagged `{"path": "/any/file"}` would otherwise
    reach the handler. The override is on this instance only: a gr.Image subclass would make
    gradio write a .pyi stub next to this file at import time.
    """
    component = gr.Image(type="filepath", **kwargs)

    def preprocess(payload: Any) -> str | None:
        if payload is None:
            return None
        return check_image_payload(
            {"path": getattr(payload, "path", None), "url": getattr(payload, "url", None)}
        )

    component.preprocess = preprocess
    # gradio's "Use via API" page shows an example input; gr.Image's is a URL, which this app
    # refuses. A file on the caller's machine is what `handle_file` should be given.
    component.example_payload = lambda: {"path": "image.jpg", "meta": {"_type": "gradio.FileData"}}
    component.example_value = lambda: "image.jpg"
    # gradio describes an image parameter as "A local filepath or publicly available URL";
    # this app fetches no URL, so the API page says what it does take.
    described = component.api_info()
    described["additional_description"] = (
        "A file on your machine (handle_file(path)) or a data: URL; links are not fetched."
    )
    described["properties"]["url"]["description"] = "a data:image/…;base64 URL (no links)"
    component.api_info = lambda: described
    return component


def check_image_payload(payload: dict) -> str:
    """An image payload's upload path or `data:` URL; a `gr.Error` that says what to send if it
    is neither (a link, a file on the server, a malformed payload)."""
    path, url, meta = payload.get("path"), payload.get("url"), payload.get("meta")
    try:
        ImageData.model_validate(payload)  # every field's type, as gradio will read them
        valid = True
    except ValueError:  # pydantic's ValidationError
        valid = False
    if (
        not valid
        or not isinstance(path, (str, type(None)))
        or not isinstance(url, (str, type(None)))
        or not isinstance(meta, (dict, type(None)))
    ):
        raise _error(
            'Image (parameter `image`) must be a file payload: {"path": "<an upload>"} or '
            '{"url": "data:image/…;base64,…"} with strings, as `handle_file(path)` makes it.',
            "Invalid parameter",
        )
    if has_link(payload):
        raise _error(LINKS_REFUSED, "Links are not fetched")
    if not path and url and url.startswith("data:"):
        return url  # the browser sends an uploaded SVG as both; the file is what counts
    if not path:
        raise _error(
            "Send the image itself: upload the file, or send it as a data: URL. "
            "Links to other servers are not fetched.",
            "No image",
        )
    if not is_upload(path):
        raise _error(
            "Only files uploaded to this app can be explained. Upload the image (or send "
            "it as a data: URL) instead of naming a file on the server.",
            "File not allowed",
        )
    return path


def is_upload(path: str | Path) -> bool:
    """True if `path` (symlinks resolved) lies in gradio's upload folder."""
    uploads = Path(gradio_utils.get_upload_folder()).resolve()
    try:
        return Path(path).resolve().is_relative_to(uploads)
    except (OSError, ValueError):
        return False


def parse_target(choice: str | int | None) -> int | None:
    """ "281: tabby", "281", "tabby" → 281; the default choice → None (each model's top-1)."""
    if choice is None or str(choice).strip() in ("", OWN_TOP1):
        return None
    if len(str(choice)) > 200:
        raise _error(
            "CAM target class (parameter `target`) is over 200 characters long: send a class "
            "name or an index 0–999.",
            "Unknown class",
        )
    try:
        return class_index(choice)
    except ValueError as error:
        raise _error(
            f"CAM target class (parameter `target`): {error}. Pick a class from the list.",
            "Unknown class",
        ) from None


def status_markdown(statuses: list[WeightsStatus]) -> str:
    """One short line per model, then the full statuses and how to get missing weights in a
    fold (the banner used to take ~170 px and push the CAMs below the fold)."""
    lines = [f"**{s.title}** · {status_state(s)}" for s in statuses]
    details = []
    for s in statuses:
        how = f" **How to get it:** {s.how_to_get}" if s.untrained and s.how_to_get else ""
        details.append(f"- {s.message}.{how}".replace("..", "."))
    fold = (
        "Details, and how to get missing weights"
        if any(s.untrained for s in statuses)
        else ("Details")
    )
    return (
        "  \n".join(lines)
        + f"\n\n<details><summary>{fold}</summary>\n\n"
        + "\n".join(details)
        + "\n\n</details>"
    )


def status_state(status: WeightsStatus) -> str:
    """A model's weights in a few words (the file's name only: no server paths on the page)."""
    if not status.pretrained:
        return "**UNTRAINED**: random weights, its results mean nothing"
    if status.untrained_units:
        return f"**UNTRAINED** gates in {len(status.untrained_units)} units"
    if status.verified:
        return "pretrained, published hash verified"
    name = Path(status.path).name if status.path else "a file"
    return f"loaded from {name} (not the published file's hash)"


def handler(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an event handler: log its server time ("handler <name> took <s> s";
    benchmarks/bench_app.py reads these lines) and turn every failure into a message for people.

    Expected problems (a bad image, a busy or loading server, a result no longer kept, the time
    limit) get their own words; anything else is logged here and answered with a generic message
    that names no file or path (the app runs with show_error=False, so gradio shows only these).
    """

    @functools.wraps(method)
    def wrapper(self: Handlers, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            try:
                return method(self, *args, **kwargs)
            except Exception as error:
                message, title = failure_message(self, method.__name__, error)
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
        raise _error(message, title)

    return wrapper


def failure_message(handlers: Handlers, name: str, error: Exception) -> tuple[str, str]:
    """(message, title) for a handler's failure; an unexpected one is logged here."""
    if isinstance(error, gr.Error):
        return error.message, error.title
    if isinstance(error, ImageError):
        return str(error), "This image can't be used"
    if isinstance(error, Stopped):
        return STOPPING, "Server stopping"
    if isinstance(error, TimeLimitExceeded):
        return time_limit_message(handlers.engine.time_limit), "Too slow"
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


NO_GATES = "Neither of the compared models has attention gates: choose " + " or ".join(
    get_model(name).title for name in list_models() if get_model(name).gates
)


def group_slider(groups: int) -> dict[str, Any]:
    """The group slider for a unit with `groups` groups: it stands at 0 for a unit with one."""
    return gr.update(interactive=groups > 1, **({} if groups > 1 else {"value": 0}))


def gate_model_of(result: Explanation, wanted: str | None) -> str | None:
    """The model whose gates the explorer shows: `wanted` if it has gates in this result, else
    the first compared model that has them (None if neither has)."""
    gated = views.gated_models(result)
    if wanted in gated:
        return wanted
    return gated[0] if gated else None


STOPPING = "The server is shutting down and stopped this computation. Try again once it is back."


def time_limit_message(limit: float | None, method: str = "gradcam") -> str:
    message = f"Explaining took longer than this server's limit of {limit:g} s and was stopped."
    if method == "scorecam":
        return (
            f"{message} ScoreCAM runs each model once per scored channel ({SCORECAM_CHANNELS} "
            "at any layer) on the whole image: choose the centre crop (fewer pixels) or a "
            "one-pass method such as Grad-CAM."
        )
    return f"{message} Try a smaller image or GradCAM; the server's operator can raise the limit."


def _one_of(choices: Sequence[str]) -> Callable[[str | None], str | None]:
    return lambda value: value if value in choices else None


def _url_class(value: str | None) -> str | None:
    try:
        index = parse_target(value) if value else None
    except gr.Error:
        return None
    return None if index is None else CLASS_CHOICES[index + 1]


def _url_group(value: str | None) -> int | None:
    if value and value.isascii() and value.isdigit() and len(value) <= 4:
        return int(value)
    return None


# A view's state in the page's address, by the query key each control has there (the order of
# `Handlers.from_url`'s outputs, after the image): what a shared link restores.
URL_KEYS: dict[str, Callable[[str | None], Any]] = {
    "example": _one_of([Path(name).stem for name in EXAMPLES]),
    "class": _url_class,
    "method": _one_of(list(METHODS)),
    "layer": _one_of(list(LAYERS)),
    "unit": _one_of(UNIT_NAMES),
    "group": _url_group,
    "a": _one_of(list_models()),
    "b": _one_of(list_models()),
    "gates": _one_of([name for name in list_models() if get_model(name).gates]),
    "input": lambda value: {"crop": CROP, "whole": WHOLE}.get(value or ""),
}
# The address follows the controls (in the browser: no request), in `URL_KEYS`' order.
WRITE_URL = r"""
(example, target, method, layer, unit, group, a, b, gates, input) => {
    const defaults = DEFAULTS;
    const values = {example, class: (/^\d+/.exec(target || "") || [""])[0], method, layer,
                    unit, group: String(group), a, b, gates, input: input === CROP ? "crop" : ""};
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(values)) {
        if (value && value !== defaults[key]) query.set(key, value);
    }
    const text = query.toString();
    history.replaceState(null, "", text ? "?" + text : location.pathname);
    return [];
}
""".replace(
    "DEFAULTS",
    json.dumps(
        {
            "method": "gradcam",
            "layer": DEFAULT_LAYER,
            "unit": DEFAULT_UNIT,
            "group": "0",
            "a": DEFAULT_PAIR[0],
            "b": DEFAULT_PAIR[1],
            "gates": DEFAULT_PAIR[1],
        }
    ),
).replace("CROP", json.dumps(CROP))


def session_of(request: gr.Request | None) -> str:
    """The id a request's session is known by: `LOCAL_SESSION` for calls from Python, and a
    new id, shared with nobody, for a request that comes without one."""
    if request is None:
        return LOCAL_SESSION
    return getattr(request, "session_hash", None) or f"anonymous-{uuid.uuid4()}"


def _error(message: str, title: str = "Error") -> gr.Error:
    return gr.Error(message, title=title, print_exception=False)


# --- failures on the page: kept results, a hint next to the control ------------------------------

# API callers get a failure as an error; the page keeps its last good result and shows the
# failure as a hint beside the control a person would change, until their next action (a toast
# faded after ~10 s, and gradio replaced every output with an "Error" badge).
HINT_PLACES = ("image", "run", "models", "target", "method", "view")
PLACE_OF = {  # by the failure's title; anything else goes under the Explain button ("run")
    "No image": "image",
    "Nothing to show yet": "image",
    "This image can't be used": "image",
    "Links are not fetched": "image",
    "File not allowed": "image",
    "Same model twice": "models",
    "Unknown class": "target",
    "Too slow": "method",
    "Unknown unit": "view",
    "Unknown group": "view",
}
# What a view update's success clears: its own hint, and "an image first" (there is one now).
VIEW_HINTS = ("view",)
# One hint for every action that needs an image before there is one.
EMPTY = "Upload an image or pick an example first."
SUPERSEDED = "Superseded"


class Superseded(Exception):
    """A page's long explanation was replaced by a newer request of the same page."""


def hint_values(error: gr.Error | None) -> tuple[dict[str, Any], ...]:
    """The page's hints after an event: none, or `error`'s beside its control."""
    place = None if error is None else PLACE_OF.get(error.title, "run")
    if error is not None and error.title in ("No image", "Nothing to show yet"):
        text = EMPTY
    else:
        # The control is beside the hint: the API's name for it is not needed there.
        message = "" if error is None else re.sub(r" \(parameter `\w+`\)", "", error.message)
        text = "" if error is None else f"**{error.title}.** {message}"
    return tuple(
        gr.update(value=text if p == place else "", visible=p == place) for p in HINT_PLACES
    )


def on_page(
    method: Callable[..., Any], outputs: int, clears: Sequence[str] = HINT_PLACES
) -> Callable[..., tuple]:
    """A handler as the page calls it: its `outputs` values and the hints (`hint_values`).

    On a failure every output keeps what it shows (`gr.skip()`) and the hint says what went
    wrong; a superseded request changes nothing. A success clears the hints at `clears` only:
    a view update leaves a hint about the explanation's inputs (an unknown class still in its
    box, an unusable upload) in place. The API's endpoints call the handlers themselves, and
    get errors."""

    @functools.wraps(method)
    def page(self: Handlers, *args: Any, **kwargs: Any) -> tuple:
        try:
            values = method(self, *args, **kwargs)
        except gr.Error as error:
            if error.title == SUPERSEDED:
                return (gr.skip(),) * (outputs + len(HINT_PLACES))
            return (*(gr.skip(),) * outputs, *hint_values(error))
        values = (values,) if outputs == 1 else values
        cleared = hint_values(None)
        hints = [h if p in clears else gr.skip() for p, h in zip(HINT_PLACES, cleared, strict=True)]
        return (*values, *hints)

    return page


class LongJobs:
    """Each page's newest explanation request and, when it asks for a long method, the call that
    the long lane runs (`Handlers.page_explain`). A newer request of the same page supersedes it:
    the long computation stops at its next progress report and shows nothing. Bounded like
    `Sessions`."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._newest: OrderedDict[str, tuple[int, inspect.BoundArguments | None]] = OrderedDict()
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, session: str, call: inspect.BoundArguments | None) -> int:
        """Record a page's new request (`call`: a long one's arguments); returns its token."""
        with self._lock:
            token = next(self._tokens)
            self._newest[session] = (token, call)
            self._newest.move_to_end(session)
            while len(self._newest) > self.capacity:
                self._newest.popitem(last=False)
            return token

    def take(self, session: str) -> tuple[int, inspect.BoundArguments] | None:
        """The page's waiting long call, once (None: none waits, or a newer request came)."""
        with self._lock:
            token, call = self._newest.get(session, (0, None))
            if call is None:
                return None
            self._newest[session] = (token, None)
            return token, call

    def current(self, session: str, token: int) -> bool:
        with self._lock:
            return self._newest.get(session, (0, None))[0] == token


class Handlers:
    """The app's event handlers around one `Engine`; no gradio layout here."""

    def __init__(
        self, engine: Engine, space: TempSpace | None = None, sessions: Sessions | None = None
    ) -> None:
        self.engine = engine
        self.space = space or TempSpace()
        self.sessions = Sessions() if sessions is None else sessions
        self.jobs = LongJobs()
        # The gate summary and the gate mosaic are drawn while the handler's thread draws the
        # other pictures: numpy, cv2 and PIL release the GIL for part of it, so the two cores
        # share some of the work (measured in one process: a request answered from the cache
        # 62 → 49 ms, a gate view 38 → 29 ms; a request's pictures take 53 ms one after another,
        # 42–48 ms this way). Threads that live on, shared by all requests.
        self._render = ThreadPoolExecutor(2, thread_name_prefix="sa-viz-render")
        # The analyses this session computed for a result (set by the Analyses tab's events).
        self.analyses_of: Callable[[gr.Request | None, Explanation], dict[str, Any]] = (
            lambda _request, _result: {}
        )

    @handler
    def weights_status(self) -> gr.Markdown:
        try:
            statuses = self.engine.statuses(timeout=300)
        except ModelsUnavailable as error:
            return gr.Markdown(f"**{error}**", elem_classes=["untrained-banner"])
        ok = not any(s.untrained for s in statuses)
        return gr.Markdown(
            status_markdown(statuses), elem_classes=["ok-banner" if ok else "untrained-banner"]
        )

    @handler
    def captions(
        self,
        model_a: str = DEFAULT_PAIR[0],
        model_b: str = DEFAULT_PAIR[1],
        gate_model: str | None = None,
    ) -> tuple:
        """The page's names for the chosen pair, once the page opens and after each explanation:
        each model's table and CAM picture (with "UNTRAINED" where it is), the difference map's
        "B − A", the gate explorer's model choices and whether its group slider moves.

        A page event of its own: the explanation returns values only, so its API output stays
        plain (an update of a label would reach gradio_client as a dict) and gradio builds no
        new component per output and request."""
        try:
            statuses = {s.model: s for s in self.engine.statuses(timeout=300)}
        except ModelsUnavailable:
            return (gr.skip(),) * (3 * len(SLOTS) + 3)
        pair = [name for name in (model_a, model_b) if name in statuses]
        if len(pair) != 2 or pair[0] == pair[1]:
            return (gr.skip(),) * (3 * len(SLOTS) + 3)
        named = [views.model_caption(statuses[name]) for name in pair]
        gated = [name for name in pair if get_model(name).gates]
        shown = gate_model if gate_model in gated else (gated[0] if gated else None)
        groups = max((u.groups for u in unit_layouts(shown).values()), default=1) if shown else 1
        return (
            *(gr.update(label=f"{caption}: top-5") for caption in named),
            *(gr.update(label=caption) for caption in named),
            gr.update(label=views.difference_label([get_model(n).title for n in pair])),
            gr.update(choices=[model_choice(n) for n in gated], value=shown),
            group_slider(groups),
        )

    @handler
    def explain(
        self,
        image: str | None,
        crop_mode: str = WHOLE,
        target: str = OWN_TOP1,
        method: str = "gradcam",
        layer: str = DEFAULT_LAYER,
        colormap: str = render.DEFAULT_COLORMAP,
        alpha: float = render.DEFAULT_ALPHA,
        normalization: str = "per model",
        unit: str = DEFAULT_UNIT,
        group: int = 0,
        scale: str = "unit range",
        model_a: str = DEFAULT_PAIR[0],
        model_b: str = DEFAULT_PAIR[1],
        gate_model: str | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's idiom)
        event: gr.EventData = None,  # gradio fills it in for events from the page
        request: gr.Request = None,  # gradio fills it in; None: called from Python
    ) -> tuple:
        """Run the two chosen models, `model_a` then `model_b`; return the page's 12 outputs
        (`captions` names them). The session keeps the result (`Sessions`) for later view
        updates and exports."""
        if not image:
            if isinstance(getattr(event, "target", None), gr.Image):
                return (gr.skip(),) * EXPLAIN_OUTPUTS  # the page's image was cleared
            raise _error("Upload an image first (or pick one of the examples).", "No image")
        result = self._explain(
            image,
            crop_mode,
            target,
            method,
            layer,
            request,
            lambda f, t: progress(f, desc=t),
            (model_a, model_b),
        )
        shown = gate_model_of(result, gate_model)
        overview = self._render.submit(self._overview, result, shown)
        outputs = (
            views.prediction_summary(result),
            *self._tables(result),
            *self._cams(result, colormap, alpha, normalization),
            *self._gates(result, unit, group, colormap, alpha, scale, shown),
        )
        outputs = (*outputs, overview.result())
        self._keep(request, result, image)  # only once the page can show it
        return outputs

    @handler
    def explain_json(
        self,
        image: str | None,
        crop_mode: str = WHOLE,
        target: str = OWN_TOP1,
        method: str = "gradcam",
        layer: str = DEFAULT_LAYER,
        model_a: str = DEFAULT_PAIR[0],
        model_b: str = DEFAULT_PAIR[1],
        analyses: str = "",
        request: gr.Request = None,
    ) -> dict:
        """/explain_json: the explanation as one JSON document (`explanation_document`)
        instead of the page's outputs; the session keeps the result for view updates. With
        `analyses` ("deletion_insertion,knockout", …), their results too, per model."""
        if not image:
            raise _error("Upload an image first.", "No image")
        result = self._explain(
            image, crop_mode, target, method, layer, request, models=(model_a, model_b)
        )
        self._keep(request, result, image)
        names = [a for a in (analyses or "").split(",") if a]
        found = None
        if names:
            found = self.engine.analyse(lambda loaded: analyse_explanation(result, loaded, names))
        return explanation_document(result, analyses=found)

    @handler
    def update_cams(
        self,
        colormap: str,
        alpha: float,
        normalization: str,
        request: gr.Request = None,
    ) -> tuple:
        return self._cams(self._need(request), colormap, alpha, normalization)

    @handler
    def update_gates(
        self,
        unit: str,
        group: int,
        colormap: str,
        alpha: float,
        scale: str,
        gate_model: str | None = None,
        request: gr.Request = None,
    ) -> tuple:
        result = self._need(request)
        return self._gates(
            result, unit, group, colormap, alpha, scale, gate_model_of(result, gate_model)
        )

    @handler
    def switch_gates(
        self,
        unit: str,
        group: int,
        colormap: str,
        alpha: float,
        scale: str,
        gate_model: str | None = None,
        request: gr.Request = None,
    ) -> tuple:
        """Another model's gates in the explorer: its pictures, its gate statistics and whether
        the group slider moves (a unit with one group holds it at 0)."""
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        gates = self._gates(result, unit, group, colormap, alpha, scale, shown)
        units = result.models[shown].gates if shown else {}
        groups = units[unit].groups if unit in units else 1
        return (*gates, self._overview(result, shown), group_slider(groups))

    @handler
    def export(
        self,
        colormap: str,
        alpha: float,
        normalization: str,
        unit: str,
        group: int,
        scale: str,
        gate_model: str | None = None,
        request: gr.Request = None,
    ) -> str:
        result = self._need(request)
        folder = self.space.folder()
        with stage("export"):
            path = write_zip(
                result,
                folder / "sa-viz-export.zip",
                unit=unit,
                group=int(group),
                colormap=colormap,
                alpha=alpha,
                normalization=normalization,
                scale=scale,
                gate_model=gate_model_of(result, gate_model),
                analyses=self.analyses_of(request, result),
            )
        return str(path)

    @handler
    def choose_prediction(self, table: Any, evt: gr.EventData = None) -> str:
        """A click on a prediction makes its class the CAM target of both models.

        `gr.EventData`, not `gr.SelectData`: gradio builds a SelectData from the event's data
        before any handler runs, and raises a TypeError without a message when a caller sends
        none (an API call); this handler reads the click's row itself and says what to do."""
        click = getattr(evt, "_data", None)
        try:  # the table arrives as sent (the event has preprocess=False)
            index = click["index"]
            row = index[0] if isinstance(index, (list, tuple)) else index
            rows = table["data"] if isinstance(table, dict) else table
            index = re.search(r"\d+", str(rows[int(row)][0]))  # "▶ 283 · Persian cat"
            return CLASS_CHOICES[class_index(index.group()) + 1]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise _error(
                "This event follows a click on a prediction in the page; it is not part of the "
                "API. Send the class as `target` to /explain instead.",
                "Not an API endpoint",
            ) from None

    @handler
    def update_look(
        self,
        colormap: str,
        alpha: float,
        normalization: str,
        unit: str,
        group: int,
        scale: str,
        gate_model: str | None = None,
        request: gr.Request = None,
    ) -> tuple:
        """A new colormap or opacity: the CAMs and the gate pictures (`update_cams` and
        `update_gates` in one event, so the page gets one answer, and one hint without an image)."""
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        return (
            *self._cams(result, colormap, alpha, normalization),
            *self._gates(result, unit, group, colormap, alpha, scale, shown),
        )

    @handler
    def pick_group(
        self,
        unit: str,
        gate_model: str | None = None,
        evt: gr.EventData = None,
        request: gr.Request = None,
    ) -> Any:
        """A click on a tile of the unit's mosaic opens that group: the group slider moves to it
        (unchanged for a click beside the tiles). `gr.EventData`, as in `choose_prediction`."""
        click = getattr(evt, "_data", None) or {}
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        try:
            x, y = (float(v) for v in click["index"])
        except (KeyError, TypeError, ValueError):
            return gr.skip()
        group = None if shown is None else views.group_at(result, unit, x, y, model=shown)
        return gr.skip() if group is None else group

    def from_url(self, request: gr.Request = None) -> tuple:
        """The view a shared link names (`URL_KEYS`, e.g. `?example=chelsea&class=281&layer=
        layer3&unit=layer3.0&group=5`): its controls set, its example loaded, which starts the
        explanation. What the link does not name, or names wrongly, stays as it is."""
        query = dict(getattr(request, "query_params", None) or {})
        values = [read(query.get(key)) for key, read in URL_KEYS.items()]
        example = values[0]
        image = gr.skip()
        if example is not None:  # a copy in the app's space: the package may lie anywhere
            image = str(shutil.copy(ASSETS / f"{example}.jpg", self.space.folder()))
        wrong = [
            f"{key}={str(query[key])[:40]}"
            for key, value in zip(URL_KEYS, values, strict=True)
            if query.get(key) and value is None
        ]
        # "Gates of" lists the gated models of the pair: the link's pair's, or a choice outside
        # its list makes gradio refuse every later event of the page (seen: a link with gates=
        # se_resnet50 and the page's default list).
        a, b, gates = values[6], values[7], values[8]
        pair = (a or DEFAULT_PAIR[0], b or DEFAULT_PAIR[1])
        gated = [n for n in dict.fromkeys(pair) if get_model(n).gates]
        if gates is not None and gates not in gated:
            wrong.append(f"gates={gates}")
        values[8] = (
            gr.update(
                choices=[model_choice(n) for n in gated],
                value=gates if gates in gated else (gated[0] if gated else None),
            )
            if (a or b or gates) and gated
            else None
        )
        note = _error(
            f"This link's {', '.join(wrong)} named nothing this page has: "
            f"{'they were' if len(wrong) > 1 else 'it was'} left at the default.",
            "Link",
        )
        hints = hint_values(note if wrong else None)
        return (image, *(gr.skip() if v is None else v for v in values), *hints)

    # --- the page's events: results kept on a failure, which shows as a hint (`on_page`) -------

    _page_explain = on_page(explain, EXPLAIN_OUTPUTS)
    page_cams = on_page(update_cams, 4, VIEW_HINTS)
    page_gates = on_page(update_gates, 4, VIEW_HINTS)
    page_look = on_page(update_look, 8, VIEW_HINTS)
    page_switch_gates = on_page(switch_gates, 6, VIEW_HINTS)
    page_export = on_page(export, 1, VIEW_HINTS)

    @functools.wraps(explain)
    def page_explain(self, *args: Any, **kwargs: Any) -> tuple:
        """The page's explanation, in the models lane: `explain`'s outputs, the hints, and the
        long lane's trigger. A long method (ScoreCAM) is not computed here: the trigger starts
        `page_explain_long` in a lane of its own, so it never holds up anyone's Grad-CAM."""
        call = inspect.signature(self.explain).bind(*args, **kwargs)
        call.apply_defaults()
        image, method, request = (call.arguments[k] for k in ("image", "method", "request"))
        long = bool(image) and method in METHODS and METHODS[method].long
        token = self.jobs.start(session_of(request), call if long else None)
        if long:
            return (*(gr.skip(),) * EXPLAIN_OUTPUTS, *hint_values(None), str(token))
        return (*self._page_explain(*call.args, **call.kwargs), gr.skip())

    def page_explain_long(
        self,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's idiom)
        request: gr.Request = None,
    ) -> tuple:
        """The long lane: the page's waiting long explanation, with its real progress (one report
        per batch of ScoreCAM's passes). It stops at its next report once the page asks for
        something newer, and then changes nothing on the page."""
        session = session_of(request)
        job = self.jobs.take(session)
        if job is None:
            return (gr.skip(),) * (EXPLAIN_OUTPUTS + len(HINT_PLACES))
        token, call = job

        def report(fraction: float, desc: str | None = None) -> None:
            if not self.jobs.current(session, token):
                raise Superseded
            progress(fraction, desc=desc)

        call.arguments["progress"] = report
        return self._page_explain(*call.args, **call.kwargs)

    # --- pieces -------------------------------------------------------------------------------

    def _explain(
        self,
        image: str,
        crop_mode: str,
        target: str | int | None,
        method: str,
        layer: str,
        request: gr.Request | None,
        progress: Progress | None = None,
        models: Sequence[str] = DEFAULT_PAIR,
    ) -> Explanation:
        """The two models on `image` (or the cache). The caller has the session keep it
        (`_keep`) once it is shown: a result that failed to draw must not become the one later
        view changes draw, under the previous result's tables."""
        if models[0] == models[1]:
            raise _error(
                f"Model A and model B are both {get_model(models[0]).title}: choose two "
                "different models to compare.",
                "Same model twice",
            )
        try:
            class_idx = parse_target(target)
        except gr.Error:
            # An unusable image is said first: with an unknown class still in its box, a bad
            # upload was answered "Unknown class" (seen by a tester).
            prepare_image(image, crop=crop_mode == CROP, limits=self.engine.limits)
            raise
        settings = Settings(crop_mode == CROP, class_idx, layer, method, tuple(models))
        try:
            result = self.engine.explain(image, settings, progress)
        except Stopped:
            raise
        except TimeLimitExceeded:
            raise _error(time_limit_message(self.engine.time_limit, method), "Too slow") from None
        return result

    def _keep(self, request: gr.Request | None, result: Explanation, image: str) -> None:
        """The session's latest result, for view updates and exports."""
        settings = Settings(
            result.image.crop,
            result.requested_class,
            result.layer,
            result.method,
            tuple(result.models),
        )
        self.sessions.keep(session_of(request), self.engine.remember(result, image, settings))

    def _need(self, request: gr.Request | None) -> Explanation:
        """The session's latest result (`NothingYet` / `ResultExpired` say why not)."""
        return self.engine.recall(self.sessions.get(session_of(request)))

    # Values only, no gr.update(label=...) or components: for either, gradio builds a new
    # component per output and request (its postprocessing of an /explain result took 27 ms
    # that way, 18 ms now, measured in one process); `captions` sets the labels once per page.
    @staticmethod
    @stage("drawing")
    def _tables(result: Explanation) -> list[dict]:
        return [
            {"data": views.prediction_rows(result, name), "headers": TABLE_HEADERS}
            for name in result.models
        ]

    @stage("drawing")
    def _cams(self, result: Explanation, colormap: str, alpha: float, normalization: str) -> tuple:
        view = views.cam_view(result, colormap=colormap, alpha=alpha, normalization=normalization)
        images = [self.space.picture(view.overlays[name]) for name in result.models]
        text = views.targets_text(result) + "  \n" + views.agreement_text(view)
        return (*images, self.space.picture(view.difference), text)

    @stage("drawing")
    def _overview(self, result: Explanation, model: str | None) -> str | None:
        if model is None:
            return None
        return self.space.picture(views.summary_picture(result, model), lossless=True)

    @stage("drawing")
    def _gates(
        self,
        result: Explanation,
        unit: str,
        group: int,
        colormap: str,
        alpha: float,
        scale: str,
        model: str | None,
    ) -> tuple:
        """The gate explorer's pictures and text for `model`'s `unit`."""
        if model is None:
            note = views.render.note_panel(
                "No attention gates", "Neither chosen model has attention units."
            )
            picture = self.space.picture(note, lossless=True)
            return (picture, picture, picture, NO_GATES)
        gates = result.models[model].gates
        if unit not in gates:
            raise _error(
                f"Attention unit (parameter `unit`) must be one of {', '.join(gates)} for "
                f"{result.models[model].title}; got {unit!r}.",
                "Unknown unit",
            )
        groups = gates[unit].groups
        if groups == 1:
            group = 0  # a unit without groups (SE): the group does not matter
        if not 0 <= int(group) < groups:
            raise _error(
                f"Group (parameter `group`) must be a whole number from 0 to {groups - 1} for "
                f"{unit} of {result.models[model].title}; got {group}.",
                "Unknown group",
            )
        group = int(group)
        look = {"colormap": colormap, "alpha": alpha, "scale": scale, "model": model}
        mosaic = self._render.submit(
            lambda: self.space.picture(views.gate_mosaic(result, unit, group, **look))
        )
        heat = self.space.picture(
            views.channel_gates(result, unit, group, model=model), lossless=True
        )
        detail = self.space.picture(views.group_detail(result, unit, group, **look))
        text = views.gate_range_text(result, unit, scale, model=model)
        return (mosaic.result(), heat, detail, text)


# --- what every event checks before gradio processes its inputs -------------------------------

# LINK and LINKS_REFUSED: from sa_viz.app.guard, which refuses links in file routes the same way


NO_DEFAULT = object()


@dataclass(frozen=True)
class Param:
    """One input of the app's events, as a caller names it: its label on the page, its name in
    the API, and a check that returns what is wrong with a value (None: nothing)."""

    label: str
    name: str
    check: Callable[[Any], str | None]
    component: Any = None  # a component with checks of its own, kept for every session
    # A parameter added after callers existed: a call that stops before it gets this value.
    default: Any = NO_DEFAULT

    def problem(self, value: Any) -> str | None:
        wrong = self.check(value)
        if wrong is None:
            return None
        return f"{self.label} (parameter `{self.name}`) {wrong}; got {describe(value)}."


def describe(value: Any) -> str:
    if value is None:
        return "nothing (None)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "…"
        return f"the text {shown!r}"
    shown = reprlib.repr(value)  # bounded, however large the value
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '…'}"


def one_of(choices: list[str]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        return "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def number(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if _is_number(value) and low <= value <= high:
            return None
        return f"must be a number from {low:g} to {high:g}"

    return check


def whole_number(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if _is_number(value) and low <= value <= high and float(value).is_integer():
            return None
        return f"must be a whole number from {low} to {high}"

    return check


def file_payload(value: Any) -> str | None:
    if value is None or isinstance(value, dict):
        return None  # no image: the handler asks for one; a payload: `bounded_image_input`
    return (
        "must be a file: `handle_file(path)` from gradio_client, an upload's "
        '{"path": …} or {"url": "data:image/…;base64,…"}'
    )


def table_payload(value: Any) -> str | None:
    if value is None or (
        isinstance(value, dict)
        and isinstance(value.get("headers"), list)
        and isinstance(value.get("data"), list)
        and all(isinstance(row, list) for row in value["data"])
    ):
        return None
    return "is what the page sends when a prediction is clicked; this event is not part of the API"


def class_choice(value: Any) -> str | None:
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return None  # which class it names is checked by `parse_target`, with its own sentence
    return f"must be a class name, a class index 0–999 or {OWN_TOP1!r}"


def has_link(value: Any) -> bool:
    """True if `value` holds a file payload that names a URL instead of a file (gradio would
    download it into its cache before any handler runs)."""
    if isinstance(value, dict):
        path, url = value.get("path"), value.get("url")
        if isinstance(path, str) and LINK.match(path):
            return True
        if not path and isinstance(url, str) and LINK.match(url):
            return True
        return any(has_link(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_link(v) for v in value)
    return False


def guard_events(
    demo: gr.Blocks,
    params: dict[gr.components.Component, Param],
    on_refusal: Callable[[], None] = lambda: None,
) -> None:
    """Check every event's inputs before gradio touches them, and keep none of them afterwards.

    gradio moves each input's files into its cache first, downloading any http(s) URL it finds
    in a file payload (of any component), then stores each input's payload in the session's
    copy of the page's config (for deep links, which this app does not offer), then runs the
    components' own preprocessing, whose errors reach a caller without a message when
    `show_error` is off. So, on this app's Blocks only (an instance attribute, like
    `bounded_image_input`'s), `preprocess_data` first refuses any link, then checks each
    parameter in `params` with a sentence that names it, and afterwards drops the stored
    payloads (a 40 MB data: URL stayed in memory per session before).
    """
    by_id = {component._id: param for component, param in params.items()}
    original = demo.preprocess_data

    async def preprocess_data(
        block_fn: BlockFunction,
        inputs: list[Any],
        state: SessionState | None,
        *args: Any,
        **kwargs: Any,
    ) -> list[Any]:
        try:
            refusal = check_inputs(block_fn, inputs, state, by_id)
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
            raise _error(message, title)
        try:
            return await original(block_fn, inputs, state, *args, **kwargs)
        finally:
            forget_inputs(state, block_fn)

    demo.preprocess_data = preprocess_data


def check_inputs(
    block_fn: BlockFunction,
    inputs: list[Any],
    state: SessionState | None,
    by_id: dict[int, Param],
) -> gr.Error | None:
    """Raise a `gr.Error` for an event's inputs that `guard_events` refuses (`by_id`: the
    checked parameters by their component's id)."""
    missing = [by_id.get(b._id) for b in block_fn.inputs[len(inputs) :]]
    if missing and all(p is not None and p.default is not NO_DEFAULT for p in missing):
        # Parameters added later (the models to compare): older callers leave them out.
        inputs.extend(p.default for p in missing)
    if len(inputs) < len(block_fn.inputs):
        wanted = [getattr(by_id.get(b._id), "name", None) or str(b) for b in block_fn.inputs]
        raise _error(
            f"This endpoint takes {len(wanted)} parameters ({', '.join(wanted)}); "
            f"got {len(inputs)}.",
            "Invalid parameter",
        )
    problems = []
    for block, value in zip(block_fn.inputs, inputs, strict=False):
        if has_link(value):
            raise _error(LINKS_REFUSED, "Links are not fetched")
        param = by_id.get(block._id)
        problem = param.problem(value) if param is not None else None
        if problem:
            problems.append(problem)
        if param is not None and param.component is not None:
            # An update of the component (an example's click returns one) makes gradio
            # build a plain copy of it for the session, without this app's checks.
            if state is not None and block._id in state.blocks_config.blocks:
                state.blocks_config.blocks[block._id] = param.component
            if isinstance(value, dict):
                check_image_payload(value)
    if problems:
        raise _error(" ".join(problems), "Invalid parameter")
    return None


def forget_inputs(state: Any, block_fn: Any) -> None:
    """Drop the input payloads gradio stored in the session's config (see `guard_events`)."""
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
    set where this gradio has it (tests/test_ui.py checks that it does); a queued request then
    starts at most 10 ms later. The same for gradio's event analytics (below).
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


class InputColumn(NamedTuple):
    """The page's left column: the image and what to explain."""

    image: gr.Image
    examples: gr.Examples
    run: gr.Button
    model_a: gr.Dropdown
    model_b: gr.Dropdown
    crop_mode: gr.Radio
    target: gr.Dropdown
    method: gr.Dropdown
    layer: gr.Radio
    hints: dict[str, gr.Markdown]  # by place (`HINT_PLACES`), except "view"


def hint(place: str) -> gr.Markdown:
    """Where the page says what went wrong with the control above it (hidden until then)."""
    return gr.Markdown(visible=False, elem_id=f"hint-{place}", elem_classes=["hint"])


def input_column() -> InputColumn:
    """The left column: image input, examples, the Explain button and what to explain."""
    with gr.Column(scale=1, min_width=320):
        image = bounded_image_input(
            label="Image (upload, drop, paste or webcam)",
            elem_id="input-image",
            sources=["upload", "webcam", "clipboard"],
            height=300,
        )
        hints = {"image": hint("image")}
        examples = gr.Examples(
            examples=[[str(ASSETS / n)] for n in EXAMPLES if (ASSETS / n).exists()],
            inputs=[image],
            label="Examples (scikit-image sample photos: CC0 / public domain)",
            api_visibility="private",  # a click on the page
        )
        run = gr.Button("Explain", variant="primary", elem_id="explain")
        hints["run"] = hint("run")
        with gr.Accordion("What to explain", open=True):
            with gr.Row():
                model_a = gr.Dropdown(
                    MODEL_CHOICES,
                    value=DEFAULT_PAIR[0],
                    label="Model A",
                    elem_id="model-a",
                )
                model_b = gr.Dropdown(
                    MODEL_CHOICES,
                    value=DEFAULT_PAIR[1],
                    label="Model B",
                    info="The difference map shows B − A.",
                    elem_id="model-b",
                )
            hints["models"] = hint("models")
            with gr.Accordion("About the models", open=False):
                gr.Markdown(models_info())
            crop_mode = gr.Radio(
                [WHOLE, CROP],
                value=WHOLE,
                label="Input",
                info="Whole image: shorter side 224, nothing cut off. Centre crop: as in "
                "ImageNet evaluation.",
            )
            target = gr.Dropdown(
                CLASS_CHOICES,
                value=OWN_TOP1,
                filterable=True,
                allow_custom_value=True,  # API callers may send "281" or "tabby"
                label="CAM target class",
                info="Type to search the 1000 ImageNet classes, or click a prediction.",
                elem_id="target",
            )
            hints["target"] = hint("target")
            # The API page and view_api() list a dropdown's choices as its type: the 1001 class
            # names made view_api() print 61 KB. Described in words instead (on this instance).
            target.api_info = lambda: {
                "type": "string",
                "description": f"an ImageNet class name or index 0–999, or {OWN_TOP1!r}",
            }
            method = gr.Dropdown(
                METHOD_CHOICES, value="gradcam", label="CAM method", elem_id="cam-method"
            )
            layer = gr.Radio(
                list(LAYERS),
                value=DEFAULT_LAYER,
                label="CAM layer",
                info="The output of the stage's last bottleneck.",
                elem_id="cam-layer",
            )
            hints["method"] = hint("method")
    return InputColumn(
        image, examples, run, model_a, model_b, crop_mode, target, method, layer, hints
    )


def cam_tab(picture: dict[str, Any]) -> tuple[gr.Radio, list[gr.Image], gr.Image, gr.Markdown]:
    """The Grad-CAM tab: (its CAM scale, the two models' CAMs, their difference, its text)."""
    with gr.Tab("Grad-CAM"):
        normalization = gr.Radio(
            list(views.NORMALIZATIONS),
            value="per model",
            label="CAM scale",
            info="Per model: each map stretched to its own range. Joint: one "
            "scale for both (from the raw maps), so magnitudes compare.",
        )
        with gr.Row():
            cams = [
                gr.Image(label=get_model(name).title, elem_id=f"cam-{slot}", **picture)
                for slot, name in zip(SLOTS, DEFAULT_PAIR, strict=True)
            ]
            difference = gr.Image(
                label=views.difference_label([get_model(n).title for n in DEFAULT_PAIR]),
                elem_id="cam-difference",
                **picture,
            )
        cam_text = gr.Markdown(elem_id="cam-text")
    return normalization, cams, difference, cam_text


class GateExplorer(NamedTuple):
    """The gate explorer's components."""

    gate_model: gr.Dropdown
    unit: gr.Dropdown
    group: gr.Slider
    scale: gr.Radio
    gate_text: gr.Markdown
    mosaic: gr.Image
    channel: gr.Image
    detail: gr.Image
    overview: gr.Image


def gate_explorer_tab(picture: dict[str, Any]) -> GateExplorer:
    """The gate explorer tab: which model's unit and group, and its pictures."""
    with gr.Tab("Gate explorer"):
        with gr.Row():
            gate_model = gr.Dropdown(
                GATED_CHOICES,
                value=DEFAULT_PAIR[1],
                # Its list follows the pair (`captions`, `from_url`); a value in flight from
                # before a change of list is still a model's name, checked by `guard_events`,
                # not refused by gradio for the rest of the page's life.
                allow_custom_value=True,
                label="Gates of",
                info="A compared model with attention units.",
                elem_id="gate-model",
            )
            unit = gr.Dropdown(
                UNIT_NAMES,
                value=DEFAULT_UNIT,
                label="Attention unit",
                elem_id="gate-unit",
            )
            group = gr.Slider(
                0, MAX_GROUPS - 1, value=0, step=1, label="Group", elem_id="gate-group"
            )
            scale = gr.Radio(
                list(render.GATE_SCALES),
                value="unit range",
                label="Spatial-gate colours",
            )
        gate_text = gr.Markdown(elem_id="gate-text")
        mosaic = gr.Image(
            label="Spatial gates of the unit's groups",
            show_label=False,
            elem_id="gate-mosaic",
            **picture,
        )
        # One below the other, each at the column's width: side by side, the channel-gate
        # heatmap was drawn at half its size (labels 5–7 px on screen).
        detail = gr.Image(
            label="The chosen group", show_label=False, elem_id="gate-detail", **picture
        )
        channel = gr.Image(
            label="Channel gates (groups × c)",
            show_label=False,
            elem_id="gate-channel",
            **picture,
        )
        overview = gr.Image(
            label="All units: gate statistics",
            show_label=False,
            elem_id="gate-summary",
            **picture,
        )
    return GateExplorer(
        gate_model, unit, group, scale, gate_text, mosaic, channel, detail, overview
    )


def export_tab() -> tuple[gr.Button, gr.File]:
    """The Export tab: (its button, the built ZIP)."""
    with gr.Tab("Export"):
        gr.Markdown(
            "Everything for the current image in one ZIP: every picture as a "
            "lossless PNG with the current view settings, predictions, settings "
            "and weights status (JSON), and the raw CAMs and all gate arrays "
            "(NPZ). (On screen, photo-like pictures are JPEG for speed; their "
            "download buttons give that JPEG.)"
        )
        export_button = gr.Button("Build ZIP", elem_id="export")
        export_file = gr.File(label="ZIP", interactive=False, elem_id="export-file")
    return export_button, export_file


@dataclass(frozen=True)
class Page:
    """Every component the page's events read or write."""

    banner: gr.Markdown
    inputs: InputColumn
    summary: gr.Markdown
    tables: list[gr.Dataframe]
    colormap: gr.Dropdown
    alpha: gr.Slider
    normalization: gr.Radio
    cams: list[gr.Image]
    difference: gr.Image
    cam_text: gr.Markdown
    explorer: GateExplorer
    export_button: gr.Button
    export_file: gr.File
    hints: dict[str, gr.Markdown]  # by place, in `HINT_PLACES` order
    long_trigger: gr.Textbox  # set by `Handlers.page_explain` for a long method
    example: gr.Textbox  # the example shown ("chelsea"), for the page's address; "": an upload
    api_only: gr.Button  # the API's endpoints' trigger: nothing on the page presses it
    json_document: gr.JSON
    analyses_names: gr.Textbox  # /explain_json's analyses: nothing on the page sets it
    study: StudyTab
    analyses: AnalysesTab

    @property
    def hint_outputs(self) -> list[gr.Markdown]:
        return [self.hints[place] for place in HINT_PLACES]

    @property
    def view_inputs(self) -> list[gr.components.Component]:
        return [self.colormap, self.alpha, self.normalization]

    @property
    def gate_inputs(self) -> list[gr.components.Component]:
        e = self.explorer
        return [e.unit, e.group, self.colormap, self.alpha, e.scale, e.gate_model]

    @property
    def explain_inputs(self) -> list[gr.components.Component]:
        i, e = self.inputs, self.explorer
        return [
            *(i.image, i.crop_mode, i.target, i.method, i.layer),
            *self.view_inputs,
            *(e.unit, e.group, e.scale, i.model_a, i.model_b, e.gate_model),
        ]

    @property
    def export_inputs(self) -> list[gr.components.Component]:
        e = self.explorer
        return [*self.view_inputs, e.unit, e.group, e.scale, e.gate_model]

    @property
    def cam_outputs(self) -> list[gr.components.Component]:
        return [*self.cams, self.difference, self.cam_text]

    @property
    def gate_outputs(self) -> list[gr.components.Component]:
        e = self.explorer
        return [e.mosaic, e.channel, e.detail, e.gate_text]

    @property
    def switch_outputs(self) -> list[gr.components.Component]:
        """`Handlers.page_switch_gates`'s: the gates, the overview, the slider, the hints."""
        e = self.explorer
        return [*self.gate_outputs, e.overview, e.group, *self.hint_outputs]

    @property
    def explain_outputs(self) -> list[gr.components.Component]:
        return [
            self.summary,
            *self.tables,
            *self.cam_outputs,
            *self.gate_outputs,
            self.explorer.overview,
        ]


def layout(
    picture: dict[str, Any],
    study_limits: StudyLimits = StudyLimits(),  # noqa: B008 (frozen)
    studies_dir: Path | None = None,
    upload_bytes: int = DEFAULT_LIMITS.max_bytes,
) -> Page:
    """The page's components, in a `gr.Blocks` context."""
    titles = " · ".join(get_model(n).title for n in list_models())
    gr.Markdown(
        "# SA-Viz · where two CNNs look, and what their attention gates do\n"
        f"Models: {titles}. Upload an image: both chosen models classify it, **Grad-CAM** "
        "shows where each looks, and the **gate explorer** shows the gates of every "
        "attention unit of the models that have them (*About the models*, on the left, "
        "says which and where each comes from)."
    )
    banner = gr.Markdown(
        "Loading the models…", elem_classes=["untrained-banner"], elem_id="weights-status"
    )
    with gr.Row(equal_height=False):
        inputs = input_column()
        hints = dict(inputs.hints)
        # Below ~1000 px the two columns no longer fit side by side (320 + 640 px): the
        # results go under the inputs at full width instead of squeezing the tables to one
        # digit per line (seen at 800 px).
        with gr.Column(scale=2, min_width=RESULTS_MIN_WIDTH):
            summary = gr.Markdown(elem_id="summary")
            with gr.Row():
                tables = [
                    gr.Dataframe(
                        headers=TABLE_HEADERS,
                        label=f"{get_model(name).title}: top-5",
                        interactive=False,
                        wrap=True,
                        column_widths=["56%", "20%", "24%"],
                        elem_id=f"top5-{slot}",
                    )
                    for slot, name in zip(SLOTS, DEFAULT_PAIR, strict=True)
                ]
            with gr.Row():
                colormap = gr.Dropdown(
                    list(render.COLORMAPS),
                    value=render.DEFAULT_COLORMAP,
                    label="Colormap",
                    elem_id="colormap",
                )
                alpha = gr.Slider(
                    0.0,
                    1.0,
                    value=render.DEFAULT_ALPHA,
                    step=0.05,
                    label="Overlay opacity",
                    elem_id="opacity",
                )
            hints["view"] = hint("view")
            with gr.Tabs():
                normalization, cams, difference, cam_text = cam_tab(picture)
                explorer = gate_explorer_tab(picture)
                analyses = analyses_tab(picture)
                export_button, export_file = export_tab()
                study = study_tab(study_limits, studies_dir, upload_bytes)
    return Page(
        banner=banner,
        inputs=inputs,
        summary=summary,
        tables=tables,
        colormap=colormap,
        alpha=alpha,
        normalization=normalization,
        cams=cams,
        difference=difference,
        cam_text=cam_text,
        explorer=explorer,
        export_button=export_button,
        export_file=export_file,
        hints={place: hints[place] for place in HINT_PLACES},
        long_trigger=gr.Textbox(visible=False),
        example=gr.Textbox(visible=False),
        api_only=gr.Button(visible=False),
        json_document=gr.JSON(visible=False),
        analyses_names=gr.Textbox("", visible=False),
        study=study,
        analyses=analyses,
    )


# View updates and exports: their own lane, several at once, so none waits behind another
# user's explanation or behind another view update that computes an evicted result again
# (`Engine.recall` lets at most two do that at once). The page's explanations: one at a time in
# the models lane, long methods one at a time in a lane of their own; the API's explanations in
# theirs, two at once (a long one beside a one-pass one).
VIEW_LANE = {"concurrency_id": "views", "concurrency_limit": VIEW_LANE_SIZE}
API_LANE = {"concurrency_id": "api", "concurrency_limit": 2}


def page_events(demo: gr.Blocks, handlers: Handlers, page: Page) -> None:
    """The page's own events: private (not in the API), each answering with the hints."""
    i, e = page.inputs, page.explorer
    own = {"api_visibility": "private", "trigger_mode": "always_last"}
    views_quietly = {"show_progress": "hidden", **own, **VIEW_LANE}
    demo.load(handlers.weights_status, outputs=page.banner, api_name="weights_status")
    labels = {
        "inputs": [i.model_a, i.model_b, e.gate_model],
        "outputs": [*page.tables, *page.cams, page.difference, e.gate_model, e.group],
        "api_visibility": "private",  # the page's own names: nothing for an API caller
        "show_progress": "hidden",
        **VIEW_LANE,
    }
    demo.load(handlers.captions, **labels)
    explain = {
        "fn": handlers.page_explain,
        "inputs": page.explain_inputs,
        "outputs": [*page.explain_outputs, *page.hint_outputs, page.long_trigger],
        "api_name": "page_explain",
        "concurrency_id": "models",
        **own,
    }
    # `.input`: a person's change; a value set by the page itself (a click on a prediction)
    # starts the explanation once, below.
    triggers = [i.run.click, i.image.change]
    triggers += [c.input for c in (i.crop_mode, i.target, i.method, i.layer)]
    triggers += [i.model_a.input, i.model_b.input]
    gr.on(triggers, **explain).success(handlers.captions, **labels)
    page.long_trigger.change(
        handlers.page_explain_long,
        outputs=[*page.explain_outputs, *page.hint_outputs],
        api_name="page_explain_long",
        concurrency_id="long",
        concurrency_limit=1,
        # Its progress on the line under the CAMs: over every output, it hid the last results
        # for the whole run and was drawn four times.
        show_progress_on=[page.cam_text],
        **own,
    )
    gr.on(
        [page.normalization.input],
        handlers.page_cams,
        inputs=page.view_inputs,
        outputs=[*page.cam_outputs, *page.hint_outputs],
        api_name="page_cams",
        **views_quietly,
    )
    gr.on(
        [page.colormap.input, page.alpha.input],  # dragging, arrow keys, a typed number
        handlers.page_look,
        inputs=[*page.view_inputs, e.unit, e.group, e.scale, e.gate_model],
        outputs=[*page.cam_outputs, *page.gate_outputs, *page.hint_outputs],
        api_name="page_look",
        **views_quietly,
    )
    gr.on(
        [e.unit.input, e.group.input, e.scale.input],
        handlers.page_gates,
        inputs=page.gate_inputs,
        outputs=[*page.gate_outputs, *page.hint_outputs],
        api_name="page_gates",
        **views_quietly,
    )
    e.gate_model.input(
        handlers.page_switch_gates,
        inputs=page.gate_inputs,
        outputs=page.switch_outputs,
        api_name="page_switch_gates",
        **views_quietly,
    )
    page.export_button.click(
        handlers.page_export,
        inputs=page.export_inputs,
        outputs=[page.export_file, *page.hint_outputs],
        api_name="page_export",
        api_visibility="private",
        **VIEW_LANE,
    )
    e.mosaic.select(  # a click on a tile opens its group
        handlers.pick_group,
        inputs=[e.unit, e.gate_model],
        outputs=e.group,
        api_name="pick_group",
        **views_quietly,
    ).success(
        handlers.page_gates,
        inputs=page.gate_inputs,
        outputs=[*page.gate_outputs, *page.hint_outputs],
        api_name="page_gates_picked",
        **views_quietly,
    )
    address(demo, handlers, page)
    for slot, table in zip(SLOTS, page.tables, strict=True):
        table.select(
            handlers.choose_prediction,
            inputs=table,
            outputs=i.target,
            api_name=f"choose_prediction_{slot}",
            api_visibility="private",  # a click on the page; nothing an API caller can send
            preprocess=False,  # the handler reads the table as sent, or says what to do
            **VIEW_LANE,
        ).success(**{**explain, "api_name": f"page_explain_{slot}"})


def address(demo: gr.Blocks, handlers: Handlers, page: Page) -> None:
    """The view in the page's address: set from it when the page opens, kept up to date in the
    browser as the controls change (`URL_KEYS`), so a link shares it and a reload keeps it."""
    i, e = page.inputs, page.explorer
    controls = [i.target, i.method, i.layer, e.unit, e.group, i.model_a, i.model_b]
    controls += [e.gate_model, i.crop_mode]
    demo.load(
        handlers.from_url,
        outputs=[i.image, page.example, *controls, *page.hint_outputs],
        api_name="from_url",
        api_visibility="private",
        **VIEW_LANE,
    )
    names = [Path(name).stem for name in EXAMPLES]

    def example_name(chosen: Any) -> str:  # gr.Examples' dataset gives (index, sample)
        index = chosen[0] if isinstance(chosen, (tuple, list)) and chosen else chosen
        return names[index] if isinstance(index, int) and 0 <= index < len(names) else ""

    i.examples.dataset.click(
        example_name,
        inputs=i.examples.dataset,
        outputs=page.example,
        api_name="example_name",
        api_visibility="private",
        **VIEW_LANE,
    )
    for upload in (i.image.upload, i.image.clear):  # not an example any more
        upload(None, outputs=page.example, js="() => ''", api_visibility="private")
    gr.on(
        [c.change for c in (page.example, *controls)],
        None,
        inputs=[page.example, *controls],
        js=WRITE_URL,
        api_visibility="private",
    )


def api_endpoints(handlers: Handlers, page: Page) -> None:
    """The API: the handlers themselves, whose failures are errors for the caller."""
    i = page.inputs
    endpoints = [
        ("explain", handlers.explain, page.explain_inputs, page.explain_outputs, API_LANE),
        (
            "explain_json",
            handlers.explain_json,
            [
                i.image,
                i.crop_mode,
                i.target,
                i.method,
                i.layer,
                i.model_a,
                i.model_b,
                page.analyses_names,
            ],
            page.json_document,
            API_LANE,
        ),
        ("cam_view", handlers.update_cams, page.view_inputs, page.cam_outputs, VIEW_LANE),
        ("gate_view", handlers.update_gates, page.gate_inputs, page.gate_outputs, VIEW_LANE),
        ("export_zip", handlers.export, page.export_inputs, page.export_file, VIEW_LANE),
    ]
    for name, fn, inputs, outputs, lane in endpoints:
        page.api_only.click(fn, inputs=inputs, outputs=outputs, api_name=name, **lane)


def study_events(demo: gr.Blocks, handlers: StudyHandlers, page: Page) -> None:
    """The Study tab's events: a study in a lane of its own, one at a time; opening a study
    from the studies folder beside the view updates."""
    tab, own = page.study, {"api_visibility": "private"}
    demo.load(handlers.listing, outputs=tab.studies, api_name="studies", **own, **VIEW_LANE)
    tab.run.click(
        handlers.run,
        inputs=[tab.files, page.inputs.model_a, page.inputs.model_b, tab.analyses],
        outputs=tab.outputs,
        api_name="page_study",
        concurrency_id="study",
        concurrency_limit=1,
        show_progress_on=[tab.report],
        **own,
    )
    tab.open.click(
        handlers.open, inputs=tab.studies, outputs=tab.outputs, api_name="page_open_study",
        **own, **VIEW_LANE,
    )  # fmt: skip


def analyses_events(demo: gr.Blocks, handlers: Handlers, page: Page) -> None:
    """The Analyses tab's events (one at a time, in a lane of their own) and its API."""
    a, e = page.analyses, page.explorer
    found = AnalysisHandlers(
        handlers.engine,
        handlers.space,
        handlers._need,
        lambda name, error: failure_message(handlers, name, error),
    )
    handlers.analyses_of = found.exports  # the ZIP export includes them
    lane = {"concurrency_id": "analyses", "concurrency_limit": 1}
    own = {"api_visibility": "private", **lane}
    a.faith_button.click(
        found.faithfulness, inputs=a.box, outputs=[a.faith_plot, a.faith_text, a.hint],
        api_name="page_faithfulness", show_progress_on=[a.faith_text], **own,
    )  # fmt: skip
    knock_inputs = [e.unit, e.gate_model, a.knock_gates, a.knock_value]
    a.knock_button.click(
        found.knockout,
        inputs=knock_inputs,
        outputs=[a.knock_plot, a.knock_text, a.knock_cams, a.knock_charted, a.hint],
        api_name="page_knockout", show_progress_on=[a.knock_text], **own,
    )  # fmt: skip
    views = {"api_visibility": "private", **VIEW_LANE}
    a.knock_plot.select(  # the chart's model and unit, and the bar's group, in the explorer
        found.pick,
        inputs=a.knock_charted,
        outputs=[e.gate_model, e.unit, e.group],
        api_name="pick_bar",
        **views,
    ).success(
        handlers.page_switch_gates,
        inputs=page.gate_inputs,
        outputs=page.switch_outputs,
        api_name="page_gates_bar",
        **views,
    )
    a.chosen_button.click(
        found.chosen,
        inputs=[a.chosen, a.box],
        outputs=[a.chosen_table, a.chosen_text, a.hint],
        api_name="page_analyses", show_progress_on=[a.chosen_table], **own,
    )  # fmt: skip
    # The box: a click on the picture sets a corner; the picture shows the box as typed or
    # clicked, and follows each new result (its CAM changes; a view change redraws it too).
    # In a lane of its own: its redraws never take a place of the views' lane.
    a.box_picture.select(found.corner, inputs=a.box, outputs=a.box, api_name="box_corner", **views)
    gr.on(
        [a.box.change, page.cams[0].change],
        found.box_view,
        inputs=a.box,
        outputs=a.box_picture,
        api_name="box_view",
        api_visibility="private",
        show_progress="hidden",
        trigger_mode="always_last",
        concurrency_id="box",
        concurrency_limit=VIEW_LANE_SIZE,
    )
    a.box_clear.click(None, outputs=a.box, js="() => ''", api_visibility="private")
    for name, fn, inputs in (
        ("faithfulness", found.faithfulness_api, [a.box]),
        ("knockout", found.knockout_api, knock_inputs),
        ("analyses", found.chosen_api, [page.analyses_names, a.box]),
    ):
        page.api_only.click(fn, inputs=inputs, outputs=page.json_document, api_name=name, **lane)


def analysis_names(value: Any) -> str | None:
    """A comma-separated list of registered analyses (or nothing)."""
    if value is None or (
        isinstance(value, str) and all(a in registered_analyses() for a in value.split(",") if a)
    ):
        return None
    return "must name analyses, comma-separated, from " + ", ".join(registered_analyses())


def analysis_list(value: Any) -> str | None:
    """A list of registered analyses (the tab's ticks)."""
    if value is None or (
        isinstance(value, list)
        and all(isinstance(a, str) and a in registered_analyses() for a in value)
    ):
        return None
    return "must be a list of analyses from " + ", ".join(registered_analyses())


def files_payload(value: Any) -> str | None:
    if value is None or (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return None
    return "must be a list of uploaded files"


def build_app(
    engine: Engine,
    *,
    space: TempSpace | None = None,
    sessions: Sessions | None = None,
    study_limits: StudyLimits = StudyLimits(),  # noqa: B008 (frozen)
    studies_dir: Path | None = None,
) -> gr.Blocks:
    """The whole app around an `Engine` (which may still be loading its models)."""
    handlers = Handlers(engine, space, sessions)
    studies = StudyHandlers(engine, handlers.space, study_limits, studies_dir)
    # Pictures arrive as files the handlers encoded (JPEG for photos, PNG for charts).
    picture = {
        "type": "filepath",
        "interactive": False,
        "buttons": ["download", "fullscreen"],
        "elem_classes": ["picture"],
    }
    # delete_cache: gradio's copies of served files older than an hour go, checked every 10 min.
    with gr.Blocks(
        title="SA-Viz: attention in CNNs, two models compared", delete_cache=(600, 3600)
    ) as demo:
        page = layout(picture, study_limits, studies_dir, engine.limits.max_bytes)
        page_events(demo, handlers, page)
        study_events(demo, studies, page)
        analyses_events(demo, handlers, page)
        api_endpoints(handlers, page)
    i, e = page.inputs, page.explorer
    guard_events(
        demo,
        on_refusal=engine.release_refused,
        params={
            i.image: Param("Image", "image", file_payload, component=i.image),
            **{
                table: Param(f"Model {slot.upper()}: top-5", "table", table_payload)
                for slot, table in zip(SLOTS, page.tables, strict=True)
            },
            i.examples.dataset: Param(
                "Example", "index", whole_number(0, len(i.examples.examples) - 1)
            ),
            i.crop_mode: Param("Input", "crop_mode", one_of([WHOLE, CROP])),
            i.target: Param("CAM target class", "target", class_choice),
            i.method: Param("CAM method", "method", one_of(list(METHODS))),
            i.layer: Param("CAM layer", "layer", one_of(list(LAYERS))),
            page.colormap: Param("Colormap", "colormap", one_of(list(render.COLORMAPS))),
            page.alpha: Param("Overlay opacity", "alpha", number(0.0, 1.0)),
            page.normalization: Param(
                "CAM scale", "normalization", one_of(list(views.NORMALIZATIONS))
            ),
            i.model_a: Param("Model A", "model_a", one_of(list_models()), default=DEFAULT_PAIR[0]),
            i.model_b: Param("Model B", "model_b", one_of(list_models()), default=DEFAULT_PAIR[1]),
            e.gate_model: Param(
                "Gates of", "gate_model", one_of(list_models()), default=DEFAULT_PAIR[1]
            ),
            e.unit: Param("Attention unit", "unit", one_of(UNIT_NAMES)),
            # The slider's own range (gradio checks it too, in words that name no parameter); a
            # unit's narrower range is the handler's to say, beside the control on the page.
            e.group: Param("Group", "group", whole_number(0, MAX_GROUPS - 1)),
            e.scale: Param("Spatial-gate colours", "scale", one_of(list(render.GATE_SCALES))),
            page.study.files: Param("Images or a ZIP", "files", files_payload),
            page.analyses.knock_gates: Param("Gates replaced", "gates", one_of(list(GATES))),
            page.analyses.knock_value: Param("Replaced by", "value", one_of(list(VALUES))),
            page.analyses_names: Param("Analyses", "analyses", analysis_names, default=""),
            page.analyses.chosen: Param("Analyses", "analyses", analysis_list, default=[]),
            page.study.analyses: Param("Analyses", "analyses", analysis_list, default=[]),
            page.analyses.box: Param(
                "Object box",
                "box",
                lambda v: None if v is None or isinstance(v, str) else "must be text",
                default="",
            ),
            page.study.studies: Param(
                "Study", "study", lambda v: None if v is None or isinstance(v, str) else "a name"
            ),
        },
    )
    return demo
