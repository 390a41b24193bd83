"""The page's components: the inputs column, the tabs and `Page`, which holds every component the
events read or write (layout only: no handler, no event here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import gradio as gr

from sa_viz import render
from sa_viz.app.analyses_tab import AnalysesTab, analyses_tab
from sa_viz.app.study_tab import StudyLimits, StudyTab, study_tab
from sa_viz.cam import DEFAULT_LAYER, LAYERS
from sa_viz.data.examples import EXAMPLES
from sa_viz.data.preprocess import DEFAULT_LIMITS
from sa_viz.models import DEFAULT_PAIR, get_model, list_models
from sa_viz.render import views

if TYPE_CHECKING:
    pass

from sa_viz.app.choices import (
    ASSETS,
    CLASS_CHOICES,
    CROP,
    DEFAULT_UNIT,
    FIGURE_FORMAT_CHOICES,
    FIGURE_WIDTH_CHOICES,
    GATED_CHOICES,
    HINT_PLACES,
    MAX_GROUPS,
    MODEL_CHOICES,
    NONE,
    OPTIONAL_MODEL_CHOICES,
    OWN_TOP1,
    SLOTS,
    TABLE_HEADERS,
    UNIT_NAMES,
    WHOLE,
    method_choices,
    models_info,
    pair_choices,
    pair_value,
)
from sa_viz.app.gradio_internals import replace_methods
from sa_viz.app.validation import check_image_payload

log = logging.getLogger(__name__)

RESULTS_MIN_WIDTH = 640  # px: the results column's narrowest (two top-5 tables side by side)

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
/* An Analyses panel computed for an earlier explanation than the page's (issue 27) */
.stale img, .stale table {opacity: .35;}
.stale-note {border-left: 4px solid #b26a00; padding: 2px 8px; background: #fff4e0;}
/* Below 1280 px (gradio's page is then at most 1024 px wide: too narrow for 320 + 640) the
   results stand under the inputs: the image, its examples and the Explain button first, then
   the results, then what to explain, so that the class, method and layer are next to the maps
   they change, not ~1000 px above them (issue 27) */
@media (max-width: 1279.98px) {
  #inputs {display: contents;}
  #inputs > * {flex: 1 1 100%; min-width: 0;}
  #results {order: 1;}
  #inputs > #what-to-explain {order: 2;}
  /* … its input, class, method and layer first, the models after them */
  #what-to-explain > div > .column > .form {order: -1;}
}
/* The results' first line: room for the explanation's progress before the first result */
#summary {min-height: 3em;}
/* The class list shows its entries in the order the page's search gives them (CLASS_SEARCH) */
#target ul[role=listbox] {display: flex; flex-direction: column;}
/* The study browser's thumbnails are wide (one map per model, side by side): wide cells */
#browse-thumbnails .thumbnail-item {aspect-ratio: 2 / 1;}
/* … and a page of them as tall as they are (gradio's gallery keeps 450 px, empty or not) */
#browse-thumbnails .fixed-height {min-height: 0; max-height: none;}
"""


def bounded_image_input(**kwargs: Any) -> gr.Image:
    """A gr.Image whose handler gets an uploaded file's path, or a `data:` URL, undecoded.

    gr.Image would decode a `data:` URL itself before any handler runs, without our size,
    pixel-count and mode checks; here every image reaches `sa_viz.data.preprocess`, which bounds it.
    A payload that names a file must name one in gradio's upload folder: gradio checks that
    only for payloads tagged as files, and an untagged `{"path": "/any/file"}` would otherwise
    reach the handler. The methods are replaced on this instance only (`replace_methods`).
    """
    component = gr.Image(type="filepath", **kwargs)

    def preprocess(payload: Any) -> str | None:
        if payload is None:
            return None
        return check_image_payload(
            {"path": getattr(payload, "path", None), "url": getattr(payload, "url", None)}
        )

    # gradio describes an image parameter as "A local filepath or publicly available URL";
    # this app fetches no URL, so the API page says what it does take.
    described = component.api_info()
    described["additional_description"] = (
        "A file on your machine (handle_file(path)) or a data: URL; links are not fetched."
    )
    described["properties"]["url"]["description"] = "a data:image/…;base64 URL (no links)"
    return replace_methods(
        component,
        preprocess=preprocess,
        # gradio's "Use via API" page shows an example input; gr.Image's is a URL, which this
        # app refuses. A file on the caller's machine is what `handle_file` should be given.
        example_payload=lambda: {"path": "image.jpg", "meta": {"_type": "gradio.FileData"}},
        example_value=lambda: "image.jpg",
        api_info=lambda: described,
    )


class InputColumn(NamedTuple):
    """The page's left column: the image and what to explain."""

    image: gr.Image
    examples: gr.Examples
    run: gr.Button
    model_a: gr.Dropdown
    model_b: gr.Dropdown
    model_c: gr.Dropdown  # optional: `NONE`
    model_d: gr.Dropdown  # optional: `NONE`
    crop_mode: gr.Radio
    target: gr.Dropdown
    method: gr.Dropdown
    layer: gr.Radio
    hints: dict[str, gr.Markdown]  # by place (`HINT_PLACES`), except "view"

    @property
    def models(self) -> list[gr.Dropdown]:
        """The model slots, in `SLOTS` order."""
        return [self.model_a, self.model_b, self.model_c, self.model_d]


def hint(place: str) -> gr.Markdown:
    """Where the page says what went wrong with the control above it (hidden until then)."""
    return gr.Markdown(visible=False, elem_id=f"hint-{place}", elem_classes=["hint"])


def input_column() -> InputColumn:
    """The left column: image input, examples, the Explain button and what to explain."""
    with gr.Column(scale=1, min_width=320, elem_id="inputs"):
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
        with gr.Accordion("What to explain", open=True, elem_id="what-to-explain"):
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
                    elem_id="model-b",
                )
            # Closed: the page with two models stands as it did, its results no lower.
            with (
                gr.Accordion("Models C and D (optional: up to four side by side)", open=False),
                gr.Row(),
            ):
                model_c, model_d = (
                    gr.Dropdown(
                        OPTIONAL_MODEL_CHOICES,
                        value=NONE,
                        label=f"Model {slot.upper()} (optional)",
                        elem_id=f"model-{slot}",
                    )
                    for slot in SLOTS[2:]
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
            replace_methods(
                target,
                api_info=lambda: {
                    "type": "string",
                    "description": f"an ImageNet class name or index 0–999, or {OWN_TOP1!r}",
                },
            )
            method = gr.Dropdown(
                method_choices(), value="gradcam", label="CAM method", elem_id="cam-method"
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
        image, examples, run, model_a, model_b, model_c, model_d, crop_mode, target, method,
        layer, hints,
    )  # fmt: skip


class CamTab(NamedTuple):
    """The Grad-CAM tab's components."""

    normalization: gr.Radio
    cams: list[gr.Image]  # per slot (`SLOTS`); C and D shown once chosen
    difference: gr.Image
    pair: gr.Dropdown  # the difference map's two models
    cam_text: gr.Markdown


def cam_tab(picture: dict[str, Any]) -> CamTab:
    """The Grad-CAM tab: its CAM scale, the models' CAMs (A and B beside their difference, C and
    D below), which two the difference compares, and its text."""
    with gr.Tab("Grad-CAM", id="cam", elem_id="tab-cam"):
        with gr.Row():
            normalization = gr.Radio(
                list(views.NORMALIZATIONS),
                value="per model",
                label="CAM scale",
                info="Per model: each map stretched to its own range. Joint: one "
                "scale for all (from the raw maps), so magnitudes compare.",
            )
            pair = gr.Dropdown(
                pair_choices(list(DEFAULT_PAIR)),
                value=pair_value(*DEFAULT_PAIR),
                label="Difference map",
                info="red where the first named model looks more, blue where the second does",
                # Its list follows the models (`Handlers.captions`); a link's pair is checked
                # there, not refused by gradio for the rest of the page's life.
                allow_custom_value=True,
                elem_id="cam-pair",
            )
        with gr.Row():
            cams = [
                gr.Image(label=get_model(name).title, elem_id=f"cam-{slot}", **picture)
                for slot, name in zip(SLOTS[:2], DEFAULT_PAIR, strict=True)
            ]
            difference = gr.Image(
                label=views.difference_label([get_model(n).title for n in DEFAULT_PAIR]),
                elem_id="cam-difference",
                **picture,
            )
        with gr.Row():  # models C and D, once chosen (`Handlers.captions`)
            cams += [
                gr.Image(label=f"Model {slot.upper()}", elem_id=f"cam-{slot}", visible=False,
                         **picture)
                for slot in SLOTS[2:]
            ]  # fmt: skip
        cam_text = gr.Markdown(elem_id="cam-text")
    return CamTab(normalization, cams, difference, pair, cam_text)


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
    with gr.Tab("Gate explorer", id="gates", elem_id="tab-gates"):
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
                # Its list follows the shown model's units (`captions`, `switch_gates`); a
                # value in flight from before is checked by `guard_events`, as "Gates of".
                allow_custom_value=True,
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


@dataclass(frozen=True)
class ExportTab:
    button: gr.Button
    file: gr.File
    figure_formats: gr.CheckboxGroup
    figure_width: gr.Radio


def export_tab() -> ExportTab:
    """The Export tab: its button, the built ZIP, and the figures for papers it adds."""
    with gr.Tab("Export", id="export", elem_id="tab-export"):
        gr.Markdown(
            "Everything for the current image in one ZIP: every picture as a "
            "lossless PNG with the current view settings, predictions, settings "
            "and weights status (JSON), and the raw CAMs and all gate arrays "
            "(NPZ). (On screen, photo-like pictures are JPEG for speed; their "
            "download buttons give that JPEG.)"
        )
        with gr.Row():
            figure_formats = gr.CheckboxGroup(
                FIGURE_FORMAT_CHOICES,
                value=[],
                label="Also figures for papers (in figures/)",
                info="the same views and the analyses' charts drawn with matplotlib: in SVG "
                "and PDF, text stays text and each map is one image at full resolution",
                elem_id="export-figure-formats",
            )
            figure_width = gr.Radio(
                FIGURE_WIDTH_CHOICES,
                value="double",
                label="Figure width",
                info="with 8–9 pt text",
                elem_id="export-figure-width",
            )
        button = gr.Button("Build ZIP", elem_id="export")
        file = gr.File(label="ZIP", interactive=False, elem_id="export-file")
    return ExportTab(button, file, figure_formats, figure_width)


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
    pair: gr.Dropdown  # the difference map's two models
    cam_text: gr.Markdown
    tabs: gr.Tabs  # Grad-CAM, Gate explorer, Analyses, Export, Study (by id)
    explorer: GateExplorer
    export: ExportTab
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
            *(i.model_c, i.model_d, self.pair),
        ]

    @property
    def export_inputs(self) -> list[gr.components.Component]:
        e = self.explorer
        x = self.export
        return [
            *self.view_inputs,
            *(e.unit, e.group, e.scale, e.gate_model, x.figure_formats, x.figure_width),
            self.pair,
        ]

    @property
    def cam_outputs(self) -> list[gr.components.Component]:
        """A and B's CAMs, the difference, its text, then C and D's: the API's outputs as they
        were with two models, the later slots' added at the end."""
        return [*self.cams[:2], self.difference, self.cam_text, *self.cams[2:]]

    @property
    def gate_outputs(self) -> list[gr.components.Component]:
        e = self.explorer
        return [e.mosaic, e.channel, e.detail, e.gate_text]

    @property
    def switch_outputs(self) -> list[gr.components.Component]:
        """`Handlers.page_switch_gates`'s: the gates, the overview, the slider, the hints, the
        units (the model's own)."""
        e = self.explorer
        return [*self.gate_outputs, e.overview, e.group, *self.hint_outputs, e.unit]

    @property
    def explain_outputs(self) -> list[gr.components.Component]:
        """In the order the API gave them with two models (a gradio_client caller reads them by
        position), models C and D's tables and CAMs added at the end."""
        return [
            self.summary,
            *self.tables[:2],
            *self.cam_outputs[:4],
            *self.gate_outputs,
            self.explorer.overview,
            *self.tables[2:],
            *self.cams[2:],
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
        "# SA-Viz · where CNNs look, and what their attention gates do\n"
        f"Models: {titles}. Upload an image: the chosen models (two, up to four) classify "
        "it, **Grad-CAM** shows where each looks and where two of them differ, and the "
        "**gate explorer** shows the gates of every "
        "attention unit of the models that have them (*About the models*, on the left, "
        "says which and where each comes from)."
    )
    banner = gr.Markdown(
        "Loading the models…", elem_classes=["untrained-banner"], elem_id="weights-status"
    )
    with gr.Row(equal_height=False):
        inputs = input_column()
        hints = dict(inputs.hints)
        # Below 1280 px the two columns no longer fit side by side (320 + 640 px in gradio's
        # 1024-px page): the results go under the inputs at full width instead of squeezing
        # the tables to one digit per line (seen at 800 px), before what to explain (CSS).
        with gr.Column(scale=2, min_width=RESULTS_MIN_WIDTH, elem_id="results"):
            summary = gr.Markdown(elem_id="summary")
            # Two by two: four side by side left each table a few letters wide.
            titles = [f"{get_model(name).title}: top-5" for name in DEFAULT_PAIR]
            titles += [f"Model {slot.upper()}: top-5" for slot in SLOTS[2:]]
            tables = []
            for row in (SLOTS[:2], SLOTS[2:]):
                with gr.Row():
                    tables += [
                        gr.Dataframe(
                            headers=TABLE_HEADERS,
                            label=titles[SLOTS.index(slot)],
                            interactive=False,
                            wrap=True,
                            column_widths=["56%", "20%", "24%"],
                            visible=slot in SLOTS[:2],  # C and D once chosen
                            elem_id=f"top5-{slot}",
                        )
                        for slot in row
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
            with gr.Tabs(elem_id="result-tabs") as tabs:
                cam = cam_tab(picture)
                explorer = gate_explorer_tab(picture)
                analyses = analyses_tab(picture)
                export = export_tab()
                study = study_tab(study_limits, studies_dir, upload_bytes)
    return Page(
        banner=banner,
        inputs=inputs,
        summary=summary,
        tables=tables,
        colormap=colormap,
        alpha=alpha,
        normalization=cam.normalization,
        cams=cam.cams,
        difference=cam.difference,
        pair=cam.pair,
        cam_text=cam.cam_text,
        tabs=tabs,
        explorer=explorer,
        export=export,
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
