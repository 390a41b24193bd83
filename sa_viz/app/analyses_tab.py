"""The Analyses tab: does each map hold up, and what does each gate group do?

- The object box (optional): two clicks on what the models see, or four typed numbers in the
  photo's pixels; drawn on the picture, with its localisation numbers beside it at once (pointing
  game, mass inside, IoU: `sa_viz.analyses.pointing`, cheap);
- Faithfulness: deletion and insertion curves of both compared models on one plot, with their
  areas, for the CAMs on screen (`sa_viz.analyses.faithfulness`);
- Group knockout: for the gate explorer's model and unit, the change of the CAM class's
  probability when each group's gates are replaced (pass-through 1, zero or the gate's mean),
  as a bar chart; a click on a bar opens that group in the gate explorer
  (`sa_viz.analyses.knockout`);
- Every registered analysis (`sa_viz.analyses.analyses()`, ROAD among them): ticked ones give
  their numbers per model in a table, so an analysis added to the package appears here with no
  change to this tab.

All but the box's numbers run on request, in the lane of the long CAM methods (`Engine.analyse`:
beside the one-pass explanations, within the time limit). A failure is a hint in the tab; the
pictures stay. Once the page shows another explanation, a panel computed for an earlier one says
so, and its pictures fade, until it is computed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from sa_viz.analyses import Box, ImageInput, analyses
from sa_viz.analyses.faithfulness import STEPS, deletion_insertion
from sa_viz.analyses.knockout import GATES, VALUES, group_knockout, knocked_out
from sa_viz.analyses.pointing import localisation
from sa_viz.app.engine import Engine
from sa_viz.app.gradio_internals import event_data
from sa_viz.app.hints import HintBoard, failure_message, on_page, refuse
from sa_viz.app.tempspace import TempSpace
from sa_viz.cam import METHODS, grad_cam_result
from sa_viz.data.preprocess import boxes_in_input, point_in_input, point_in_source
from sa_viz.models import get_model
from sa_viz.models.device import device_of
from sa_viz.pipeline.explain import (
    Explanation,
    analyse_explanation,
    in_model_input,
    model_input,
    region_of,
    to_display,
)
from sa_viz.probes.recorder import unit_layouts
from sa_viz.render import figure_array
from sa_viz.render.analysis_figures import (
    CHART_DPI,
    CHART_LEFT,
    CHART_RIGHT,
    CHART_SIZE,
    faithfulness_figure,
    knockout_figure,
)
from sa_viz.render.figure_views import analysis_charts
from sa_viz.render.overlays import overlay
from sa_viz.render.panels import stacked

log = logging.getLogger(__name__)

KEPT_SESSIONS = 1000  # sessions whose analyses the ZIP export can include
# Analyses with panels of their own above (the table lists the others): deletion/insertion and
# localisation in the Faithfulness panel, the knockout in its chart.
PANELS = ("deletion_insertion", "localisation", "knockout")
BOX_COLOUR = (255, 221, 0)
# The tab's panels computed on request (their buttons), each marked once it is of an earlier
# explanation than the page's.
COMPUTED = ("faithfulness", "analyses", "knockout")


@dataclass(frozen=True)
class AnalysesTab:
    faith_button: gr.Button
    faith_plot: gr.Image
    faith_text: gr.Markdown
    knock_gates: gr.Radio
    knock_value: gr.Radio
    knock_button: gr.Button
    knock_plot: gr.Image
    knock_text: gr.Markdown
    knock_cams: gr.Image
    knock_charted: gr.State  # the model and unit of the chart on screen (for a click on it)
    box: gr.Textbox
    box_picture: gr.Image
    box_clear: gr.Button
    chosen: gr.CheckboxGroup
    chosen_button: gr.Button
    chosen_table: gr.Dataframe
    chosen_charts: gr.Image  # the charts of those ticked that have one (the MPRT's curves)
    chosen_text: gr.Markdown
    hint: gr.Markdown
    box_text: gr.Markdown  # the box's localisation numbers, per model
    # What each panel of `COMPUTED` was computed for (`explained`), and its note once that is
    # not what the page shows.
    computed: gr.State
    stale: dict[str, gr.Markdown]

    def stale_pictures(self, panel: str) -> list[gr.components.Component]:
        """The pictures and tables of a panel of `COMPUTED`, which fade while it is stale."""
        return {
            "faithfulness": [self.faith_plot],
            "analyses": [self.chosen_table, self.chosen_charts],
            "knockout": [self.knock_plot, self.knock_cams],
        }[panel]


def stale_note(panel: str) -> gr.Markdown:
    return gr.Markdown(visible=False, elem_id=f"stale-{panel}", elem_classes=["stale-note"])


def faded(component: gr.components.Component, stale: bool, **values: Any) -> dict[str, Any]:
    """`component` faded (the page's CSS class "stale") or as built, with `values` (its new
    value, say)."""
    classes = [c for c in component.elem_classes or [] if c != "stale"]
    return gr.update(elem_classes=[*classes, "stale"] if stale else classes, **values)


def analyses_tab(picture: dict[str, Any]) -> AnalysesTab:
    with gr.Tab("Analyses", id="analyses", elem_id="tab-analyses"):
        gr.Markdown(
            "**Object box** (optional): is the CAM's peak inside it (pointing game), how much "
            "of its mass, and its IoU with the box. Click two opposite corners of the object on "
            "the picture (what the models see), or type the box in the photo's own pixels."
        )
        with gr.Row(equal_height=False):
            box_picture = gr.Image(
                label="Click two corners of the object",
                elem_id="box-picture",
                scale=1,
                min_width=224,
                **picture,
            )
            with gr.Column(scale=2, min_width=240):
                box = gr.Textbox(
                    label="Object box: x0 y0 x1 y1 in the photo's own pixels",
                    value="",  # an API caller may leave it out
                    placeholder="click the picture, or type e.g. 30 0 385 300",
                    elem_id="faith-box",
                )
                box_clear = gr.Button("Clear the box", size="sm", elem_id="box-clear")
                box_text = gr.Markdown(elem_id="box-text")
        gr.Markdown(
            f"**Faithfulness.** Deletion: the CAM's most important pixels go first ({STEPS} "
            "steps, to the mean colour) and the class's probability should fall fast (a small "
            "area). Insertion: they come back first into a blurred image and it should rise "
            "fast (a large area). Both models, their CAMs as shown."
        )
        # Primary: the default (secondary) grey read as a disabled button (issue 27).
        faith_button = gr.Button(
            "Compute deletion and insertion", variant="primary", elem_id="faith-run"
        )
        stale = {"faithfulness": stale_note("faithfulness")}
        faith_plot = gr.Image(label="Deletion and insertion", elem_id="faith-plot", **picture)
        faith_text = gr.Markdown(elem_id="faith-text")
        gr.Markdown(
            "**More analyses**: every other registered analysis, numbers per model for the "
            "CAMs as shown (↑: higher is better, ↓: lower is better)."
        )
        offered = {name: a for name, a in analyses().items() if a.on_page and name not in PANELS}
        chosen = gr.CheckboxGroup(
            [(f"{a.title} · {name}", name) for name, a in offered.items()],
            value=[name for name, a in offered.items() if a.ticked],
            label="Analyses",
            elem_id="chosen-analyses",
        )
        chosen_button = gr.Button(
            "Compute the ticked analyses", variant="primary", elem_id="chosen-run"
        )
        stale["analyses"] = stale_note("analyses")
        chosen_table = gr.Dataframe(
            headers=["analysis", "number", "better"],
            interactive=False,
            wrap=True,
            label="Numbers per model",
            elem_id="chosen-table",
        )
        chosen_charts = gr.Image(
            label="Charts of the ticked analyses, every model on one (the MPRT's curves)",
            elem_id="chosen-charts",
            **picture,
        )
        chosen_text = gr.Markdown(elem_id="chosen-text")
        gr.Markdown(
            "**Group knockout** of the gate explorer's model and unit: each group's gates "
            "replaced in turn, the change of the CAM class's probability per group (the "
            "network reruns from the unit onward). Click a bar to open its group."
        )
        with gr.Row():
            knock_gates = gr.Radio(list(GATES), value="both", label="Gates replaced")
            knock_value = gr.Radio(
                list(VALUES),
                value="one",
                label="Replaced by",
                info="one: pass-through; zero: closed; mean: the gate's mean over the group",
            )
        knock_button = gr.Button("Knock out each group", variant="primary", elem_id="knock-run")
        stale["knockout"] = stale_note("knockout")
        knock_plot = gr.Image(label="Group knockout", elem_id="knock-plot", **picture)
        knock_text = gr.Markdown(elem_id="knock-text")
        knock_cams = gr.Image(
            label="Grad-CAM of the model as it is, and with its most harmful group knocked out",
            elem_id="knock-cams",
            **picture,
        )
        hint = gr.Markdown(visible=False, elem_id="hint-analyses", elem_classes=["hint"])
        # Inside the tab: gradio's tab bar counts every child of `gr.Tabs` as a tab, and a
        # State there made the bar show the next tab twice and lose the last (issue 27).
        knock_state = gr.State(None)
        computed = gr.State({})
    return AnalysesTab(
        faith_button, faith_plot, faith_text, knock_gates, knock_value, knock_button,
        knock_plot, knock_text, knock_cams, knock_state, box, box_picture, box_clear,
        chosen, chosen_button, chosen_table, chosen_charts, chosen_text, hint, box_text,
        computed, stale,
    )  # fmt: skip


class AnalysisHandlers:
    """The tab's events (outputs by component; a failure is the tab's hint, `on_page`) and the
    analyses' API endpoints (JSON; a failure is an error for the caller)."""

    def __init__(
        self,
        engine: Engine,
        space: TempSpace,
        result_of: Callable[[gr.Request | None], Explanation],
        tab: AnalysesTab,
        explorer: Any,
    ) -> None:
        """`result_of`: the session's explanation; `explorer`: the gate explorer's components
        (`layout.GateExplorer`), which a click on a knockout bar sets."""
        self.engine, self.space, self.result_of = engine, space, result_of
        self.tab, self.explorer = tab, explorer
        self.hints = HintBoard({"analyses": tab.hint})
        # Per session, the analyses of its latest result (for the ZIP export), while it is.
        self._kept: OrderedDict[str, tuple[weakref.ref, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def _keep(self, request: gr.Request | None, result: Explanation, name: str, doc: Any) -> None:
        session = getattr(request, "session_hash", None)
        if session is None:
            return
        with self._lock:
            ref, docs = self._kept.pop(session, (None, {}))
            if ref is None or ref() is not result:
                docs = {}
            docs[name] = doc
            self._kept[session] = (weakref.ref(result), docs)
            while len(self._kept) > KEPT_SESSIONS:
                self._kept.popitem(last=False)

    def exports(self, request: gr.Request | None, result: Explanation) -> dict[str, Any]:
        """The analyses of `result` this session computed (for its ZIP)."""
        with self._lock:
            ref, docs = self._kept.get(getattr(request, "session_hash", None), (None, {}))
        return dict(docs) if ref is not None and ref() is result else {}

    def _as_error(self, name: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, its failure a `gr.Error` in the words of the page's other handlers (for
        API callers and gradio's own toasts)."""
        try:
            return compute()
        except Exception as error:
            message, title = failure_message(name, error, self.engine.time_limit)
        raise refuse(message, title)

    def faithfulness_api(self, box: str = "", request: gr.Request = None) -> dict[str, Any]:
        """`/faithfulness`: deletion and insertion of the session's result (and localisation
        against `box`, if given), as JSON."""
        return self._as_error("faithfulness", lambda: self.faithfulness_document(box, request))

    def knockout_api(
        self, unit: str, gate_model: str, gates: str, value: str, request: gr.Request = None
    ) -> dict[str, Any]:
        """`/knockout`: every group of a unit knocked out on the session's image, as JSON."""
        found = self._as_error(
            "knockout", lambda: self.knockout_document(unit, gate_model, gates, value, request)
        )
        return without_picture(found)

    def pick(self, charted: Any, evt: gr.EventData = None, request: gr.Request = None) -> dict:
        """A click on a bar: the gate explorer set to the chart's model and unit and the bar's
        group."""

        def compute() -> tuple[str, str, int]:
            if isinstance(charted, dict) and charted["model"] not in self.result_of(request).models:
                raise gr.Error(
                    "The chart is of models no longer compared: knock out the groups again.",
                    title="No bar",
                )
            return self.pick_bar(charted, evt)

        gate_model, unit, group = self._as_error("pick_bar", compute)
        e = self.explorer
        return {e.gate_model: gate_model, e.unit: unit, e.group: group}

    def chosen_api(self, analyses: str = "", box: str = "", request: gr.Request = None) -> Any:
        """`/analyses`: the named registered analyses (comma-separated) of the session's
        result, per model, as JSON."""
        wanted = [n for n in (analyses or "").split(",") if n]
        return self._as_error("analyses", lambda: self._chosen(wanted, box, request)[1])

    def _chosen(
        self,
        names: list[str] | None,
        box: str,
        request: gr.Request | None,
        progress: Callable[[float, str], None] | None = None,
    ) -> tuple[Explanation, dict[str, Any]]:
        """The named analyses of the session's result, and the result: model → analysis →
        numbers, details (kept for the ZIP)."""
        result = self.result_of(request)
        names = list(names or [])
        if not names:
            raise gr.Error("Choose one or more analyses first.", title="No analysis")
        boxes = typed_boxes(box, result)
        found = self.engine.analyse(
            lambda loaded: analyse_explanation(result, loaded, names, boxes, progress)
        )
        for name in names:
            doc = {model: done[name] for model, done in found.items() if name in done}
            self._keep(request, result, name, doc)
        return result, found

    @on_page()
    def chosen(
        self,
        names: list[str] | None,
        box: str = "",
        computed: dict | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's idiom)
        request: gr.Request = None,
    ) -> dict:
        # The progress of the slow ones (the sanity checks: dozens of passes per model)
        result, found = self._chosen(names, box, request, lambda f, t: progress(f, desc=t))
        titles = {n: m.title for n, m in result.models.items()}
        table = numbers_table(found, names or [], titles)
        # One under the other (one chart today: the MPRT's); none: the panel empties
        drawn = [figure_array(fig) for fig in analysis_charts(found, titles).values()]
        charts = self.space.picture(stacked(drawn), lossless=True, name="charts") if drawn else None
        missing = [n for n in names or [] if not any(n in done for done in found.values())]
        text = f"Not for these models or this image: {', '.join(missing)}." if missing else ""
        return {
            self.tab.chosen_text: text,
            **self.computed_for("analyses", result, computed, [table, charts]),
        }

    def computed_for(
        self, panel: str, result: Explanation, computed: dict | None, pictures: list[Any]
    ) -> dict:
        """A panel just computed for `result`, its `pictures` (`AnalysesTab.stale_pictures`'
        values, in that order) unfaded: remembered as computed for it, its stale mark gone."""
        t = self.tab
        shown = zip(t.stale_pictures(panel), pictures, strict=True)
        return {
            t.computed: {**(computed or {}), panel: explained(result)},
            t.stale[panel]: gr.update(value="", visible=False),
            **{component: faded(component, False, value=value) for component, value in shown},
        }

    def staleness(self, computed: dict | None = None, request: gr.Request = None) -> Any:
        """Each computed panel marked (a note, its pictures faded) while the page shows another
        explanation than the one it was computed for; unmarked once it shows that one again."""
        try:
            now = explained(self.result_of(request))
        except LookupError:
            return gr.skip()
        t, outputs = self.tab, {}
        for panel in COMPUTED:
            then = (computed or {}).get(panel)
            note = stale_text(then, now) if then else ""
            outputs[t.stale[panel]] = gr.update(value=note, visible=bool(note))
            for picture in t.stale_pictures(panel):
                outputs[picture] = faded(picture, bool(note))
        return outputs

    def box_view(self, box: str = "", request: gr.Request = None) -> dict:
        """What the models see with the box drawn (or its first corner marked), and the box's
        localisation numbers for each model's CAM (`box_localisation`); nothing before an
        explanation."""
        t = self.tab
        try:
            result = self.result_of(request)
        except LookupError:  # nothing explained yet, or the result expired
            return {t.box_picture: None, t.box_text: ""}
        return {
            t.box_picture: self.box_picture(result, box),
            t.box_text: box_localisation(result, box),
        }

    def box_picture(self, result: Explanation, box: str) -> str:
        """What the models see with the box drawn (or its first corner marked)."""
        picture = result.image.display
        values = box_numbers(box)
        scale = box_scale(result.image.size)
        image = Image.fromarray(picture)
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        drawing = ImageDraw.Draw(image)
        if len(values) == 4:
            for x0, y0, x1, y1 in boxes_in_input([tuple(values)], result.image):
                corners = [v * scale for v in (x0, y0, x1, y1)]
                drawing.rectangle(corners, outline=(0, 0, 0), width=4)
                drawing.rectangle(corners, outline=BOX_COLOUR, width=2)
        elif len(values) == 2:
            x, y = (v * scale for v in point_in_input(*values, result.image))
            for colour, width in (((0, 0, 0), 5), (BOX_COLOUR, 2)):
                drawing.line([(x - 10, y), (x + 10, y)], fill=colour, width=width)
                drawing.line([(x, y - 10), (x, y + 10)], fill=colour, width=width)
        return self.space.picture(np.asarray(image))

    def corner(self, box: str = "", evt: gr.EventData = None, request: gr.Request = None) -> str:
        """A click on the picture: the first corner of a new box, or the second of the box
        begun; the box's text in the photo's own pixels."""

        def compute() -> str:
            result = self.result_of(request)
            click = event_data(evt) or {}
            index = click.get("index") if isinstance(click, dict) else None
            if not isinstance(index, (list, tuple)) or len(index) != 2:
                raise gr.Error("Click a point of the picture.", title="Box")
            # gradio gives the click's position in the drawn picture's pixels, rounded
            shown = box_scale(result.image.size)
            x, y = (float(v) / shown for v in index)
            point = [round(v) for v in point_in_source(x, y, result.image)]
            values = box_numbers(box)
            if len(values) != 2:  # a new box begins
                return f"{point[0]} {point[1]}"
            (x0, x1), (y0, y1) = (
                sorted((round(values[0]), point[0])),
                sorted((round(values[1]), point[1])),
            )
            if x0 == x1 or y0 == y1:
                return box  # no area yet: still waiting for the other corner
            return f"{x0} {y0} {x1} {y1}"

        return self._as_error("box_corner", compute)

    def faithfulness_document(self, box: str = "", request: gr.Request = None) -> dict[str, Any]:
        """Deletion and insertion of the session's result, both models, and localisation
        against `box` ("x0 y0 x1 y1" in the image's own pixels) when one is given."""
        result = self.result_of(request)
        boxes = typed_boxes(box, result)

        def compute(loaded: Any) -> dict[str, Any]:
            found = {}
            for name, m in result.models.items():
                model = loaded[name].module
                x = model_input(result.image, name).to(device_of(model))
                cam, scaled = in_model_input(m.cam, boxes, x, region_of(result.image, name))
                layer = get_model(name).layer_module(result.layer)
                image = ImageInput(model, x, cam, m.target.index, scaled, layer, result.method)
                found[name] = {"title": m.title, "target": m.target.index}
                found[name] |= dataclasses.asdict(deletion_insertion(image))
                placed = localisation(image)
                if placed is not None:
                    found[name]["numbers"] |= placed.numbers
            return found

        found = self.engine.analyse(compute)
        self._keep(request, result, "faithfulness", found)
        return found

    @on_page()
    def faithfulness(
        self, box: str = "", computed: dict | None = None, request: gr.Request = None
    ) -> dict:
        result = self.result_of(request)
        found = self.faithfulness_document(box, request)
        picture = self.space.picture(figure_array(faithfulness_figure(found)), lossless=True)
        lines = []
        for f in found.values():
            n = f["numbers"]
            line = (
                f"**{f['title']}** (class {f['target']}): deletion area "
                f"{n['deletion_auc']:.3f}, insertion area {n['insertion_auc']:.3f}"
            )
            if "pointing_hit" in n:
                line += (
                    f"; its peak is {'inside' if n['pointing_hit'] else 'outside'} the box, "
                    f"{n['energy_inside']:.0%} of its mass inside, IoU {n['box_iou']:.2f}"
                )
            lines.append(line)
        return {
            self.tab.faith_text: "  \n".join(lines),
            **self.computed_for("faithfulness", result, computed, [picture]),
        }

    def knockout_document(
        self, unit: str, gate_model: str, gates: str, value: str, request: gr.Request = None
    ) -> dict[str, Any]:
        """Every group of `unit` of `gate_model` knocked out on the session's image."""
        result = self.result_of(request)
        if gate_model is None:
            raise gr.Error(
                "None of the compared models has attention gates to knock out: choose one that "
                "has (About the models says which).",
                title="Models",
            )
        if gate_model not in result.models:
            raise gr.Error(f"{gate_model} is not one of the compared models.", title="Models")
        target = result.models[gate_model].target.index

        def compute(loaded: Any) -> dict[str, Any]:
            model = loaded[gate_model].module
            x = model_input(result.image, gate_model).to(device_of(model))
            found = group_knockout(model, x, target, unit, gates, value)
            layer = get_model(gate_model).layer_module(result.layer)
            with knocked_out(model, unit, [found["ranking"][0]], gates, value):
                cam = grad_cam_result(model, x, target, layer).maps[0]
                cam = to_display(cam, result.image, gate_model)
            return found | {"model": gate_model, "target": target, "knocked_out_cam": cam}

        found = self.engine.analyse(compute)
        self._keep(request, result, "group_knockout", without_picture(found))
        return found

    @on_page()
    def knockout(
        self,
        unit: str,
        gate_model: str,
        gates: str,
        value: str,
        computed: dict | None = None,
        request: gr.Request = None,
    ) -> dict:
        result = self.result_of(request)
        found = self.knockout_document(unit, gate_model, gates, value, request)
        picture = self.space.picture(figure_array(knockout_figure(found), CHART_DPI), lossless=True)
        display = result.image.display
        pair = np.concatenate(
            [
                overlay(display, result.models[gate_model].cam),
                np.full((display.shape[0], 8, 3), 255, np.uint8),
                overlay(display, found["knocked_out_cam"]),
            ],
            axis=1,
        )
        text = (
            f"Class {found['target']}, p = {found['probability']:.3g}. The whole unit knocked "
            f"out: {found['unit_dp']:+.3g}. {harmful_groups(found)} Below: the CAM as it is "
            f"(left) and with group {found['ranking'][0]} knocked out."
        )
        t = self.tab
        return {
            t.knock_text: text,
            t.knock_charted: {"model": gate_model, "unit": unit},
            **self.computed_for("knockout", result, computed, [picture, self.space.picture(pair)]),
        }

    @staticmethod
    def pick_bar(charted: dict[str, str] | None, evt: gr.EventData = None) -> tuple[str, str, int]:
        """A click on the knockout chart: the model, unit and group of the bar under it (the
        chart's own, whatever the explorer shows now)."""
        if not isinstance(charted, dict):
            raise gr.Error("Knock out a unit's groups first, then click a bar.", title="No bar")
        gate_model, unit = charted["model"], charted["unit"]
        unit_groups = unit_layouts(gate_model)[unit].groups
        click = event_data(evt) or {}
        index = click.get("index") if isinstance(click, dict) else None
        if not isinstance(index, (list, tuple)) or not index:
            raise gr.Error("Click a bar of the chart.", title="No bar")
        width = CHART_SIZE[0] * CHART_DPI
        fraction = (float(index[0]) / width - CHART_LEFT) / (CHART_RIGHT - CHART_LEFT)
        group = int(np.floor(fraction * unit_groups))
        if not 0 <= group < unit_groups:
            raise gr.Error("Click a bar of the chart.", title="No bar")
        return gate_model, unit, group


def without_picture(found: dict[str, Any]) -> dict[str, Any]:
    """A knockout's document without the knocked-out CAM (a picture, not JSON)."""
    return {k: v for k, v in found.items() if k != "knocked_out_cam"}


def box_numbers(text: str | None) -> list[float]:
    """The numbers of a box's text ("x0 y0 x1 y1", or one corner "x y"); [] if it has none or
    is not numbers."""
    try:
        values = [float(v) for v in (text or "").replace(",", " ").split()]
    except ValueError:
        return []
    return values if all(np.isfinite(values)) else []


def box_scale(size: tuple[int, int]) -> int:
    """The box picture's pixels per input pixel: the input drawn at ~448 px, a crisp line."""
    return max(1, round(448 / max(size)))


def box_localisation(result: Explanation, box: str) -> str:
    """The box's localisation numbers against each model's CAM (`sa_viz.analyses.pointing`,
    cheap: drawn with the box, no button); what is missing for them otherwise."""
    values = box_numbers(box)
    if not values:
        return ""
    if len(values) == 2:
        return "One corner so far: click the opposite corner for the box's numbers."
    try:
        boxes = typed_boxes(box, result)
    except gr.Error as error:
        return error.message
    lines = ["**In the box**, each model's CAM:"]
    for name, m in result.models.items():
        # The localisation reads the CAM and the boxes only: no model, no run. Both in the
        # model's own input (what it saw of the box, where its crop is narrower).
        x = model_input(result.image, name)
        cam, scaled = in_model_input(m.cam, boxes, x, region_of(result.image, name))
        image = ImageInput(None, x, cam, m.target.index, scaled)  # type: ignore[arg-type]
        placed = localisation(image)
        n = placed.numbers if placed is not None else {}
        if not n or not np.isfinite(n["pointing_hit"]):
            lines.append(f"**{m.title}**: a flat map, which points nowhere")
            continue
        lines.append(
            f"**{m.title}** (class {m.target.index}): its peak is "
            f"{'inside' if n['pointing_hit'] else 'outside'} the box, {n['energy_inside']:.0%} "
            f"of its mass inside, IoU {n['box_iou']:.2f}"
        )
    return "  \n".join(lines)


def explained(result: Explanation) -> dict[str, str]:
    """What an explanation is, in words, by aspect (the image by a hash of its pixels): what a
    panel was computed for, to say when the page shows another."""
    image = hashlib.sha256(result.image.display.tobytes()).hexdigest()[:16]
    target = result.requested_class
    return {
        "image": f"{image}{' crop' if result.image.crop else ''}",
        "models": " and ".join(m.title for m in result.models.values()),
        "class": "each model's own top-1" if target is None else f"class {target}",
        "layer": result.layer,
        "method": METHODS[result.method].title,
    }


def stale_text(then: dict[str, str], now: dict[str, str]) -> str:
    """The note of a panel computed for `then` while the page shows `now` ("" if the same)."""
    changes = [
        "another image" if key == "image" else f"{then[key]}, now {now.get(key)}"
        for key in then
        if then[key] != now.get(key)
    ]
    if not changes:
        return ""
    return (
        f"**Of an earlier explanation** ({'; '.join(changes)}): press the button again for "
        "the one shown now."
    )


def numbers_table(found: dict[str, Any], names: list[str], titles: dict[str, str]) -> pd.DataFrame:
    """One row per number of each analysis, one column per model ("—": does not apply)."""
    registry = analyses()
    rows = []
    for name in names:
        analysis = registry[name]
        for number in analysis.numbers:
            row = {"analysis": name, "number": number}
            for model, title in titles.items():
                value = found.get(model, {}).get(name, {}).get("numbers", {}).get(number)
                row[title] = "—" if value is None else f"{value:.4g}"
            better = analysis.higher_is_better.get(number)
            row["better"] = "" if better is None else ("↑" if better else "↓")
            rows.append(row)
    return pd.DataFrame(rows, columns=["analysis", "number", *titles.values(), "better"])


def typed_boxes(text: str | None, result: Explanation) -> tuple[Box, ...]:
    """A typed box ("x0 y0 x1 y1", the image's own pixels) in the model input's pixels."""
    if not text or not text.strip():
        return ()
    box = tuple(box_numbers(text))
    if len(box) == 2:
        raise gr.Error(
            "The box has one corner so far: click its opposite corner on the picture, or type "
            "all four numbers.",
            title="Box",
        )
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        raise gr.Error(
            "Type the box as four numbers, x0 y0 x1 y1, left and top first, in the image's own "
            "pixels (e.g. 30 0 385 300).",
            title="Box",
        )
    mapped = boxes_in_input([box], result.image)
    if not mapped:
        raise gr.Error("The box lies outside what the models see.", title="Box")
    return mapped


def harmful_groups(found: dict[str, Any]) -> str:
    """The groups whose knockout lowers the class's probability most, in words; a rise is not
    harm (a unit of one group whose knockout helped was called its most harmful)."""
    dp = found["group_dp"]
    worst = [g for g in found["ranking"][:5] if dp[g] < 0]
    if not worst:
        best = max(range(len(dp)), key=lambda g: dp[g])
        return (
            "Knocking out a single group lowers the probability for none of them (the largest "
            f"change: group {best}, {dp[best]:+.3g})."
        )
    return (
        "Most harmful groups (Δ probability): "
        + ", ".join(f"group {g} ({dp[g]:+.3g})" for g in worst)
        + "."
    )
