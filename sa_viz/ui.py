"""The Gradio app: layout and event wiring only. The only module that imports gradio.

Every computation goes through `sa_viz.engine` (models, cache) and every picture through
`sa_viz.views`; the handlers translate between widgets and those calls and turn errors into
messages for people. They are methods of `Handlers`, so tests call them directly.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import utils as gradio_utils

from sa_viz import render, views
from sa_viz.cam import DEFAULT_LAYER, LAYERS, METHODS
from sa_viz.engine import Engine, Kept, ModelsUnavailable, ResultExpired, Settings
from sa_viz.explain import Explanation
from sa_viz.export import write_zip
from sa_viz.hooks import TimeLimitExceeded
from sa_viz.imagenet import class_index, labels
from sa_viz.models import SA_UNIT_NAMES
from sa_viz.preprocess import ImageError
from sa_viz.tempspace import TempSpace
from sa_viz.weights import SPECS, WeightsStatus

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")
LAYER_CHANNELS = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
OWN_TOP1 = "each model's own top-1"
CLASS_CHOICES = [OWN_TOP1] + [f"{i}: {name}" for i, name in enumerate(labels())]
WHOLE, CROP = "whole image", "centre crop 224 (evaluation protocol)"
DEFAULT_UNIT = "layer3.0"
TABLE_HEADERS = ["class", "p", "in other top-5"]
QUEUE_IDLE_POLL_S = 0.01
METHOD_CHOICES = [(f"{m.title}: {m.note}", key) for key, m in METHODS.items()]

CSS = """
.untrained-banner {border-left: 6px solid #b00020; padding-left: 10px;}
.ok-banner {border-left: 6px solid #2e7d32; padding-left: 10px;}
"""


def bounded_image_input(**kwargs: Any) -> gr.Image:
    """A gr.Image whose handler gets an uploaded file's path, or a `data:` URL, undecoded.

    gr.Image would decode a `data:` URL itself before any handler runs, without our size,
    pixel-count and mode checks; here every image reaches `sa_viz.preprocess`, which bounds it.
    A payload that names a file must name one in gradio's upload folder: gradio checks that
    only for payloads tagged as files, and an untagged `{"path": "/any/file"}` would otherwise
    reach the handler. The override is on this instance only: a gr.Image subclass would make
    gradio write a .pyi stub next to this file at import time.
    """
    component = gr.Image(type="filepath", **kwargs)

    def preprocess(payload: Any) -> str | None:
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        path = getattr(payload, "path", None)
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

    component.preprocess = preprocess
    return component


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
    try:
        return class_index(choice)
    except ValueError as error:
        raise _error(f"{error}. Pick a class from the list.", "Unknown class") from None


def status_markdown(statuses: list[WeightsStatus]) -> str:
    lines = []
    for status in statuses:
        if status.untrained:
            lines.append(
                f"**UNTRAINED · {status.message}**  \nHow to get the weights: {status.how_to_get}"
            )
        elif status.verified:
            lines.append(f"**Pretrained · {status.title}**: {status.source}, hash verified.")
        else:
            lines.append(f"**Loaded · {status.message}**")
    return "\n\n".join(lines)


def handler(method):
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
            return method(self, *args, **kwargs)
        except gr.Error:
            raise
        except ImageError as error:
            raise _error(str(error), "This image can't be used") from None
        except TimeLimitExceeded:
            raise _error(time_limit_message(self.engine.time_limit), "Too slow") from None
        except (ModelsUnavailable, ResultExpired, ValueError) as error:
            raise _error(str(error)) from None
        except Exception as error:
            log.exception("handler %s failed", method.__name__)
            raise _error(
                f"Something went wrong on the server ({type(error).__name__}). It is still "
                "running: try again, or try another image."
            ) from None
        finally:
            log.info("handler %s took %.4f s", method.__name__, time.perf_counter() - start)

    return wrapper


def time_limit_message(limit: float | None, method: str = "gradcam", layer: str = "") -> str:
    message = f"Explaining took longer than this server's limit of {limit:g} s and was stopped."
    if method == "scorecam":
        return (
            f"{message} ScoreCAM runs each model once per channel of the layer "
            f"({LAYER_CHANNELS.get(layer, 'thousands of')} at {layer or 'this layer'}): choose "
            "layer1 or a gradient method such as GradCAM, which needs one pass."
        )
    return f"{message} Try a smaller image or GradCAM; the server's operator can raise the limit."


def _error(message: str, title: str = "Error") -> gr.Error:
    return gr.Error(message, title=title, print_exception=False)


class Handlers:
    """The app's event handlers around one `Engine`; no gradio layout here."""

    def __init__(self, engine: Engine, space: TempSpace | None = None) -> None:
        self.engine = engine
        self.space = space or TempSpace()
        # The gate summary and the gate mosaic are drawn while the handler's thread draws the
        # other pictures: numpy, cv2 and PIL release the GIL for part of it, so the two cores
        # share some of the work (measured in one process: a request answered from the cache
        # 62 → 49 ms, a gate view 38 → 29 ms; a request's pictures take 53 ms one after another,
        # 42–48 ms this way). Threads that live on, shared by all requests.
        self._render = ThreadPoolExecutor(2, thread_name_prefix="sa-viz-render")

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
    def captions(self) -> tuple:
        """Each model's table and CAM picture named once, with "UNTRAINED" where it is: the
        weights do not change while the server runs, so results carry values only (an update
        of a label makes gradio build a new component per output and request)."""
        try:
            statuses = self.engine.statuses(timeout=300)
        except ModelsUnavailable:
            return (gr.skip(),) * (2 * len(SPECS))
        named = [views.model_caption(s) for s in statuses]
        return (
            *(gr.update(label=f"{caption}: top-5") for caption in named),
            *(gr.update(label=caption) for caption in named),
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
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's idiom)
        event: gr.EventData = None,  # gradio fills it in for events from the page
    ) -> tuple:
        """Run both models; return every output of the page and the result for later views."""
        if not image:
            if event is not None and event.target is not None:
                return gr.skip()  # the page's image was cleared (or a control changed before
                # any upload): nothing to explain, and nothing wrong either
            raise _error("Upload an image first (or pick one of the examples).", "No image")
        settings = Settings(crop_mode == CROP, parse_target(target), layer, method)
        try:
            result = self.engine.explain(image, settings, lambda f, text: progress(f, desc=text))
        except TimeLimitExceeded:
            raise _error(
                time_limit_message(self.engine.time_limit, method, layer), "Too slow"
            ) from None
        overview = self._render.submit(self._overview, result)
        return (
            views.prediction_summary(result),
            *self._tables(result),
            *self._cams(result, colormap, alpha, normalization),
            *self._gates(result, unit, group, colormap, alpha, scale),
            overview.result(),
            self.engine.remember(result, image, settings),
        )

    @handler
    def update_cams(
        self,
        result: Kept | None,
        colormap: str,
        alpha: float,
        normalization: str,
    ) -> tuple:
        return self._cams(self._need(result), colormap, alpha, normalization)

    @handler
    def update_gates(
        self,
        result: Kept | None,
        unit: str,
        group: int,
        colormap: str,
        alpha: float,
        scale: str,
    ) -> tuple:
        return self._gates(self._need(result), unit, group, colormap, alpha, scale)

    @handler
    def export(
        self,
        result: Kept | None,
        colormap: str,
        alpha: float,
        normalization: str,
        unit: str,
        group: int,
        scale: str,
    ) -> str:
        result = self._need(result)
        folder = self.space.folder()
        path = write_zip(
            result,
            folder / "sa-viz-export.zip",
            unit=unit,
            group=int(group),
            colormap=colormap,
            alpha=alpha,
            normalization=normalization,
            scale=scale,
        )
        return str(path)

    @handler
    def choose_prediction(self, table: Any, evt: gr.SelectData) -> str:
        """A click on a prediction makes its class the CAM target of both models."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        rows = table.values.tolist() if hasattr(table, "values") else table
        index = int(str(rows[row][0]).split("·", 1)[0])
        return CLASS_CHOICES[index + 1]

    # --- pieces -------------------------------------------------------------------------------

    def _need(self, result: Kept | None) -> Explanation:
        if result is None:
            raise _error("Explain an image first.", "Nothing to show yet")
        return self.engine.recall(result)

    # Values only, no gr.update(label=...) or components: for either, gradio builds a new
    # component per output and request (its postprocessing of an /explain result took 27 ms
    # that way, 18 ms now, measured in one process); `captions` sets the labels once per page.
    @staticmethod
    def _tables(result: Explanation) -> list[dict]:
        return [
            {"data": views.prediction_rows(result, name), "headers": TABLE_HEADERS}
            for name in result.models
        ]

    def _cams(self, result: Explanation, colormap: str, alpha: float, normalization: str) -> tuple:
        view = views.cam_view(result, colormap=colormap, alpha=alpha, normalization=normalization)
        images = [self.space.picture(view.overlays[name]) for name in result.models]
        text = views.targets_text(result) + "  \n" + views.agreement_text(view)
        return (*images, self.space.picture(view.difference), text)

    def _overview(self, result: Explanation) -> str:
        return self.space.picture(views.summary_picture(result), lossless=True)

    def _gates(self, result, unit, group, colormap, alpha, scale) -> tuple:
        if unit not in SA_UNIT_NAMES:
            raise _error(f"{unit!r} is not an SA unit; choose one of layer1.0 … layer4.2.")
        if not 0 <= int(group) < 64:
            raise _error(f"Group {group} does not exist; groups are numbered 0–63.")
        group, look = int(group), {"colormap": colormap, "alpha": alpha, "scale": scale}
        mosaic = self._render.submit(
            lambda: self.space.picture(views.gate_mosaic(result, unit, group, **look))
        )
        heat = self.space.picture(views.channel_gates(result, unit, group), lossless=True)
        detail = self.space.picture(views.group_detail(result, unit, group, **look))
        return (mosaic.result(), heat, detail, views.gate_range_text(result, unit, scale))


def configure_queue(demo: gr.Blocks, *, max_size: int | None) -> gr.Blocks:
    """One explanation at a time, at most `max_size` waiting (None: no bound).

    gradio's queue looks for new work every millisecond while it has none: 11% of a core on an
    idle server here, and GIL hand-offs taken from the models while they run (measured: 115 CPU
    ticks in 10 idle seconds, 32 at 10 ms). gradio has no setting for it, so the attribute is
    set where this gradio has it (tests/test_ui.py checks that it does); a queued request then
    starts at most 10 ms later. The same for gradio's event analytics (below).
    """
    demo.queue(max_size=max_size, default_concurrency_limit=1)
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_IDLE_POLL_S)
    # After every event gradio also summarises its last 10,000 events with pandas for the
    # monitoring dashboard, which this app turns off (4 ms per event with 100 recorded, 16 ms
    # with 10,000, measured; and the records stay in memory): record one, summarise never.
    if hasattr(queue, "ANAYLTICS_CACHE_FREQUENCY") and hasattr(queue, "ANALYTICS_MAX_EVENTS"):
        queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize
        queue.ANALYTICS_MAX_EVENTS = 1
    return demo


def build_app(engine: Engine, *, space: TempSpace | None = None) -> gr.Blocks:
    """The whole app around an `Engine` (which may still be loading its models)."""
    handlers = Handlers(engine, space)
    # Pictures arrive as files the handlers encoded (JPEG for photos, PNG for charts).
    picture = {"type": "filepath", "interactive": False, "buttons": ["download", "fullscreen"]}

    # delete_cache: gradio's copies of served files older than an hour go, checked every 10 min.
    with gr.Blocks(title="SA-Viz: ResNet-50 vs SA-ResNet-50", delete_cache=(600, 3600)) as demo:
        gr.Markdown(
            "# SA-Viz · where ResNet-50 and SA-ResNet-50 look, and what Shuffle Attention gates\n"
            "Upload an image: both models classify it, **Grad-CAM** shows where each looks, and "
            "the **gate explorer** shows the channel and spatial gates of all 64 groups in every "
            "one of SA-ResNet-50's 16 Shuffle Attention units (Zhang & Yang, ICASSP 2021)."
        )
        banner = gr.Markdown(
            "Loading the models…", elem_classes=["untrained-banner"], elem_id="weights-status"
        )
        result_state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                image = bounded_image_input(
                    label="Image (upload, drop, paste or webcam)",
                    elem_id="input-image",
                    sources=["upload", "webcam", "clipboard"],
                    height=300,
                )
                gr.Examples(
                    examples=[[str(ASSETS / n)] for n in EXAMPLES if (ASSETS / n).exists()],
                    inputs=[image],
                    label="Examples (scikit-image sample photos: CC0 / public domain)",
                )
                run = gr.Button("Explain", variant="primary", elem_id="explain")
                with gr.Accordion("What to explain", open=True):
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
                    )
                    method = gr.Dropdown(
                        METHOD_CHOICES, value="gradcam", label="CAM method", elem_id="cam-method"
                    )
                    layer = gr.Radio(
                        list(LAYERS),
                        value=DEFAULT_LAYER,
                        label="CAM layer",
                        info="The output of the stage's last bottleneck.",
                    )
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    tables = [
                        gr.Dataframe(
                            headers=TABLE_HEADERS,
                            label=f"{SPECS[name].title}: top-5",
                            interactive=False,
                            wrap=True,
                            column_widths=["62%", "16%", "22%"],
                            elem_id=f"top5-{name}",
                        )
                        for name in SPECS
                    ]
                with gr.Row():
                    colormap = gr.Dropdown(
                        list(render.COLORMAPS), value=render.DEFAULT_COLORMAP, label="Colormap"
                    )
                    alpha = gr.Slider(
                        0.0, 1.0, value=render.DEFAULT_ALPHA, step=0.05, label="Overlay opacity"
                    )
                with gr.Tabs():
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
                                gr.Image(label=SPECS[name].title, elem_id=f"cam-{name}", **picture)
                                for name in SPECS
                            ]
                            difference = gr.Image(
                                label="Difference: SA-ResNet-50 − ResNet-50",
                                elem_id="cam-difference",
                                **picture,
                            )
                        cam_text = gr.Markdown(elem_id="cam-text")
                    with gr.Tab("Gate explorer (SA-ResNet-50)"):
                        with gr.Row():
                            unit = gr.Dropdown(
                                list(SA_UNIT_NAMES),
                                value=DEFAULT_UNIT,
                                label="SA unit",
                                elem_id="gate-unit",
                            )
                            group = gr.Slider(
                                0, 63, value=0, step=1, label="Group", elem_id="gate-group"
                            )
                            scale = gr.Radio(
                                list(render.GATE_SCALES),
                                value="unit range",
                                label="Spatial-gate colours",
                            )
                        gate_text = gr.Markdown(elem_id="gate-text")
                        mosaic = gr.Image(
                            label="Spatial gates of the 64 groups",
                            show_label=False,
                            elem_id="gate-mosaic",
                            **picture,
                        )
                        with gr.Row(equal_height=False):
                            channel = gr.Image(
                                label="Channel gates (64 × c)",
                                show_label=False,
                                scale=1,
                                elem_id="gate-channel",
                                **picture,
                            )
                            detail = gr.Image(
                                label="The chosen group",
                                show_label=False,
                                scale=3,
                                elem_id="gate-detail",
                                **picture,
                            )
                        overview = gr.Image(
                            label="All 16 units: gate statistics",
                            show_label=False,
                            elem_id="gate-summary",
                            **picture,
                        )
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

        # --- events ---------------------------------------------------------------------------
        demo.load(handlers.weights_status, outputs=banner, api_name="weights_status")
        demo.load(handlers.captions, outputs=[*tables, *cams], api_visibility="private")
        view_inputs = [colormap, alpha, normalization]
        gate_inputs = [unit, group, colormap, alpha, scale]
        gr.on(
            [run.click, image.change, crop_mode.change, target.change, method.change, layer.change],
            handlers.explain,
            inputs=[image, crop_mode, target, method, layer, *view_inputs, unit, group, scale],
            outputs=[
                summary,
                *tables,
                *cams,
                difference,
                cam_text,
                mosaic,
                channel,
                detail,
                gate_text,
                overview,
                result_state,
            ],
            api_name="explain",
            trigger_mode="always_last",
            concurrency_id="models",
        )
        gr.on(
            [colormap.change, alpha.release, normalization.change],
            handlers.update_cams,
            inputs=[result_state, *view_inputs],
            outputs=[*cams, difference, cam_text],
            api_name="cam_view",
            trigger_mode="always_last",
            show_progress="hidden",
            concurrency_id="views",
        )
        gr.on(
            [unit.change, group.change, scale.change, colormap.change, alpha.release],
            handlers.update_gates,
            inputs=[result_state, *gate_inputs],
            outputs=[mosaic, channel, detail, gate_text],
            api_name="gate_view",
            trigger_mode="always_last",
            show_progress="hidden",
            concurrency_id="views",
        )
        export_button.click(
            handlers.export,
            inputs=[result_state, *view_inputs, unit, group, scale],
            outputs=export_file,
            api_name="export_zip",
            concurrency_id="views",
        )
        for name, table in zip(SPECS, tables, strict=True):
            table.select(
                handlers.choose_prediction,
                inputs=table,
                outputs=target,
                api_name=f"choose_prediction_{name}",
                concurrency_id="views",
            )
    return demo
