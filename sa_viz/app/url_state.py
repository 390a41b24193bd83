"""The view in the page's address: which query key holds which control (`URL_KEYS`), the
browser's script that keeps the address up to date, and a shared link read back into the
controls (`link_view`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from sa_viz import render
from sa_viz.app.choices import (
    ASSETS,
    CLASS_CHOICES,
    CROP,
    DEFAULT_UNIT,
    NONE,
    OWN_TOP1,
    UNIT_NAMES,
    WHOLE,
    chosen_models,
    pair_value,
)
from sa_viz.app.tempspace import TempSpace
from sa_viz.app.validation import difference_pair, parse_target
from sa_viz.cam import DEFAULT_LAYER, LAYERS, METHODS
from sa_viz.data.examples import EXAMPLES
from sa_viz.models import DEFAULT_PAIR, list_models
from sa_viz.probes import attention_of
from sa_viz.render import views

if TYPE_CHECKING:
    from sa_viz.app.layout import Page


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


def _url_opacity(value: str | None) -> float | None:
    try:
        opacity = float(value) if value and len(value) <= 8 else None
    except ValueError:
        return None
    return round(opacity, 2) if opacity is not None and 0.0 <= opacity <= 1.0 else None


# A view's state in the page's address, by the query key each control has there (`url_controls`
# names the controls): what a shared link restores, read from its text.
URL_KEYS: dict[str, Callable[[str | None], Any]] = {
    "example": _one_of([Path(name).stem for name in EXAMPLES]),
    "class": _url_class,
    "method": _one_of(list(METHODS)),
    "layer": _one_of(list(LAYERS)),
    "unit": _one_of(UNIT_NAMES),
    "group": _url_group,
    "a": _one_of(list_models()),
    "b": _one_of(list_models()),
    "gates": _one_of([name for name in list_models() if attention_of(name)]),
    "input": lambda value: {"crop": CROP, "whole": WHOLE}.get(value or ""),
    "cam_scale": _one_of(list(views.NORMALIZATIONS)),
    "opacity": _url_opacity,
    "c": _one_of([NONE, *list_models()]),
    "d": _one_of([NONE, *list_models()]),
    "diff": lambda value: None if difference_pair(value) or not value else value,
}
# The address follows the controls (in the browser: no request), in `URL_KEYS`' order. The
# class comes from the list's words ("281: tabby …"); while the box holds text that names no
# class of the list (an unknown class, being refused), the address keeps the class the panels
# show. The page writes a class typed otherwise ("tabby") in the list's words once explained.
WRITE_URL = (
    r"""
(example, target, method, layer, unit, group, a, b, gates, input, cam_scale, opacity, c, d,
 diff) => {
    const defaults = DEFAULTS;
    const listed = /^(\d+): /.exec(target || "");
    const shown = new URLSearchParams(location.search).get("class") || "";
    const values = {example, class: listed ? listed[1] : (!target || target === OWN ? "" : shown),
                    method, layer, unit, group: String(group), a, b, gates,
                    input: input === CROP ? "crop" : "", cam_scale,
                    opacity: Number(opacity).toFixed(2).replace(/\.?0+$/, ""), c, d, diff};
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
                "cam_scale": views.NORMALIZATIONS[0],
                "opacity": f"{render.DEFAULT_ALPHA:g}",
                "c": NONE,
                "d": NONE,
                "diff": pair_value(*DEFAULT_PAIR),
            }
        ),
    )
    .replace("CROP", json.dumps(CROP))
    .replace("OWN", json.dumps(OWN_TOP1))
)


def example_named(path: str | None) -> str:
    """The name of the example whose photo the file at `path` is ("chelsea"), or "" (an upload,
    or nothing): the page's address names the example shown."""
    try:
        size = Path(path).stat().st_size if path else None
        for name in EXAMPLES:
            example = ASSETS / name
            if example.stat().st_size == size and example.read_bytes() == Path(path).read_bytes():
                return Path(name).stem
    except OSError:
        pass
    return ""


def url_controls(page: Page) -> dict[str, Any]:
    """The control each query key of `URL_KEYS` sets, in that order."""
    i, e = page.inputs, page.explorer
    controls = (page.example, i.target, i.method, i.layer, e.unit, e.group, i.model_a, i.model_b)
    more = (
        e.gate_model,
        i.crop_mode,
        page.normalization,
        page.alpha,
        i.model_c,
        i.model_d,
        page.pair,
    )
    return dict(zip(URL_KEYS, (*controls, *more), strict=True))


def link_view(query: dict[str, str], page: Page, space: TempSpace) -> tuple[dict, list[str]]:
    """What a link's `query` sets (e.g. `?example=chelsea&class=281&layer=layer3&unit=layer3.0
    &group=5`), by component: its controls and its example's image (a copy in the app's space:
    the package may lie anywhere); and the `key=value`s that named nothing this page has, which
    stay as they are."""
    values = {key: read(query.get(key)) for key, read in URL_KEYS.items()}
    controls = url_controls(page)
    wrong = [f"{k}={str(query[k])[:40]}" for k, v in values.items() if query.get(k) and v is None]
    outputs = {controls[key]: value for key, value in values.items() if value is not None}
    if values["example"] is not None:
        copy = shutil.copy(ASSETS / f"{values['example']}.jpg", space.folder())
        outputs[page.inputs.image] = str(copy)
    # "Gates of": the link's gated model where it is one of the link's models, else their
    # first with gates. Its value only: set with its list too, the value reached the page after
    # the example's image had started the explanation, which then showed the default's gates
    # (seen with four models); `Handlers.captions`, which follows, sets the list. (A value
    # outside the list is allowed: `allow_custom_value`.)
    a, b, gates = values["a"], values["b"], values["gates"]
    shown = chosen_models(a or DEFAULT_PAIR[0], b or DEFAULT_PAIR[1], values["c"], values["d"])
    gated = [n for n in dict.fromkeys(shown) if attention_of(n)]
    if gates is not None and gates not in gated:
        wrong.append(f"gates={gates}")
    outputs.pop(controls["gates"], None)
    if (a or b or values["c"] or values["d"] or gates) and gated:
        outputs[controls["gates"]] = gates if gates in gated else gated[0]
    return outputs, wrong


def address(demo: gr.Blocks, from_url: Callable[..., Any], page: Page, lane: dict[str, Any]) -> Any:
    """The view in the page's address: set from it when the page opens (`from_url`, in `lane`),
    kept up to date in the browser as the controls change, so a link shares it and a reload
    keeps it. Returns the opening event, for what follows the link's view."""
    i = page.inputs
    controls = list(url_controls(page).values())
    opened = demo.load(
        from_url,
        outputs=[i.image, *controls, *page.hint_outputs],
        api_name="from_url",
        api_visibility="private",
        **lane,
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
        **lane,
    )
    for upload in (i.image.upload, i.image.clear):  # not an example any more
        upload(None, outputs=page.example, js="() => ''", api_visibility="private")
    gr.on(
        [c.change for c in controls],
        None,
        inputs=controls,
        js=WRITE_URL,
        api_visibility="private",
    )
    return opened
