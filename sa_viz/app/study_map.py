"""The study browser's map (issue 28): the filtered images' CAMs, or one unit's channel gates, laid
out by t-SNE and clustered by spectral clustering with the eigengap (`sa_viz.studies.embedding`),
coloured by cluster, class, model or correctness; a click on a point opens its image in the
explorer. With one class and one model chosen, the clusters are that class's strategies
(spectral relevance analysis), drawn with each cluster's mean CAM. The figures and the points
download as PNG, SVG and CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from sa_viz.app.hints import HintBoard, on_page, refuse
from sa_viz.app.study_browser import BrowserHandlers, query_of, thumbnail
from sa_viz.data.imagenet import label as class_name
from sa_viz.outputs import files
from sa_viz.render.figures import clusters_figure, drawn_positions, figure_array, map_figure
from sa_viz.studies.embedding import (
    CAM,
    MAX_POINTS,
    Map,
    draw_map,
    features_title,
    gated_units,
    nearest,
)

EVERY_MODEL = ""
COLOURING_CHOICES = [
    ("cluster", "cluster"),
    ("class", "class"),
    ("model", "model"),
    ("right or wrong", "right"),
]
CLICK_RADIUS = 12  # px: a click this near a point opens it
TYPICAL = 3  # typical images shown per cluster
MAP_DPI = 100


@dataclass(frozen=True)
class MapPanel:
    model: gr.Dropdown
    features: gr.Dropdown
    colouring: gr.Radio
    draw: gr.Button
    picture: gr.Image
    text: gr.Markdown
    typical: gr.Gallery
    strategies: gr.Image
    download: gr.Button
    file: gr.File
    hint: gr.Markdown
    drawn: gr.State  # the drawn map and its points' positions in the picture (server-side)

    @property
    def controls(self) -> list[Any]:
        return [self.model, self.features, self.colouring]


def map_panel() -> MapPanel:
    with gr.Accordion(
        f"Map of the filtered images (t-SNE) and their strategies (up to {MAX_POINTS} points)",
        open=False,
        elem_id="browse-map-box",
    ):
        gr.Markdown(
            "Each point is an image under a model, placed by t-SNE so that images whose maps "
            "look alike lie together, and grouped by spectral clustering (the number of "
            "clusters chosen by the eigengap). **Choose one class above and one model** for "
            "the class's strategies (spectral relevance analysis) with each cluster's mean "
            "CAM. **Click a point** to open its image."
        )
        with gr.Row():
            model = gr.Dropdown([], label="Model", elem_id="map-model")
            features = gr.Dropdown(
                [("Grad-CAM", CAM)], value=CAM, label="What is compared", elem_id="map-features"
            )
            colouring = gr.Radio(
                COLOURING_CHOICES, value="cluster", label="Colour by", elem_id="map-colouring"
            )
        draw = gr.Button("Draw the map", variant="secondary", elem_id="map-draw")
        hint = gr.Markdown(visible=False, elem_id="hint-map", elem_classes=["hint"])
        picture = gr.Image(
            label="Map (click a point to open its image)",
            type="filepath",
            interactive=False,
            buttons=["download", "fullscreen"],
            elem_classes=["picture"],
            elem_id="browse-map",
        )
        text = gr.Markdown(elem_id="map-text")
        typical = gr.Gallery(
            label="Each cluster's most typical images (closest to its mean), under their model's "
            "map: click one to open it",
            columns=TYPICAL,
            visible=False,
            object_fit="contain",
            elem_id="map-typical",
        )
        strategies = gr.Image(
            label="Strategies: the eigengap, the clusters and each one's mean CAM",
            type="filepath",
            interactive=False,
            visible=False,
            buttons=["download", "fullscreen"],
            elem_classes=["picture"],
            elem_id="map-strategies",
        )
        download = gr.Button("Download the figures (PNG, SVG) and the points (CSV)")
        file = gr.File(label="Map files", visible=False, interactive=False, elem_id="map-file")
    return MapPanel(
        model, features, colouring, draw, picture, text, typical, strategies, download, file,
        hint, gr.State(),
    )  # fmt: skip


class MapHandlers:
    def __init__(self, browsing: BrowserHandlers, panel: MapPanel) -> None:
        self.browsing, self.panel = browsing, panel
        self.hints = HintBoard({"map": panel.hint})

    @on_page()
    def opened(self, study: str | None) -> dict[Any, Any]:
        """The map's choices for a study just shown: its models, its gated units."""
        t = self.browsing.table(study)
        titles = t.titles
        units = list(dict.fromkeys(u for found in gated_units(t).values() for u in found))
        return {
            self.panel.model: gr.update(
                choices=[*((titles[m], m) for m in t.models), ("every model", EVERY_MODEL)],
                value=t.models[-1],
            ),
            self.panel.features: gr.update(
                choices=[("Grad-CAM", CAM), *((features_title(u), u) for u in units)],
                value=CAM,
            ),
            self.panel.picture: None,
            self.panel.typical: gr.update(value=None, visible=False),
            self.panel.strategies: gr.update(value=None, visible=False),
            self.panel.text: "",
            self.panel.drawn: None,
        }

    @on_page()
    def draw(
        self,
        study: str | None,
        model: str | None,
        features: str | None,
        colouring: str,
        *query: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's way)
    ) -> dict[Any, Any]:
        """The map of the browser's filtered images (its class, outcome, name and ranges)."""
        t = self.browsing.table(study)
        if model not in (*t.models, EVERY_MODEL):
            raise refuse("Choose one of the study's models.", "Model")
        models = t.models if model == EVERY_MODEL else [model]
        progress(0, desc="t-SNE and spectral clustering")
        try:
            drawn = draw_map(t, t.view(query_of(*query)), models, features or CAM)
        except ValueError as error:
            raise refuse(str(error), "Map") from None
        space = self.browsing.space
        picture, positions = self._picture(t, drawn, colouring)
        typical, keys = self._typical(t, drawn)
        answer = {
            self.panel.picture: space.picture(picture, lossless=True, name="study_map"),
            self.panel.text: describe(drawn),
            self.panel.typical: gr.update(value=typical, visible=True),
            self.panel.drawn: {
                "map": drawn,
                "positions": positions,
                "colouring": colouring,
                "typical": keys,
            },
            self.panel.file: gr.update(value=None, visible=False),
        }
        fig = self._strategies_figure(t, drawn)
        if fig is None:
            answer[self.panel.strategies] = gr.update(value=None, visible=False)
        else:
            path = space.picture(figure_array(fig, MAP_DPI), lossless=True, name="strategies")
            answer[self.panel.strategies] = gr.update(value=path, visible=True)
        return answer

    @on_page()
    def recolour(self, study: str | None, colouring: str, drawn: dict | None) -> dict[Any, Any]:
        """The drawn map in other colours (nothing computed again)."""
        if not drawn:
            return gr.skip()
        t = self.browsing.table(study)
        picture, positions = self._picture(t, drawn["map"], colouring)
        return {
            self.panel.picture: self.browsing.space.picture(
                picture, lossless=True, name="study_map"
            ),
            self.panel.drawn: {**drawn, "positions": positions, "colouring": colouring},
        }

    @on_page()
    def open_point(
        self, study: str | None, drawn: dict | None, evt: gr.EventData = None
    ) -> dict[Any, Any]:
        """A click on the map: the image of the point nearest the click (within
        `CLICK_RADIUS` pixels) in the explorer."""
        index = (getattr(evt, "_data", None) or {}).get("index")
        if not drawn or not isinstance(index, list) or len(index) != 2:
            return gr.skip()
        shown: Map = drawn["map"]
        point = nearest(drawn["positions"], float(index[0]), float(index[1]), CLICK_RADIUS)
        if point is None:
            return gr.skip()  # a click beside the points
        return self.browsing.open_key(study, shown.keys[point])

    @on_page()
    def open_typical(
        self, study: str | None, drawn: dict | None, evt: gr.EventData = None
    ) -> dict[Any, Any]:
        """A click on a typical image: that image in the explorer."""
        index = (getattr(evt, "_data", None) or {}).get("index")
        keys = (drawn or {}).get("typical") or []
        if not isinstance(index, int) or not 0 <= index < len(keys):
            return gr.skip()
        return self.browsing.open_key(study, keys[index])

    def _typical(self, t: Any, shown: Map) -> tuple[list[tuple[str, str]], list[str]]:
        """Per cluster its `TYPICAL` most typical images under their model's map, captioned,
        and their keys in the gallery's order."""
        points = [
            (c, *point.partition("\n")[::2])
            for c, found in enumerate(shown.strategies.typical(TYPICAL))
            for point in found
        ]
        cams = t.cams(list(dict.fromkeys(key for _, key, _ in points)))
        several = len(set(shown.models)) > 1
        pictures = []
        for c, key, model in points:
            picture = thumbnail(t, key, cams, self.browsing.limits, [model])
            path = self.browsing.space.picture(picture, name=f"typical_{c}_{Path(key).stem}")
            whose = f" ({t.titles[model]})" if several else ""
            pictures.append((path, f"cluster {c}: {key}{whose}"))
        return pictures, [key for _, key, _ in points]

    @on_page()
    def files(self, study: str | None, drawn: dict | None) -> dict[Any, Any]:
        """The map and the strategies as PNG and SVG, and the points as CSV, in one ZIP."""
        if not drawn:
            raise refuse("Draw the map first.", "No map")
        t = self.browsing.table(study)
        shown: Map = drawn["map"]
        fig, _ = self._map_figure(t, shown, drawn["colouring"])
        members = {f"map.{f}": files.figure_bytes(fig, f) for f in ("png", "svg")}
        strategies = self._strategies_figure(t, shown)
        if strategies is not None:
            members |= {
                f"strategies.{f}": files.figure_bytes(strategies, f) for f in ("png", "svg")
            }
        members["points.csv"] = points_csv(shown)
        path = self.browsing.space.folder() / "study_map.zip"
        files.write_zip(path, members)
        return {self.panel.file: gr.update(value=str(path), visible=True)}

    def _map_figure(self, t: Any, shown: Map, colouring: str) -> tuple[Any, Any]:
        colouring = colouring if colouring in shown.groups else "cluster"
        what = features_title(shown.features)
        models = ", ".join(t.titles[m] for m in dict.fromkeys(shown.models))
        title = f"t-SNE of {len(shown.keys)} {what} ({models}){untrained_note(t, shown.models)}"
        return map_figure(shown.xy, shown.groups[colouring], title, COLOURING_TITLES[colouring])

    def _picture(self, t: Any, shown: Map, colouring: str) -> tuple[np.ndarray, np.ndarray]:
        fig, ax = self._map_figure(t, shown, colouring)
        positions = drawn_positions(fig, ax, shown.xy, MAP_DPI)
        return figure_array(fig, MAP_DPI), positions

    def _strategies_figure(self, t: Any, shown: Map) -> Any:
        """The class's strategies (SpRAy's figure) where the map is one class's CAMs."""
        s = shown.strategies
        if shown.features != CAM or s.label < 0 or not s.model:
            return None
        title = (
            f"{class_name(s.label)} (class {s.label}), {t.titles[s.model]}: {len(s.keys)} images"
        ) + untrained_note(t, [s.model])
        return clusters_figure(s.eigenvalues, s.k, s.means(), s.embedding, s.clusters, title)


def untrained_note(t: Any, models: Any) -> str:
    """A second title line, "UNTRAINED weights: …", naming those of `models` that had no
    trained weights in the study (none: "")."""
    untrained = [t.titles[m] for m in dict.fromkeys(models) if t.titles[m] in t.untrained]
    return f"\nUNTRAINED weights: {', '.join(untrained)}" if untrained else ""


COLOURING_TITLES = {value: label for label, value in COLOURING_CHOICES}


def describe(shown: Map) -> str:
    s = shown.strategies
    sizes = np.bincount(s.clusters, minlength=s.k).tolist()
    eigen = ", ".join(f"{v:.3f}" for v in s.eigenvalues[: min(len(s.eigenvalues), s.k + 3)])
    lines = [
        f"**{len(shown.keys)} points**, **k = {s.k}** clusters by the eigengap "
        f"(sizes {', '.join(map(str, sizes))}); the normalised Laplacian's first eigenvalues: "
        f"{eigen}."
    ]
    if shown.dropped:
        lines.append(
            f"{shown.dropped} of the filtered images are not on the map (past the first "
            f"{MAX_POINTS} points, images × models, or without these features): filter to see "
            "them."
        )
    if s.label < 0 or not s.model:
        lines.append(
            "For a class's strategies (spectral relevance analysis), choose one class above "
            "and one model."
        )
    return "\n".join(lines)


def points_csv(shown: Map) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["image", "model", "x", "y", *shown.groups])
    for i, (key, model) in enumerate(zip(shown.keys, shown.models, strict=True)):
        groups = [shown.groups[g][i] for g in shown.groups]
        writer.writerow([key, model, f"{shown.xy[i, 0]:.4f}", f"{shown.xy[i, 1]:.4f}", *groups])
    return out.getvalue()
