"""What every input of every event must be, checked before gradio processes it: one `Param` per
component, each with a sentence that names the parameter; image and file payloads; class names."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio import utils as gradio_utils
from gradio.data_classes import ImageData

from sa_viz import render
from sa_viz.analyses import analyses as registered_analyses
from sa_viz.analyses.knockout import GATES, VALUES
from sa_viz.app.guard import LINK, LINKS_REFUSED
from sa_viz.cam import LAYERS, METHODS
from sa_viz.data.imagenet import class_index
from sa_viz.models import DEFAULT_PAIR, list_models
from sa_viz.outputs.files import FIGURE_FORMATS
from sa_viz.render import views

if TYPE_CHECKING:
    from gradio.state_holder import SessionState

    from sa_viz.app.layout import Page

from sa_viz.app.choices import (
    CROP,
    FIGURE_WIDTH_CHOICES,
    MAX_GROUPS,
    NONE,
    OWN_TOP1,
    PAIR_SEPARATOR,
    SLOTS,
    UNIT_NAMES,
    WHOLE,
    split_pair,
)
from sa_viz.app.gradio_internals import component_id, intercept_inputs, keep_component
from sa_viz.app.hints import (
    refuse,
)

log = logging.getLogger(__name__)


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
        raise refuse(
            'Image (parameter `image`) must be a file payload: {"path": "<an upload>"} or '
            '{"url": "data:image/…;base64,…"} with strings, as `handle_file(path)` makes it.',
            "Invalid parameter",
        )
    if has_link(payload):
        raise refuse(LINKS_REFUSED, "Links are not fetched")
    if not path and url and url.startswith("data:"):
        return url  # the browser sends an uploaded SVG as both; the file is what counts
    if not path:
        raise refuse(
            "Send the image itself: upload the file, or send it as a data: URL. "
            "Links to other servers are not fetched.",
            "No image",
        )
    if not is_upload(path):
        raise refuse(
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
        raise refuse(
            "CAM target class (parameter `target`) is over 200 characters long: send a class "
            "name or an index 0–999.",
            "Unknown class",
        )
    try:
        return class_index(choice)
    except ValueError as error:
        raise refuse(
            f"CAM target class (parameter `target`): {error}. Pick a class from the list.",
            "Unknown class",
        ) from None


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
    # The check of the files a value names, raising a gr.Error with its own sentence: gradio's
    # own checks of file payloads answer without a message and log a traceback.
    uploads: Callable[[Any], Any] | None = None

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


def one_of(choices: list[str], empty: bool = False) -> Callable[[Any], str | None]:
    """One of `choices`; `empty`: or None."""

    def check(value: Any) -> str | None:
        if (isinstance(value, str) and value in choices) or (empty and value is None):
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


def image_upload(value: Any) -> None:
    """An image payload names an upload or is a `data:` URL (`check_image_payload`)."""
    if isinstance(value, dict):
        check_image_payload(value)


def study_uploads(value: Any) -> None:
    """Each of the Study tab's files is an upload to this app (`files_payload` checks the list);
    a `gr.Error` that says what to send for one that is not (a file on the server, a `data:`
    URL, a malformed payload)."""
    for payload in value or ():  # None, or a list of dicts (`files_payload`)
        path = payload.get("path")
        if path is None and str(payload.get("url")).startswith("data:"):
            raise refuse(
                "Images or a ZIP (parameter `files`) takes uploaded files only, not data: URLs: "
                "send each file with `handle_file(path)`.",
                "File not allowed",
            )
        if not isinstance(path, str) or payload.get("meta") != {"_type": "gradio.FileData"}:
            raise refuse(
                "Images or a ZIP (parameter `files`) must be a list of uploaded files, each as "
                '`handle_file(path)` makes it: {"path": "<an upload>", "meta": {"_type": '
                '"gradio.FileData"}}.',
                "Invalid parameter",
            )
        if not is_upload(path):
            raise refuse(
                "Images or a ZIP (parameter `files`): only files uploaded to this app can be "
                "studied. Upload the images or the ZIP instead of naming a file on the server.",
                "File not allowed",
            )


def file_payload(value: Any) -> str | None:
    if value is None or isinstance(value, dict):
        return None  # no image: the handler asks for one; a payload: `image_upload`
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
    """Check every event's inputs against `params` before gradio touches them (a link anywhere
    is refused first); `on_refusal` runs for each refused request."""
    by_id = {component_id(component): param for component, param in params.items()}
    intercept_inputs(
        demo, lambda blocks, inputs, state: check_inputs(blocks, inputs, state, by_id), on_refusal
    )


def check_inputs(
    blocks: list[Any], inputs: list[Any], state: SessionState | None, by_id: dict[int, Param]
) -> gr.Error | None:
    """Raise a `gr.Error` for an event's inputs (`blocks`: its input components) that
    `guard_events` refuses (`by_id`: the checked parameters by their component's id)."""
    missing = [by_id.get(component_id(b)) for b in blocks[len(inputs) :]]
    if missing and all(p is not None and p.default is not NO_DEFAULT for p in missing):
        # Parameters added later (the models to compare): older callers leave them out.
        inputs.extend(p.default for p in missing)
    if len(inputs) < len(blocks):
        wanted = [getattr(by_id.get(component_id(b)), "name", None) or str(b) for b in blocks]
        raise refuse(
            f"This endpoint takes {len(wanted)} parameters ({', '.join(wanted)}); "
            f"got {len(inputs)}.",
            "Invalid parameter",
        )
    problems = []
    for block, value in zip(blocks, inputs, strict=False):
        if has_link(value):
            raise refuse(LINKS_REFUSED, "Links are not fetched")
        param = by_id.get(component_id(block))
        problem = param.problem(value) if param is not None else None
        if problem:
            problems.append(problem)
        if param is not None and param.component is not None:
            keep_component(state, block, param.component)
        if param is not None and param.uploads is not None and not problem:
            param.uploads(value)  # on a list of files too (before: a single payload only)
    if problems:
        raise refuse(" ".join(problems), "Invalid parameter")
    return None


def difference_pair(value: Any) -> str | None:
    """The difference map's two models, "second − first" by name ("": the first two); whether
    both were explained is the handler's to say (it then shows the first two)."""
    if value is None or value == "":
        return None
    named = split_pair(value) if isinstance(value, str) else None
    if named and all(n in list_models() for n in named):
        return None
    return (
        f"must name two models as 'second{PAIR_SEPARATOR}first' (e.g. "
        f"'{DEFAULT_PAIR[1]}{PAIR_SEPARATOR}{DEFAULT_PAIR[0]}'), or be empty for the first two"
    )


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


def figure_formats(value: Any) -> str | None:
    """The export's figures for papers: a list of formats (empty: none)."""
    if isinstance(value, list) and all(v in FIGURE_FORMATS for v in value):
        return None
    return "must be a list of formats from " + ", ".join(FIGURE_FORMATS)


def files_payload(value: Any) -> str | None:
    if value is None or (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return None
    return "must be a list of uploaded files"


def study_name(value: Any) -> str | None:
    """The name of a study in the server's studies folder (which one: the handler's to say)."""
    if value is None or isinstance(value, str):
        return None
    return "must be the name of a study in the server's studies folder (text)"


def page_params(page: Page) -> dict[gr.components.Component, Param]:
    """Every checked input of the page's events and the API's, with its label and its name."""
    i, e = page.inputs, page.explorer
    return {
        i.image: Param("Image", "image", file_payload, component=i.image, uploads=image_upload),
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
        page.normalization: Param("CAM scale", "normalization", one_of(list(views.NORMALIZATIONS))),
        i.model_a: Param("Model A", "model_a", one_of(list_models()), default=DEFAULT_PAIR[0]),
        i.model_b: Param("Model B", "model_b", one_of(list_models()), default=DEFAULT_PAIR[1]),
        i.model_c: Param("Model C", "model_c", one_of([NONE, *list_models()]), default=NONE),
        i.model_d: Param("Model D", "model_d", one_of([NONE, *list_models()]), default=NONE),
        page.pair: Param("Difference map", "pair", difference_pair, default=""),
        # None: no compared model has gates (`Handlers.captions` empties the list then)
        e.gate_model: Param(
            "Gates of", "gate_model", one_of(list_models(), empty=True), default=DEFAULT_PAIR[1]
        ),
        e.unit: Param("Attention unit", "unit", one_of(UNIT_NAMES)),
        # The slider's own range (gradio checks it too, in words that name no parameter); a
        # unit's narrower range is the handler's to say, beside the control on the page.
        e.group: Param("Group", "group", whole_number(0, MAX_GROUPS - 1)),
        e.scale: Param("Spatial-gate colours", "scale", one_of(list(render.GATE_SCALES))),
        page.study.files: Param("Images or a ZIP", "files", files_payload, uploads=study_uploads),
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
        page.study.studies: Param("Study", "study", study_name),
        page.export.figure_formats: Param(
            "Figures for papers", "figure_formats", figure_formats, default=[]
        ),
        page.export.figure_width: Param(
            "Figure width",
            "figure_width",
            one_of([value for _, value in FIGURE_WIDTH_CHOICES]),
            default="double",
        ),
    }
