"""The app assembled: the page's layout, its events (private, answering with hints), the named
API endpoints, the lanes they run in, and the input checks; `build_app` returns the Blocks."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sa_viz.app.analyses_tab import AnalysisHandlers
from sa_viz.app.choices import HINT_PLACES, SLOTS
from sa_viz.app.engine import (
    Engine,
    Sessions,
)
from sa_viz.app.handlers import Handlers
from sa_viz.app.layout import Page, layout
from sa_viz.app.study_browser import BrowserHandlers
from sa_viz.app.study_map import MapHandlers
from sa_viz.app.study_tab import StudyHandlers, StudyLimits
from sa_viz.app.tempspace import TempSpace
from sa_viz.app.url_state import address
from sa_viz.app.validation import guard_events, page_params

log = logging.getLogger(__name__)

# View updates and exports: their own lane, several at once, so none waits behind another
# user's explanation or behind another view update that computes an evicted result again
# (`Engine.recall` lets at most two do that at once). The page's explanations: one at a time in
# the models lane, long methods one at a time in a lane of their own; the API's explanations in
# theirs, two at once (a long one beside a one-pass one).
VIEW_LANE_SIZE = 4  # view updates and exports running at once (explanations: one at a time)
# Gradio keeps per-session copies of the page's components (for the captions' labels); results
# are held by `Sessions`, not by gradio, so a small number is enough.
GRADIO_SESSIONS = 200
VIEW_LANE = {"concurrency_id": "views", "concurrency_limit": VIEW_LANE_SIZE}
API_LANE = {"concurrency_id": "api", "concurrency_limit": 2}
# After an explanation of the page: the hint it showed, if any, scrolled into view where it is
# off screen (the least scroll that shows it). A refused upload's note under the image box was
# below the window's edge when the box was (issue 27). After an explanation, a hint on screen
# is the explanation's own: a success hides them all.
REVEAL_HINT = """
() => {
    setTimeout(() => {
        for (const place of PLACES) {
            const hint = document.getElementById("hint-" + place);
            if (!hint || hint.offsetParent === null || !hint.innerText.trim()) continue;
            const box = hint.getBoundingClientRect();
            if (box.top < 0 || box.bottom > window.innerHeight) {
                hint.scrollIntoView({block: "nearest"});
            }
        }
    }, 100);
    return [];
}
""".replace("PLACES", json.dumps(HINT_PLACES))


# After an explanation of a new image (an upload, an example, the Explain button): where the
# results stand under the inputs (below ~1000 px), the page scrolls to them. At 800 px they
# began ~1450 px down and nothing said they had come (issue 27); a control's change keeps the
# page where it is, at the control. `MARK_NEW_IMAGE` marks the request, `REVEAL_RESULTS`
# scrolls once it is answered.
MARK_NEW_IMAGE = "() => { window.saVizNewImage = true; return []; }"
REVEAL_RESULTS = """
() => {
    if (!window.saVizNewImage) return [];
    window.saVizNewImage = false;
    // A refusal's hint is what to read then (REVEAL_HINT shows it), not the earlier results
    for (const hint of document.querySelectorAll("[id^=hint-]")) {
        if (hint.offsetParent !== null && hint.innerText.trim()) return [];
    }
    const results = document.getElementById("summary");
    const inputs = document.getElementById("explain");
    if (!results || !inputs) return [];
    const stacked = results.getBoundingClientRect().top > inputs.getBoundingClientRect().bottom;
    if (stacked && results.getBoundingClientRect().top > window.innerHeight / 2) {
        results.scrollIntoView({block: "start", behavior: "smooth"});
    }
    return [];
}
"""


# The result pictures load at once, wherever they stand: gradio's <img loading="lazy"> left a
# CAM more than ~1250 px below the window unloaded (at 800 px, where the results stand under
# the inputs, a link's explanation showed empty panels until scrolled to). An attribute the
# page sets on its own elements, after gradio draws them.
EAGER_PICTURES = """
() => {
    const eager = () => {
        for (const image of document.querySelectorAll(".picture img[loading=lazy]")) {
            image.loading = "eager";
        }
    };
    new MutationObserver(eager).observe(document.body, {subtree: true, childList: true});
    eager();
    return [];
}
"""


# The class list as a person searches it: gradio's filter keeps the list's order (class number),
# so "espresso" listed 550 espresso maker above 967 espresso and Enter took it, and "cat" listed
# bullfrog (Rana catesbeiana) first (issue 27). The page orders the shown entries by
# `choices.ranked_classes`'s rule (the class of that index or exact name; a whole word; the
# start of a word; the rest; by class within each) with CSS `order`, and Enter, unless the
# arrow keys chose an entry, takes the first shown, through gradio's own mousedown. Choices
# sent from the server while the list is open (tried first) left gradio's filter pointing at
# the old list's entries.
CLASS_SEARCH = r"""
() => {
    const box = document.getElementById("target");
    if (!box) return [];
    const escape = text => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const score = (wanted, label) => {
        const found = /^(\d+): (.*?)(?: \((.*)\))?$/.exec(label);
        if (!found) return 3;
        const names = [found[2], ...(found[3] ? found[3].split(", ") : [])]
            .map(name => name.toLowerCase());
        if (wanted === found[1] || names.includes(wanted)) return 0;
        const word = new RegExp("\\b" + escape(wanted) + "\\b");
        if (names.some(name => word.test(name))) return 1;
        const start = new RegExp("\\b" + escape(wanted));
        return names.some(name => start.test(name)) ? 2 : 3;
    };
    const reorder = () => {
        const input = box.querySelector("input");
        const wanted = input ? input.value.trim().toLowerCase() : "";
        for (const item of box.querySelectorAll("ul[role=listbox] li[role=option]")) {
            const index = Number(item.dataset.index) || 0;
            const label = item.getAttribute("aria-label") || "";
            item.style.order = wanted ? String(score(wanted, label) * 2000 + index) : "";
        }
    };
    new MutationObserver(reorder).observe(box, {subtree: true, childList: true});
    box.addEventListener("input", () => setTimeout(reorder, 0), true);
    let navigated = false;
    box.addEventListener("keydown", event => {
        if (["ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) {
            navigated = true;
            return;
        }
        if (event.key !== "Enter") {
            navigated = false;
            return;
        }
        const items = [...box.querySelectorAll("ul[role=listbox] li[role=option]")];
        if (navigated || !items.length || !box.querySelector("input").value.trim()) return;
        // The order by the box's text now: the reorder queued by the last key may not have
        // run yet (the browser runs input before timers; "espress" ranks 550 first).
        reorder();
        items.sort((a, b) => Number(a.style.order || 0) - Number(b.style.order || 0));
        event.preventDefault();
        event.stopImmediatePropagation();
        items[0].dispatchEvent(new MouseEvent("mousedown", {bubbles: true, cancelable: true}));
    }, true);
    return [];
}
"""


def page_events(demo: gr.Blocks, handlers: Handlers, page: Page) -> None:
    """The page's own events: private (not in the API), each answering with the hints."""
    i, e = page.inputs, page.explorer
    own = {"api_visibility": "private", "trigger_mode": "always_last"}
    views_quietly = {"show_progress": "hidden", **own, **VIEW_LANE}
    demo.load(handlers.weights_status, outputs=page.banner, api_name="weights_status")
    demo.load(None, js=EAGER_PICTURES, api_visibility="private")
    demo.load(None, js=CLASS_SEARCH, api_visibility="private")
    labels = {
        "inputs": [i.model_a, i.model_b, e.gate_model, i.model_c, i.model_d, page.pair, e.unit],
        "outputs": [
            *(*page.tables, *page.cams, page.difference, page.pair, e.gate_model, e.unit, e.group)
        ],
        "api_visibility": "private",  # the page's own names: nothing for an API caller
        "show_progress": "hidden",
        **VIEW_LANE,
    }
    demo.load(handlers.captions, **labels)
    # What an explanation of the page may set besides its results: the image box and the
    # example's name after a refused image, the class box in the list's words. Its progress
    # over the results only: a hint shown by a refusal stayed faded (gradio's pending look)
    # after the event that the image put back starts, which changes nothing.
    put_back = [i.image, page.example, i.target]
    explain = {
        "fn": handlers.page_explain,
        "inputs": page.explain_inputs,
        "outputs": [*page.explain_outputs, *page.hint_outputs, page.long_trigger, *put_back],
        # Its progress at the top of the results (where the page scrolls to after a new image)
        # and on the first CAM (in view when a control below the image box is changed at
        # 1400 px); over every output it covered the text under the CAMs and was drawn on all
        # three panels (issue 27). The other results stay as they are until replaced.
        "show_progress_on": [page.summary, page.cams[0]],
        "api_name": "page_explain",
        "concurrency_id": "models",
        **own,
    }
    # `.input`: a person's change; a value set by the page itself (a click on a prediction)
    # starts the explanation once, below.
    triggers = [i.run.click, i.image.change]
    triggers += [c.input for c in (i.crop_mode, i.target, i.method, i.layer)]
    triggers += [model.input for model in i.models]
    explained = gr.on(triggers, **explain)
    explained.success(handlers.captions, **labels)
    explained.then(None, js=REVEAL_HINT, api_visibility="private")
    explained.success(None, js=REVEAL_RESULTS, api_visibility="private")
    for new_image in (i.image.upload, i.run.click, i.examples.dataset.click):
        new_image(None, js=MARK_NEW_IMAGE, api_visibility="private")
    page.long_trigger.change(
        handlers.page_explain_long,
        outputs=[*page.explain_outputs, *page.hint_outputs, *put_back],
        api_name="page_explain_long",
        concurrency_id="long",
        concurrency_limit=1,
        # Its progress on the line under the CAMs: over every output, it hid the last results
        # for the whole run and was drawn four times.
        show_progress_on=[page.cam_text],
        **own,
    ).then(None, js=REVEAL_HINT, api_visibility="private")
    gr.on(
        [page.normalization.input, page.pair.input],
        handlers.page_cams,
        inputs=[*page.view_inputs, page.pair],
        outputs=[*page.cam_outputs, *page.hint_outputs],
        api_name="page_cams",
        **views_quietly,
    ).success(handlers.captions, **labels)  # the difference map's label: the pair's
    gr.on(
        [page.colormap.input, page.alpha.input],  # dragging, arrow keys, a typed number
        handlers.page_look,
        inputs=[*page.view_inputs, e.unit, e.group, e.scale, e.gate_model, page.pair],
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
    page.export.button.click(
        handlers.page_export,
        inputs=page.export_inputs,
        outputs=[page.export.file, *page.hint_outputs],
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
    # The captions follow the link's pair at once: without an example in the link, nothing
    # else would name its models until the first explanation (issue 27).
    address(demo, handlers.from_url, page, VIEW_LANE).then(handlers.captions, **labels)
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
                i.model_c,
                i.model_d,
            ],
            page.json_document,
            API_LANE,
        ),
        (
            "cam_view",
            handlers.update_cams,
            [*page.view_inputs, page.pair],
            page.cam_outputs,
            VIEW_LANE,
        ),
        ("gate_view", handlers.update_gates, page.gate_inputs, page.gate_outputs, VIEW_LANE),
        ("export_zip", handlers.export, page.export_inputs, page.export.file, VIEW_LANE),
    ]
    for name, fn, inputs, outputs, lane in endpoints:
        page.api_only.click(fn, inputs=inputs, outputs=outputs, api_name=name, **lane)


def study_events(
    demo: gr.Blocks, handlers: StudyHandlers, browsing: BrowserHandlers, page: Page
) -> None:
    """The Study tab's events: a study in a lane of its own, one at a time; opening a study
    from the studies folder, and browsing it, beside the view updates."""
    tab, own = page.study, {"api_visibility": "private"}
    demo.load(handlers.listing, outputs=tab.studies, api_name="studies", **own, **VIEW_LANE)
    ran = tab.run.click(
        handlers.run,
        inputs=[
            tab.files,
            page.inputs.model_a,
            page.inputs.model_b,
            tab.analyses,
            page.inputs.layer,
            page.inputs.method,
            page.inputs.model_c,
            page.inputs.model_d,
        ],
        outputs=tab.outputs,
        api_name="page_study",
        concurrency_id="study",
        concurrency_limit=1,
        show_progress_on=[tab.report],
        **own,
    )
    opened = tab.open.click(
        handlers.open, inputs=tab.studies, outputs=tab.outputs, api_name="page_open_study",
        **own, **VIEW_LANE,
    )  # fmt: skip
    browser_events(ran, opened, browsing, page)


# After a click in the study browser: the explorer's results, where the explanation that the
# image box's change starts will show them (at 800 px ~1500 px above the study's table).
SHOW_RESULTS = """
() => {
    setTimeout(() => document.getElementById("summary")?.scrollIntoView({block: "start"}), 100);
    return [];
}
"""


def browser_events(ran: Any, opened: Any, handlers: BrowserHandlers, page: Page) -> None:
    """The study browser's events: its controls and page answer with a page of rows, then the
    page's thumbnails (an event of their own, so the rows never wait for the pictures)."""
    b, study = page.study.browser, page.study.study
    own = {"api_visibility": "private", "trigger_mode": "always_last", **VIEW_LANE}
    quietly = {**own, "show_progress": "hidden"}
    query = [study, *b.query_inputs]
    shown = [*b.shown_outputs]
    pictures = {
        "fn": handlers.thumbnails,
        "inputs": [*query, b.page],
        "outputs": [b.thumbnails, b.hint],
        **own,
    }
    opens = [b.box, *b.query_inputs, *shown]
    for event, name in ((ran, "browse_study"), (opened, "browse_opened")):
        event.success(handlers.opened, inputs=study, outputs=opens, api_name=name, **own).success(
            **pictures, api_name=f"{name}_thumbnails"
        )
    filters = [b.label.input, b.outcome.input, b.name.submit, b.range_column.input]
    filters += [b.low.submit, b.high.submit, b.sort.input, b.descending.input]
    gr.on(
        filters, handlers.first, inputs=query, outputs=shown, api_name="browse", **quietly
    ).success(**pictures, api_name="browse_thumbnails")
    for button, by in ((b.previous, -1), (b.next, 1)):
        button.click(
            lambda page, by=by: handlers.step(page, by), inputs=b.page, outputs=b.page, **quietly
        ).success(handlers.show, inputs=[*query, b.page], outputs=shown, **quietly).success(
            **pictures
        )
    b.page.submit(handlers.show, inputs=[*query, b.page], outputs=shown, **quietly).success(
        **pictures
    )
    i = page.inputs
    explorer = [i.image, i.target, i.method, i.crop_mode, page.tabs, *i.models, i.layer, b.hint]
    for clicked in (b.table.select, b.thumbnails.select):
        clicked(handlers.open_image, inputs=study, outputs=explorer, **own).success(
            None, js=SHOW_RESULTS, api_visibility="private"
        )
    for button, fn in ((b.csv, handlers.csv), (b.zip, handlers.zip)):
        button.click(fn, inputs=query, outputs=[b.download, b.hint], **own)
    map_events(ran, opened, MapHandlers(handlers, page.study.map), page, explorer)


def map_events(ran: Any, opened: Any, handlers: MapHandlers, page: Page, explorer: list) -> None:
    """The map's events: its choices follow the study shown; drawing it (t-SNE and spectral
    clustering: seconds) in the analyses' lane, one at a time."""
    m, study, b = page.study.map, page.study.study, page.study.browser
    own = {"api_visibility": "private", "trigger_mode": "always_last"}
    shown = [m.model, m.features, m.picture, m.typical, m.strategies, m.text, m.drawn, m.hint]
    for event in (ran, opened):
        event.success(handlers.opened, inputs=study, outputs=shown, **own, **VIEW_LANE)
    m.draw.click(
        handlers.draw,
        inputs=[study, *m.controls, *b.query_inputs],
        outputs=[m.picture, m.text, m.typical, m.drawn, m.file, m.strategies, m.hint],
        concurrency_id="map",
        concurrency_limit=1,
        **own,
    )
    m.colouring.input(
        handlers.recolour, inputs=[study, m.colouring, m.drawn],
        outputs=[m.picture, m.drawn, m.hint], **own, **VIEW_LANE,
    )  # fmt: skip
    m.picture.select(
        handlers.open_point, inputs=[study, m.drawn], outputs=[*explorer[:-1], m.hint],
        **own, **VIEW_LANE,
    ).success(None, js=SHOW_RESULTS, api_visibility="private")  # fmt: skip
    m.download.click(
        handlers.files, inputs=[study, m.drawn], outputs=[m.file, m.hint], **own, **VIEW_LANE
    )


def analyses_events(demo: gr.Blocks, handlers: Handlers, page: Page) -> AnalysisHandlers:
    """The Analyses tab's events (one at a time, in a lane of their own) and its API."""
    a, e = page.analyses, page.explorer
    found = AnalysisHandlers(handlers.engine, handlers.space, handlers._need, a, e)
    handlers.analyses_of = found.exports  # the ZIP export includes them
    lane = {"concurrency_id": "analyses", "concurrency_limit": 1}
    own = {"api_visibility": "private", **lane}
    # Each panel also says what it was computed for (`a.computed`), and drops its stale mark.
    marks = {panel: [a.computed, a.stale[panel]] for panel in a.stale}
    a.faith_button.click(
        found.faithfulness, inputs=[a.box, a.computed],
        outputs=[a.faith_plot, a.faith_text, a.hint, *marks["faithfulness"]],
        api_name="page_faithfulness", show_progress_on=[a.faith_text], **own,
    )  # fmt: skip
    knock_inputs = [e.unit, e.gate_model, a.knock_gates, a.knock_value]
    a.knock_button.click(
        found.knockout,
        inputs=[*knock_inputs, a.computed],
        outputs=[a.knock_plot, a.knock_text, a.knock_cams, a.knock_charted, a.hint,
                 *marks["knockout"]],
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
    ).success(  # the group opened where it can be seen: before, on the hidden tab (issue 27)
        lambda: gr.Tabs(selected="gates"),
        outputs=page.tabs,
        api_name="open_gates_tab",
        **views,
    )
    a.chosen_button.click(
        found.chosen,
        inputs=[a.chosen, a.box, a.computed],
        outputs=[a.chosen_table, a.chosen_charts, a.chosen_text, a.hint, *marks["analyses"]],
        api_name="page_analyses", show_progress_on=[a.chosen_table], **own,
    )  # fmt: skip
    # A new result (or a new look of it): the panels computed for another result say so.
    page.cams[0].change(
        found.staleness,
        inputs=a.computed,
        outputs=[*a.stale.values(), *(p for panel in a.stale for p in a.stale_pictures(panel))],
        api_name="analyses_staleness",
        api_visibility="private",
        show_progress="hidden",
        trigger_mode="always_last",
        **VIEW_LANE,
    )
    # The box: a click on the picture sets a corner; the picture shows the box as typed or
    # clicked, the numbers beside it its localisation (cheap: no button), and both follow each
    # new result (its CAM changes; a view change redraws them too).
    # In a lane of its own: its redraws never take a place of the views' lane.
    a.box_picture.select(found.corner, inputs=a.box, outputs=a.box, api_name="box_corner", **views)
    gr.on(
        [a.box.change, page.cams[0].change],
        found.box_view,
        inputs=a.box,
        outputs=[a.box_picture, a.box_text],
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
    return found


@dataclass(frozen=True)
class App:
    """The app's Blocks, its components and the handlers of its events."""

    demo: gr.Blocks
    page: Page
    handlers: Handlers
    studies: StudyHandlers
    analyses: AnalysisHandlers
    browsing: BrowserHandlers


def build(
    engine: Engine,
    *,
    space: TempSpace | None = None,
    sessions: Sessions | None = None,
    study_limits: StudyLimits = StudyLimits(),  # noqa: B008 (frozen)
    studies_dir: Path | None = None,
) -> App:
    """The whole app around an `Engine` (which may still be loading its models): layout, then
    handlers for its components, then the events that join them, then the input checks."""
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
        handlers = Handlers(engine, page, space, sessions)
        studies = StudyHandlers(engine, handlers.space, study_limits, page.study, studies_dir)
        browsing = BrowserHandlers(
            handlers.space,
            page.study.browser,
            studies_dir,
            page.inputs,
            page.tabs,
            engine.limits,
        )
        page_events(demo, handlers, page)
        study_events(demo, studies, browsing, page)
        analyses = analyses_events(demo, handlers, page)
        api_endpoints(handlers, page)
    guard_events(demo, page_params(page), on_refusal=engine.release_refused)
    return App(demo, page, handlers, studies, analyses, browsing)


def build_app(engine: Engine, **options: Any) -> gr.Blocks:
    """`build`'s Blocks: what `sa-viz serve` launches."""
    return build(engine, **options).demo
