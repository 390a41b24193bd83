"""The page's and the API's event handlers around one `Engine`: each returns its outputs by
component (`{component: value}`, or the one value of a one-output event); `hints.handler`
turns a failure into a sentence for people, and `hints.on_page` into the page's hint."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from sa_viz import render
from sa_viz.app.choices import (
    CLASS_CHOICES,
    CROP,
    DEFAULT_UNIT,
    NEEDS_AN_IMAGE,
    NONE,
    OWN_TOP1,
    PLACE_OF,
    TABLE_HEADERS,
    UNIT_NAMES,
    VIEW_HINTS,
    WHOLE,
    chosen_models,
    model_choice,
    pair_choices,
    pair_of,
    pair_value,
)
from sa_viz.app.engine import Engine, ModelsUnavailable, Progress, Sessions, Settings
from sa_viz.app.gradio_internals import event_data
from sa_viz.app.hints import HintBoard, Superseded, handler, on_page, refuse, time_limit_message
from sa_viz.app.jobs import LongJobs, session_of
from sa_viz.app.tempspace import TempSpace
from sa_viz.app.url_state import example_named, link_view
from sa_viz.app.validation import parse_target
from sa_viz.cam import DEFAULT_LAYER, METHODS
from sa_viz.data.imagenet import class_index
from sa_viz.data.preprocess import prepare_image
from sa_viz.errors import stage
from sa_viz.hooks import Stopped, TimeLimitExceeded
from sa_viz.models import DEFAULT_PAIR, get_model, list_models
from sa_viz.models.weights import WeightsStatus
from sa_viz.outputs.document import explanation_document
from sa_viz.outputs.export import write_zip
from sa_viz.pipeline.explain import Explanation, analyse_explanation
from sa_viz.probes import UnitGates, attention_of, unit_layouts
from sa_viz.render import paper, views

if TYPE_CHECKING:
    from sa_viz.app.layout import Page

# An event's outputs by component; `gr.skip()` (all unchanged) where nothing changes.
Outputs = dict[Any, Any]


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


NO_GATES = "Neither of the compared models has attention gates: choose " + " or ".join(
    get_model(name).title for name in list_models() if attention_of(name)
)


def group_slider(groups: int, rows: str = "group") -> dict[str, Any]:
    """The group slider for a unit with `groups` rows of gates, named as its layout names them
    ("Group", "Kernel path", "Radix split"), reaching its last one; it stands at 0 for a unit
    with one."""
    return gr.update(
        interactive=groups > 1,
        maximum=max(1, groups - 1),
        label=rows[:1].upper() + rows[1:],
        **({} if groups > 1 else {"value": 0}),
    )


def own_unit(units: Mapping[str, Any], unit: str) -> tuple[str, bool]:
    """`unit` where the shown model has it, else the model's first (and True: swapped; the
    page's unit may be another model's: GC-ResNet-50-T's are `stages.N.M`, the ResNets'
    `layerN.M`); `unit` as it is for a model without units."""
    swapped = bool(units) and unit not in units
    return (next(iter(units)) if swapped else unit), swapped


def gate_model_of(result: Explanation, wanted: str | None) -> str | None:
    """The model whose gates the explorer shows: `wanted` if it has gates in this result, else
    the first compared model that has them (None if neither has)."""
    gated = views.gated_models(result)
    if wanted in gated:
        return wanted
    return gated[0] if gated else None


def _rows_of(gates: UnitGates | None) -> tuple[int, str]:
    """A unit's rows of gates and their name (1 and "group" for no unit)."""
    if gates is None:
        return 1, "group"
    return gates.groups, gates.layout.rows if gates.layout else "group"


class Handlers:
    """The app's event handlers around one `Engine`, for one page's components (`Page`): each
    returns its outputs by component."""

    def __init__(
        self,
        engine: Engine,
        page: Page,
        space: TempSpace | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.engine, self.page = engine, page
        self.space = space or TempSpace()
        self.sessions = Sessions() if sessions is None else sessions
        self.jobs = LongJobs()
        self.hints = HintBoard(page.hints, PLACE_OF, default="run", empty=NEEDS_AN_IMAGE)
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
    def weights_status(self) -> Outputs:
        try:
            statuses = self.engine.statuses(timeout=300)
        except ModelsUnavailable as error:
            banner = gr.Markdown(f"**{error}**", elem_classes=["untrained-banner"])
        else:
            ok = not any(s.untrained for s in statuses)
            banner = gr.Markdown(
                status_markdown(statuses), elem_classes=["ok-banner" if ok else "untrained-banner"]
            )
        return {self.page.banner: banner}

    @handler
    def captions(
        self,
        model_a: str = DEFAULT_PAIR[0],
        model_b: str = DEFAULT_PAIR[1],
        gate_model: str | None = None,
        model_c: str = NONE,
        model_d: str = NONE,
        pair: str = "",
        unit: str = DEFAULT_UNIT,
    ) -> Outputs:
        """The page's names for the chosen models, once the page opens and after each
        explanation: each model's table and CAM picture (with "UNTRAINED" where it is; those of
        an empty slot hidden), the difference map's pairs and its "second − first", the gate
        explorer's model choices, its units (`unit` where the model has it, else its first)
        and whether its group slider moves.

        A page event of its own: the explanation returns values only, so its API output stays
        plain (an update of a label would reach gradio_client as a dict) and gradio builds no
        new component per output and request."""
        try:
            statuses = {s.model: s for s in self.engine.statuses(timeout=300)}
        except ModelsUnavailable:
            return gr.skip()
        chosen = chosen_models(model_a, model_b, model_c, model_d)
        twice = len(set(chosen)) != len(chosen)
        if len(chosen) < 2 or twice or any(name not in statuses for name in chosen):
            return gr.skip()
        p, e = self.page, self.page.explorer
        gated = [name for name in chosen if attention_of(name)]
        shown = gate_model if gate_model in gated else (gated[0] if gated else None)
        units = unit_layouts(shown) if shown else {}
        layouts = list(units.values())
        groups = max((u.groups for u in layouts), default=1)
        rows = layouts[0].rows if layouts else "group"
        unit, swapped = own_unit(units, unit)  # a swapped unit starts at group 0
        outputs = {}
        # The chosen models fill the panels in order (A, B, then C and D without a gap): the
        # explanation's results do the same.
        for i, (table, cam) in enumerate(zip(p.tables, p.cams, strict=True)):
            if i < len(chosen):
                caption = views.model_caption(statuses[chosen[i]])
                outputs[table] = gr.update(label=f"{caption}: top-5", visible=True)
                # The title only: the picture itself is stamped "UNTRAINED weights" where it
                # is, and at 800 px the longer label was cut ("ResNet-50 (UNTRAINED weigh").
                outputs[cam] = gr.update(label=statuses[chosen[i]].title, visible=True)
            else:
                outputs[table] = outputs[cam] = gr.update(visible=False)
        first, second = pair_of(pair, chosen)
        return {
            **outputs,
            p.difference: gr.update(
                label=views.difference_label([get_model(n).title for n in (first, second)])
            ),
            p.pair: gr.update(choices=pair_choices(chosen), value=pair_value(first, second)),
            e.gate_model: gr.update(choices=[model_choice(n) for n in gated], value=shown),
            e.unit: gr.update(choices=list(units) or UNIT_NAMES, value=unit),
            e.group: group_slider(groups, rows) | ({"value": 0} if swapped else {}),
        }

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
        model_c: str = NONE,
        model_d: str = NONE,
        pair: str = "",
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's idiom)
        event: gr.EventData = None,  # gradio fills it in for events from the page
        request: gr.Request = None,  # gradio fills it in; None: called from Python
    ) -> Outputs:
        """Run the chosen models, `model_a`, `model_b` and the optional `model_c` and `model_d`
        (`NONE`: not used), in that order; their results for the page's `Page.explain_outputs`
        (`pair`: the difference map's, "second − first" by name; "": the first two). The session
        keeps the result (`Sessions`) for later view updates and exports."""
        if not image:
            if isinstance(getattr(event, "target", None), gr.Image):
                return gr.skip()  # the page's image was cleared
            raise refuse("Upload an image first (or pick one of the examples).", "No image")
        result = self._explain(
            image,
            crop_mode,
            target,
            method,
            layer,
            request,
            lambda f, t: progress(f, desc=t),
            chosen_models(model_a, model_b, model_c, model_d),
        )
        shown = gate_model_of(result, gate_model)
        overview = self._render.submit(self._overview, result, shown)
        outputs = {
            self.page.summary: views.prediction_summary(result),
            **self._tables(result),
            **self._cams(result, colormap, alpha, normalization, pair),
            **self._gates(result, unit, group, colormap, alpha, scale, shown, any_unit=True),
        }
        outputs[self.page.explorer.overview] = overview.result()
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
        model_c: str = NONE,
        model_d: str = NONE,
        request: gr.Request = None,
    ) -> dict:
        """/explain_json: the explanation as one JSON document (`explanation_document`)
        instead of the page's outputs; the session keeps the result for view updates. With
        `analyses` ("deletion_insertion,knockout", …), their results too, per model."""
        if not image:
            raise refuse("Upload an image first.", "No image")
        models = chosen_models(model_a, model_b, model_c, model_d)
        result = self._explain(image, crop_mode, target, method, layer, request, models=models)
        self._keep(request, result, image)
        names = [a for a in (analyses or "").split(",") if a]
        found = None
        if names:
            found = self.engine.analyse(lambda loaded: analyse_explanation(result, loaded, names))
        return explanation_document(result, analyses=found, file=self._file_name(request))

    @handler
    def update_cams(
        self,
        colormap: str,
        alpha: float,
        normalization: str,
        pair: str = "",
        request: gr.Request = None,
    ) -> Outputs:
        """The CAMs, and the difference of `pair` ("second − first" by name; "": the first
        two), in a new look."""
        return self._cams(self._need(request), colormap, alpha, normalization, pair)

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
    ) -> Outputs:
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
    ) -> Outputs:
        """Another model's gates in the explorer: its pictures, its gate statistics and whether
        the group slider moves (a unit with one group holds it at 0)."""
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        units = result.models[shown].gates if shown else {}
        unit, swapped = own_unit(units, unit)
        group = 0 if swapped else group
        slider = group_slider(*_rows_of(units.get(unit))) | ({"value": 0} if swapped else {})
        e = self.page.explorer
        return {
            **self._gates(result, unit, group, colormap, alpha, scale, shown),
            e.overview: self._overview(result, shown),
            e.group: slider,
            e.unit: gr.update(choices=list(units) or UNIT_NAMES, value=unit),
        }

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
        figure_formats: list[str] | None = None,
        figure_width: str = "double",
        pair: str = "",
        request: gr.Request = None,
    ) -> str:
        """The ZIP of what is on screen (its one output: the file); with `figure_formats`, the
        same views as figures for papers too, `figure_width` ("single", "double" or "screen")."""
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
                figure_formats=tuple(figure_formats or ()),
                figure_width=paper.figure_width(None if figure_width == "screen" else figure_width),
                pair=pair_of(pair, list(result.models)),
                file=self._file_name(request),
            )
        return str(path)

    @handler
    def choose_prediction(self, table: Any, evt: gr.EventData = None) -> str:
        """A click on a prediction makes its class the CAM target of both models (the one
        output: the class box's choice). `gr.EventData`, not `gr.SelectData`: see
        `gradio_internals.event_data`."""
        click = event_data(evt)
        try:  # the table arrives as sent (the event has preprocess=False)
            index = click["index"]
            row = index[0] if isinstance(index, (list, tuple)) else index
            rows = table["data"] if isinstance(table, dict) else table
            index = re.search(r"\d+", str(rows[int(row)][0]))  # "▶ 283 · Persian cat"
            return CLASS_CHOICES[class_index(index.group()) + 1]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise refuse(
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
        pair: str = "",
        request: gr.Request = None,
    ) -> Outputs:
        """A new colormap or opacity: the CAMs and the gate pictures (`update_cams` and
        `update_gates` in one event, so the page gets one answer, and one hint without an image)."""
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        return {
            **self._cams(result, colormap, alpha, normalization, pair),
            **self._gates(result, unit, group, colormap, alpha, scale, shown),
        }

    @handler
    def pick_group(
        self,
        unit: str,
        gate_model: str | None = None,
        evt: gr.EventData = None,
        request: gr.Request = None,
    ) -> Any:
        """A click on a tile of the unit's mosaic opens that group: the group slider (the one
        output) moves to it, unchanged for a click beside the tiles."""
        click = event_data(evt) or {}
        result = self._need(request)
        shown = gate_model_of(result, gate_model)
        try:
            x, y = (float(v) for v in click["index"])
        except (KeyError, TypeError, ValueError):
            return gr.skip()
        group = None if shown is None else views.group_at(result, unit, x, y, model=shown)
        return gr.skip() if group is None else group

    def from_url(self, request: gr.Request = None) -> Outputs:
        """The view a shared link names: its controls set, its example loaded (which starts the
        explanation), a hint for what it named wrongly (`url_state.link_view`)."""
        query = dict(getattr(request, "query_params", None) or {})
        outputs, wrong = link_view(query, self.page, self.space)
        note = refuse(
            f"This link's {', '.join(wrong)} named nothing this page has: "
            f"{'they were' if len(wrong) > 1 else 'it was'} left at the default.",
            "Link",
        )
        return {**outputs, **(self.hints.show(note) if wrong else self.hints.clear())}

    # --- the page's events: results kept on a failure, which shows as a hint (`on_page`) -------

    def _put_back(self, error: gr.Error, *args: Any, **kwargs: Any) -> Outputs:
        """After the page's image itself was refused (unreadable, too large, …): the image box
        shows again the image the panels explain (empty before a first explanation), the
        address its example, and the hint under the box says so. Before, the box kept the
        refused picture, and every later control change sent it again and was refused while
        the panels went on showing the earlier result (issue 27)."""
        if PLACE_OF.get(error.title) != "image" or error.title in NEEDS_AN_IMAGE:
            return {}
        request = inspect.signature(self.explain).bind(*args, **kwargs).arguments.get("request")
        shown = self._shown_image(request)
        more = " The page still shows the image explained before, and its results." if shown else ""
        return {
            **self.hints.show(refuse(error.message + more, error.title)),
            self.page.inputs.image: shown,
            self.page.example: example_named(shown),
        }

    def _source(self, request: gr.Request | None) -> str | None:
        """What the session's result was explained from: an uploaded file's path or a `data:`
        URL (None: nothing explained yet, or the session expired)."""
        try:
            return self.sessions.get(session_of(request)).source
        except LookupError:
            return None

    def _file_name(self, request: gr.Request | None) -> str | None:
        """The name of the session's image file as it was uploaded ("chelsea.jpg"; gradio keeps
        it in its upload folder), for explanation.json."""
        source = self._source(request)
        return Path(source).name if source and not source.startswith("data:") else None

    def _shown_image(self, request: gr.Request | None) -> str | None:
        """The uploaded file of the session's result, if it still has one."""
        source = self._source(request)
        return source if source is not None and Path(source).is_file() else None

    @on_page(undo=_put_back)
    @functools.wraps(explain)
    def _page_explain(self, *args: Any, **kwargs: Any) -> Outputs:
        """`explain`, and the class box in the list's words: a class typed as "tabby" or "281"
        shows as "281: tabby (tabby cat)", so the page's address, which takes a class from the
        list's words only, names the class the panels show."""
        outputs = self.explain(*args, **kwargs)
        if outputs == gr.skip():
            return outputs
        target = inspect.signature(self.explain).bind(*args, **kwargs).arguments.get("target")
        index = parse_target(target)  # the explanation took it
        listed = OWN_TOP1 if index is None else CLASS_CHOICES[index + 1]
        return outputs if target == listed else {**outputs, self.page.inputs.target: listed}

    page_cams = on_page(VIEW_HINTS)(update_cams)
    page_gates = on_page(VIEW_HINTS)(update_gates)
    page_look = on_page(VIEW_HINTS)(update_look)
    page_switch_gates = on_page(VIEW_HINTS)(switch_gates)

    @on_page(VIEW_HINTS)
    def page_export(self, *args: Any, **kwargs: Any) -> Outputs:
        """The Export tab's button: the ZIP in its file box."""
        return {self.page.export.file: self.export(*args, **kwargs)}

    @functools.wraps(explain)
    def page_explain(self, *args: Any, **kwargs: Any) -> Outputs:
        """The page's explanation, in the models lane: `explain`'s outputs and the hints. A long
        method (ScoreCAM) is not computed here: the long lane's trigger starts
        `page_explain_long` in a lane of its own, so it never holds up anyone's Grad-CAM."""
        call = inspect.signature(self.explain).bind(*args, **kwargs)
        call.apply_defaults()
        image, method, request = (call.arguments[k] for k in ("image", "method", "request"))
        if isinstance(getattr(call.arguments["event"], "target", None), gr.Image) and (
            image and image == self._shown_image(request)
        ):
            # The image box set to the image the panels already explain: put back after a
            # refused image (`_put_back`), or the same file again. Nothing to do, and the
            # refusal's hint stays.
            return gr.skip()
        long = bool(image) and method in METHODS and METHODS[method].long
        token = self.jobs.start(session_of(request), call if long else None)
        if long:
            return {**self.hints.clear(), self.page.long_trigger: str(token)}
        return self._page_explain(*call.args, **call.kwargs)

    def page_explain_long(
        self,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's idiom)
        request: gr.Request = None,
    ) -> Outputs:
        """The long lane: the page's waiting long explanation, with its real progress (one report
        per batch of ScoreCAM's passes). It stops at its next report once the page asks for
        something newer, and then changes nothing on the page."""
        session = session_of(request)
        job = self.jobs.take(session)
        if job is None:
            return gr.skip()
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
        """The chosen models on `image` (or the cache). The caller has the session keep it
        (`_keep`) once it is shown: a result that failed to draw must not become the one later
        view changes draw, under the previous result's tables."""
        twice = [name for i, name in enumerate(models) if name in models[:i]]
        if twice:
            raise refuse(
                f"{get_model(twice[0]).title} is chosen twice: choose different models to "
                "compare (C and D may be left at none).",
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
            return self.engine.explain(image, settings, progress)
        except Stopped:  # a TimeLimitExceeded too, but the server's, not the request's
            raise
        except TimeLimitExceeded:
            raise refuse(time_limit_message(self.engine.time_limit, method), "Too slow") from None

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
    @stage("drawing")
    def _tables(self, result: Explanation) -> Outputs:
        """Each model's top-5 in its panel, in order; the panels of no model emptied."""
        names = [*result.models, *[None] * (len(self.page.tables) - len(result.models))]
        return {
            table: None
            if name is None
            else {"data": views.prediction_rows(result, name), "headers": TABLE_HEADERS}
            for table, name in zip(self.page.tables, names, strict=True)
        }

    @stage("drawing")
    def _cams(
        self, result: Explanation, colormap: str, alpha: float, normalization: str, pair: str = ""
    ) -> Outputs:
        """Each model's CAM in its panel, in order (the panels of no model emptied), the
        difference of `pair` ("second − first" by name; "": the first two) and their text."""
        look = {"colormap": colormap, "alpha": alpha, "normalization": normalization}
        view = views.cam_view(result, pair=pair_of(pair, list(result.models)), **look)
        p = self.page
        names = [*result.models, *[None] * (len(p.cams) - len(result.models))]
        what = f"{result.method}_{result.layer}"
        compared = "_minus_".join(reversed(view.order))  # second − first, by title
        return {
            **{
                cam: None
                if name is None
                else self.space.picture(
                    view.overlays[name],
                    name=f"{name}_{what}_class{result.models[name].target.index}",
                )
                for cam, name in zip(p.cams, names, strict=True)
            },
            p.difference: self.space.picture(view.difference, name=f"difference_{compared}_{what}"),
            p.cam_text: views.targets_text(result) + "  \n" + views.agreement_text(view),
        }

    @stage("drawing")
    def _overview(self, result: Explanation, model: str | None) -> str | None:
        if model is None:
            return None
        return self.space.picture(
            views.summary_picture(result, model), lossless=True, name=f"gate_statistics_{model}"
        )

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
        any_unit: bool = False,
    ) -> Outputs:
        """The gate explorer's pictures and text for `model`'s `unit`; `any_unit`: a unit the
        model does not have (the page's, chosen for another model) shows its first unit
        (`own_unit`), and the text says so."""
        e = self.page.explorer
        if model is None:
            why = views.no_gates_text(result)
            note = views.render.note_panel("No attention gates", why.replace("**", ""))
            picture = self.space.picture(note, lossless=True)
            text = NO_GATES + (views.unread_note(result) if why != views.NO_UNITS else "")
            return {e.mosaic: picture, e.channel: picture, e.detail: picture, e.gate_text: text}
        gates = result.models[model].gates
        instead = ""
        if any_unit and (found := own_unit(gates, unit))[1]:
            title = result.models[model].title
            instead = f"{unit} is not a unit of {title}: its first, {found[0]}, is shown.  \n"
            unit, group = found[0], 0
        if unit not in gates:
            raise refuse(
                f"Attention unit (parameter `unit`) must be one of {', '.join(gates)} for "
                f"{result.models[model].title}; got {unit!r}.",
                "Unknown unit",
            )
        groups = gates[unit].groups
        if groups == 1:
            group = 0  # a unit without groups (SE): the group does not matter
        if not 0 <= int(group) < groups:
            raise refuse(
                f"Group (parameter `group`) must be a whole number from 0 to {groups - 1} for "
                f"{unit} of {result.models[model].title}; got {group}.",
                "Unknown group",
            )
        group = int(group)
        look = {"colormap": colormap, "alpha": alpha, "scale": scale, "model": model}
        what = f"{model}_{unit}"
        mosaic = self._render.submit(
            lambda: self.space.picture(
                views.gate_mosaic(result, unit, group, **look), name=f"spatial_gates_{what}"
            )
        )
        heat = self.space.picture(
            views.channel_gates(result, unit, group, model=model),
            lossless=True,
            name=f"channel_gates_{what}",
        )
        detail = self.space.picture(
            views.group_detail(result, unit, group, **look), name=f"gates_{what}_row{group}"
        )
        text = instead + views.gate_range_text(result, unit, scale, model=model)
        return {e.mosaic: mosaic.result(), e.channel: heat, e.detail: detail, e.gate_text: text}
