"""The study browser, in the Study tab under a study run or opened there: every image of the study
as a table (`sa_viz.studies.browse.StudyTable`), sorted, filtered and paged on the server (the
page never holds more than one page of rows or of thumbnails), the current table as CSV, the
filtered images with their maps as a ZIP, and a click on a row or a thumbnail opens that image in
the explorer with the study's models and settings.

Which study a page browses is server-side state (`gr.State`: the study's folder, inside the app's
temp space or the server's `--studies-dir`, never a path a request names). The tables of the last
few studies are kept in memory (`Tables`); a page study's folder stays in the temp space while it
is browsed (`TempSpace.touch`).
"""

from __future__ import annotations

import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from sa_viz import render
from sa_viz.app.choices import CLASS_CHOICES, CROP, NONE, OWN_TOP1, SLOTS, WHOLE
from sa_viz.app.hints import HintBoard, on_page, refuse
from sa_viz.app.tempspace import TempSpace
from sa_viz.cam import LAYERS
from sa_viz.data.imagenet import label as class_name
from sa_viz.data.preprocess import DEFAULT_LIMITS, ImageError, Limits
from sa_viz.models import list_models
from sa_viz.outputs import files
from sa_viz.outputs.rows import ForeignRows
from sa_viz.pipeline.explain import prepare_for, raw_cam_on_display
from sa_viz.studies.browse import EVERY, Query, StudyTable
from sa_viz.studies.clusters import NotAStudy

PAGE_SIZE = 20  # rows (and thumbnails) on one page
THUMBNAIL = 112  # px: each model's map in a thumbnail
MAX_ZIP_IMAGES = 100  # the filtered images a ZIP takes, at most
EVERY_CLASS = "every class"
WIDTHS = {"text": "190px", "class": "150px", "number": "90px", "right": "80px"}  # by kind
KEPT_TABLES = 4  # studies whose tables stay in memory (50,000 images: ~30 MB each)


@dataclass(frozen=True)
class Browser:
    box: gr.Group
    label: gr.Dropdown
    outcome: gr.Dropdown
    name: gr.Textbox
    range_column: gr.Dropdown
    low: gr.Number
    high: gr.Number
    sort: gr.Dropdown
    descending: gr.Checkbox
    counter: gr.Markdown
    table: gr.Dataframe
    previous: gr.Button
    page: gr.Number
    next: gr.Button
    thumbnails: gr.Gallery
    csv: gr.Button
    zip: gr.Button
    download: gr.File
    hint: gr.Markdown

    @property
    def query_inputs(self) -> list[Any]:
        return [
            self.label, self.outcome, self.name, self.range_column, self.low, self.high,
            self.sort, self.descending,
        ]  # fmt: skip

    @property
    def shown_outputs(self) -> list[Any]:
        return [self.table, self.counter, self.page, self.hint]


def study_browser() -> Browser:
    """The browser's components (hidden until a study is shown)."""
    with gr.Group(visible=False, elem_id="study-browser") as box:
        gr.Markdown(
            "### The study's images\nFilter and sort every image of the study; **click a row "
            "or a thumbnail** to open that image in the explorer above, with the study's "
            "models, layer and class."
        )
        with gr.Row():
            label = gr.Dropdown(
                [EVERY_CLASS], value=EVERY_CLASS, label="Class", elem_id="browse-class"
            )
            outcome = gr.Dropdown(
                [("every image", EVERY)],
                value=EVERY,
                label="Who is right",
                elem_id="browse-outcome",
            )
            name = gr.Textbox(label="Image name contains", elem_id="browse-name")
        with gr.Row():
            range_column = gr.Dropdown(
                [("— no range —", "")], value="", label="Keep a range of", elem_id="browse-range"
            )
            low = gr.Number(None, label="from", elem_id="browse-low")
            high = gr.Number(None, label="to", elem_id="browse-high")
        with gr.Row():
            sort = gr.Dropdown(
                [("the study's order", "")], value="", label="Sort by", elem_id="browse-sort"
            )
            descending = gr.Checkbox(False, label="Largest first", elem_id="browse-descending")
        hint = gr.Markdown(visible=False, elem_id="hint-browse", elem_classes=["hint"])
        counter = gr.Markdown(elem_id="browse-counter")
        table = gr.Dataframe(interactive=False, wrap=True, max_height=520, elem_id="browse-table")
        with gr.Row():
            previous = gr.Button("← Previous page", size="sm", elem_id="browse-previous")
            page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="browse-page")
            next_ = gr.Button("Next page →", size="sm", elem_id="browse-next")
        thumbnails = gr.Gallery(
            label="This page's images: each model's Grad-CAM, in the table's order of models",
            columns=3,
            object_fit="contain",
            elem_id="browse-thumbnails",
        )
        with gr.Row():
            csv = gr.Button("Download the table as CSV", elem_id="browse-csv")
            zip_ = gr.Button(
                f"Download the filtered images with their maps (ZIP, first {MAX_ZIP_IMAGES})",
                elem_id="browse-zip",
            )
        download = gr.File(
            label="Download", interactive=False, visible=False, elem_id="browse-download"
        )
    return Browser(
        box, label, outcome, name, range_column, low, high, sort, descending, counter, table,
        previous, page, next_, thumbnails, csv, zip_, download, hint,
    )  # fmt: skip


class Tables:
    """The `StudyTable`s of the last `KEPT_TABLES` studies browsed, by folder; read again when
    the study's parts change (a study being written or resumed), and built once for requests
    that ask at the same time (the browser's and the map's, when a study is opened)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: OrderedDict[Path, tuple[tuple, StudyTable]] = OrderedDict()
        self._building: dict[Path, threading.Lock] = {}

    def get(self, folder: Path) -> StudyTable:
        signature = parts_signature(folder)
        with self._lock:
            building = self._building.setdefault(folder, threading.Lock())
        with building:  # a large study takes a second or two: one build, the others wait
            with self._lock:
                kept = self._tables.get(folder)
                if kept is not None and kept[0] == signature:
                    self._tables.move_to_end(folder)
                    return kept[1]
            table = StudyTable(folder)
            with self._lock:
                self._tables[folder] = (signature, table)
                self._tables.move_to_end(folder)
                while len(self._tables) > KEPT_TABLES:
                    self._tables.popitem(last=False)
        return table


def parts_signature(folder: Path) -> tuple:
    """What a study's table depends on: its parts' names, sizes and times, and study.json's."""
    found = []
    for path in sorted([folder / "study.json", *(folder / "rows").glob("part-*.parquet")]):
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class BrowserHandlers:
    """The browser's events; `study` is the page's state (the study's folder)."""

    def __init__(
        self,
        space: TempSpace,
        browser: Browser,
        studies_dir: Path | None,
        inputs: Any,
        tabs: gr.Tabs,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """`inputs`, `tabs`: the page's input column and result tabs, which a click sets;
        `limits`: the server's image limits (the largest file the explorer takes; the
        thumbnails decode within them too)."""
        self.space, self.browser, self.inputs, self.tabs = space, browser, inputs, tabs
        self.limits = limits
        self.studies_dir = studies_dir.resolve() if studies_dir is not None else None
        self.tables = Tables()
        self.hints = HintBoard({"browse": browser.hint})

    def table(self, study: str | None) -> StudyTable:
        """The table of the page's study, from a folder this server made or serves only."""
        if not study:
            raise refuse("Run a study or open one first.", "No study")
        folder = Path(study)
        # Resolved: a temp folder reached through a link (macOS's /var → /private/var) is ours
        inside = [self.space.root.resolve(), *([self.studies_dir] if self.studies_dir else [])]
        if not any(folder.resolve().is_relative_to(root) for root in inside):
            raise refuse("That study is not one this server shows.", "No study")
        if folder.is_relative_to(self.space.root) and not self.space.touch(folder.parent):
            raise refuse(
                "This study is no longer on the server (it keeps the latest results only): "
                "run it again.",
                "Study gone",
            )
        try:
            return self.tables.get(folder)
        except (NotAStudy, ForeignRows) as error:
            raise refuse(str(error), "The study could not be read") from None

    @on_page()
    def opened(self, study: str | None) -> dict[Any, Any]:
        """The browser for a study just shown: its controls' choices, its first page."""
        t, b = self.table(study), self.browser
        classes = [(EVERY_CLASS, EVERY_CLASS)] + [
            (f"{c}: {class_name(c)} ({n})", str(c)) for c, n in t.classes()
        ]
        numbers = [(c.title, c.name) for c in t.number_columns()]
        sorts = [("the study's order", "")] + [(c.title, c.name) for c in t.columns]
        shown = self._shown(t, Query(), 1)
        return {
            b.box: gr.update(visible=True),
            b.label: gr.update(choices=classes, value=EVERY_CLASS),
            b.outcome: gr.update(choices=t.outcomes(), value=EVERY),
            b.name: "",
            b.range_column: gr.update(choices=[("— no range —", ""), *numbers], value=""),
            b.low: None,
            b.high: None,
            b.sort: gr.update(choices=sorts, value=""),
            b.descending: False,
            **shown,
            b.table: gr.update(
                value=shown[b.table], column_widths=[WIDTHS[c.kind] for c in t.columns]
            ),
        }

    @on_page()
    def first(self, study: str | None, *values: Any) -> dict[Any, Any]:
        """The first page of what the controls now ask for."""
        return self._shown(self.table(study), query_of(*values), 1)

    @on_page()
    def show(self, study: str | None, *query_and_page: Any) -> dict[Any, Any]:
        """The page of rows the controls ask for (a page past the end: the last)."""
        *values, page = query_and_page
        t = self.table(study)
        return self._shown(t, query_of(*values), page)

    def step(self, page: float | None, by: int) -> int:
        return max(1, int(page or 1) + by)

    def _shown(self, t: StudyTable, query: Query, page: float | None) -> dict[Any, Any]:
        b = self.browser
        try:
            view = t.view(query)
        except ValueError as error:
            raise refuse(str(error), "Filter") from None
        pages = max(1, -(-len(view) // PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        first = (page - 1) * PAGE_SIZE
        shown = f"{first + 1}–{min(first + PAGE_SIZE, len(view))}" if len(view) else "none"
        filtered = f" (of {len(t)})" if len(view) != len(t) else ""
        counter = f"Images {shown} of **{len(view)}**{filtered} · page {page} of {pages}"
        if t.untrained:
            counter = (
                f"**UNTRAINED weights** in this study ({', '.join(t.untrained)}): their "
                f"predictions and maps mean nothing.  \n{counter}"
            )
        rows = t.page(view, page - 1, PAGE_SIZE)
        value = {"headers": [c.title for c in t.columns], "data": rows or [["–"] * len(t.columns)]}
        return {b.table: value, b.counter: counter, b.page: page}

    @on_page()
    def thumbnails(self, study: str | None, *query_and_page: Any) -> dict[Any, Any]:
        """The shown page's images, each model's CAM over the image as the study saw it (the
        map alone where the image is no longer there), captioned by the image's key."""
        *values, page = query_and_page
        t = self.table(study)
        view = t.view(query_of(*values))
        keys = view["image"].slice((max(1, int(page or 1)) - 1) * PAGE_SIZE, PAGE_SIZE).to_pylist()
        cams = t.cams(keys)
        pictures = []
        for key in keys:
            picture = thumbnail(t, key, cams, self.limits)
            pictures.append((self.space.picture(picture, name=f"study_{Path(key).stem}"), key))
        return {self.browser.thumbnails: pictures}

    @on_page()
    def csv(self, study: str | None, *values: Any) -> dict[Any, Any]:
        t = self.table(study)
        path = self.space.folder() / f"{Path(t.study).name or 'study'}_images.csv"
        t.write_csv(t.view(query_of(*values)), path)
        return {self.browser.download: gr.update(value=str(path), visible=True)}

    @on_page()
    def zip(
        self,
        study: str | None,
        *values: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio's way)
    ) -> dict[Any, Any]:
        """The filtered images (the first `MAX_ZIP_IMAGES`, in the table's order) with each
        model's map: per image its thumbnail (PNG, every model's map) and its file where the
        study's source still has it, and the table's rows of them as CSV."""
        t = self.table(study)
        view = t.view(query_of(*values))
        chosen = view.slice(0, MAX_ZIP_IMAGES)
        keys = chosen["image"].to_pylist()
        folder = self.space.folder()
        t.write_csv(chosen, folder / "images.csv")
        cams = t.cams(keys)
        path = folder / "study_images.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(folder / "images.csv", "images.csv")
            for i, key in enumerate(progress.tqdm(keys, desc="Drawing the maps")):
                stem = f"{i + 1:03d}_{Path(key).stem}"
                picture = thumbnail(t, key, cams, self.limits)
                data, _ = files.page_picture_bytes(picture, lossless=True)
                archive.writestr(f"maps/{stem}.png", data)
                source = t.image_path(key)
                if source is not None and source.stat().st_size <= self.limits.max_bytes:
                    archive.write(source, f"images/{stem}{source.suffix.lower()}")
            archive.writestr("README.txt", zip_readme(t, len(view), len(keys)))
        return {self.browser.download: gr.update(value=str(path), visible=True)}

    @on_page()
    def open_image(self, study: str | None, evt: gr.EventData = None) -> dict[Any, Any]:
        """A click on a row (its first cell, the image's key) or on a thumbnail (captioned by
        it): that image in the explorer (`open_key`)."""
        return self.open_key(study, clicked_key(evt))

    def open_key(self, study: str | None, key: str | None) -> dict[Any, Any]:
        """The image `key` of the study in the explorer, with the study's models (up to four),
        layer, crop and class, on the Grad-CAM tab. The image box's change starts the
        explanation."""
        t = self.table(study)
        try:
            row = t.row(key) if key else None
        except KeyError:
            row = None
        if row is None:
            raise refuse("Click a row of the table, a thumbnail or a point.", "No image")
        missing = [m for m in t.models if m not in list_models()]
        if missing:
            raise refuse(
                f"This server does not serve {', '.join(missing)}, a model of this study: start "
                f"it with --models {','.join(t.models[:4])}.",
                "Model not served",
            )
        source = t.image_path(row["image"])
        if source is None:
            raise refuse(
                f"{key} is no longer where the study read it "
                f"({(t.summary.get('source') or {}).get('path', 'its source')}).",
                "Image gone",
            )
        try:
            size = source.stat().st_size
        except OSError:
            size = None
        if size is None:
            raise refuse(f"{key} could not be read where the study read it.", "Image gone")
        if size > self.limits.max_bytes:
            raise refuse(
                f"{key} is {size / 2**20:.0f} MB: this server explains images "
                f"of at most {self.limits.max_bytes / 2**20:.0f} MB.",
                "Image too large",
            )
        copy = self.space.folder() / Path(row["image"]).name
        copy.write_bytes(source.read_bytes())
        return self.explorer_values(t, row, str(copy))

    def explorer_values(self, t: StudyTable, row: dict[str, Any], image: str) -> dict[Any, Any]:
        models = [*t.models[:4], *[NONE] * (4 - min(4, len(t.models)))]
        i = self.inputs
        label = row.get("label")
        layer = t.settings.get("layer")
        values: dict[Any, Any] = {
            i.image: image,
            i.target: OWN_TOP1 if label is None else CLASS_CHOICES[label + 1],
            i.method: "gradcam",
            i.crop_mode: CROP if t.settings.get("crop", True) else WHOLE,
            self.tabs: gr.Tabs(selected="cam"),
            **{
                getattr(i, f"model_{slot}"): model
                for slot, model in zip(SLOTS, models, strict=True)
            },
        }
        if layer in LAYERS:
            values[i.layer] = layer
        return values


def query_of(
    label: str | None,
    outcome: str | None,
    name: str | None,
    range_column: str | None,
    low: float | None,
    high: float | None,
    sort: str | None,
    descending: bool,
) -> Query:
    chosen = None if not label or label == EVERY_CLASS else int(label)
    ranges = ((range_column, low, high),) if range_column and (low, high) != (None, None) else ()
    return Query(chosen, outcome or EVERY, name or "", ranges, sort or None, bool(descending))


def clicked_key(evt: gr.EventData | None) -> str | None:
    """The image key of a click: a table row's first cell, or a thumbnail's caption."""
    data = getattr(evt, "_data", None) or {}
    row = data.get("row_value")
    if isinstance(row, list) and row:
        return str(row[0])
    value = data.get("value")
    if isinstance(value, dict):
        return value.get("caption")
    return None


def thumbnail(
    t: StudyTable,
    key: str,
    cams: dict[tuple[str, str], np.ndarray],
    limits: Limits = DEFAULT_LIMITS,
    models: list[str] | None = None,
) -> np.ndarray:
    """Each model's (or `models`') CAM of `key` over the image as the study showed it (the
    widest crop or the whole image; dark where a model's narrower crop did not reach), side by
    side; the maps alone on grey where the image cannot be read any more."""
    prepared = None
    path = t.image_path(key)
    if path is not None:
        try:
            crop = t.settings.get("crop", True)
            prepared = prepare_for(path, t.models, crop=crop, limits=limits)
        except (ImageError, OSError):
            prepared = None
    tiles = []
    for model in models or t.models:
        cam = cams.get((key, model))
        if prepared is not None:
            h, w = prepared.size
            scale = THUMBNAIL / max(h, w)
            base = cv2.resize(
                prepared.display, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
            if cam is not None:
                base = render.overlay(base, raw_cam_on_display(cam, prepared, model))
        else:
            base = np.full((THUMBNAIL, THUMBNAIL, 3), 96, np.uint8)
            if cam is not None:
                spread = float(cam.max() - cam.min())
                unit = (cam - cam.min()) / spread if spread > 0 else np.zeros_like(cam)
                base = render.overlay(base, unit.astype(np.float32))
        tiles.append(base)
    height = max(tile.shape[0] for tile in tiles)
    gap = np.full((height, 4, 3), 255, np.uint8)
    padded = [
        np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=255)
        for tile in tiles
    ]
    return np.concatenate([x for tile in padded for x in (tile, gap)][:-1], axis=1)


def zip_readme(t: StudyTable, filtered: int, taken: int) -> str:
    titles = ", ".join(t.titles[m] for m in t.models)
    return (
        f"{taken} of the {filtered} images the browser's filter kept (of {len(t)} in the study), "
        "in the table's order.\n"
        f"maps/: per image each model's Grad-CAM ({titles}, left to right) over the image as the "
        "study showed it (the widest crop or the whole image; dark gray where a model's "
        "narrower crop did not reach), each map scaled to its own range.\n"
        "images/: the image files, where the study's source still has them (a file larger than "
        "the server's upload limit is left out).\n"
        "images.csv: their rows of the table.\n"
    )
