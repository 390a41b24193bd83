"""The Study tab: a set of images (or a ZIP of them) through the two chosen models, with the
study's report figures on the page and the whole study as a ZIP; or a study the CLI wrote,
opened from the folder the server was started with (`--studies-dir`), never from any other path.

An upload is bounded (`StudyLimits`: images and bytes, counted before anything is unpacked, and
the bytes again as they are written) and unpacked into the app's own temp space: only image
files, under names made here (a ZIP's class folders are kept when their names are plain, so an
ImageFolder's labels survive). A request that fails leaves nothing there; a study's images stay
beside it in the temp space (not in its ZIP) while the page browses it (`study_browser`), and go
with it. The study runs in a
lane of its own (`Engine.study`), so the page's explanations never wait for it.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import gradio as gr

from sa_viz.analyses import analyses as registered_analyses
from sa_viz.app.choices import NONE, chosen_models
from sa_viz.app.engine import Engine, ModelsUnavailable
from sa_viz.app.hints import HintBoard, on_page, refuse
from sa_viz.app.study_browser import Browser, study_browser
from sa_viz.app.study_map import MapPanel, map_panel
from sa_viz.app.tempspace import TempSpace
from sa_viz.cam import DEFAULT_LAYER, LAYERS, METHODS
from sa_viz.data.sources import IMAGE_SUFFIXES
from sa_viz.hooks import Stopped

log = logging.getLogger(__name__)

PLAIN = re.compile(r"[\w][\w .+-]{0,99}")  # a file or folder name kept from an upload (whole)
FIGURE = re.compile(r'src="figures/([\w.-]+\.png)"')
CHUNK = 2**20  # bytes copied at a time while unpacking


@dataclass(frozen=True)
class StudyLimits:
    max_images: int = 200
    max_bytes: int = 200 * 2**20  # all the upload's images together, unpacked


@dataclass(frozen=True)
class StudyTab:
    files: gr.File
    analyses: gr.CheckboxGroup
    run: gr.Button
    studies: gr.Dropdown
    open: gr.Button
    hint: gr.Markdown
    report: gr.HTML
    download: gr.File
    browser: Browser
    map: MapPanel
    study: gr.State  # the shown study's folder (server-side), which the browser reads

    @property
    def outputs(self) -> list[Any]:
        return [self.report, self.download, self.hint, self.study]

    def shown(self, report: str, archive: str, folder: Path) -> dict[Any, Any]:
        return {self.report: report, self.download: archive, self.study: str(folder)}


def study_tab(limits: StudyLimits, studies_dir: Path | None, upload_bytes: int) -> StudyTab:
    """The tab's components, inside the page's `gr.Tabs`."""
    with gr.Tab("Study", id="study", elem_id="tab-study"):
        gr.Markdown(
            "One image is an anecdote. Upload a set of images, or a ZIP (with one folder per "
            "class, named by WordNet id, class index or name, the images get labels and the "
            "report accuracy): both chosen models explain every image, and the report shows "
            "accuracy, where the two look differently and the gates across depth. "
            f"Up to {limits.max_images} images, {limits.max_bytes / 2**20:.0f} MB unpacked, "
            f"each uploaded file (a ZIP too) at most {upload_bytes / 2**20:.0f} MB; "
            "`sa-viz study` takes whole datasets."
        )
        files = gr.File(
            label="Images or a ZIP",
            file_count="multiple",
            file_types=["image", ".zip"],
            type="filepath",
            elem_id="study-files",
        )
        analyses = gr.CheckboxGroup(
            [(a.title, name) for name, a in registered_analyses().items() if a.on_page],
            value=[],
            label="Analyses of every image (optional: each adds time; in the report's Analyses "
            "table, with intervals and the paired test)",
            elem_id="study-analyses",
        )
        run = gr.Button("Run study", variant="primary", elem_id="study-run")
        with gr.Row(visible=studies_dir is not None):
            studies = gr.Dropdown(
                [],
                label="Or open a study from the server's studies folder",
                elem_id="study-open",
                scale=3,
            )
            open_button = gr.Button("Open", elem_id="study-open-button", scale=1)
        hint = gr.Markdown(visible=False, elem_id="hint-study", elem_classes=["hint"])
        download = gr.File(
            label="The study as a ZIP (report.html and its figures, its tables as CSV and LaTeX, "
            "study.json, the Parquet rows)",
            interactive=False,
            elem_id="study-zip",
        )
        browser = study_browser()
        with browser.box:  # the map, at the end of the browser's group
            panel = map_panel()
        report = gr.HTML(elem_id="study-report")
        # Inside the tab: a State among gr.Tabs' children counts as a tab (issue 27's lost tab)
        study = gr.State()
    return StudyTab(
        files, analyses, run, studies, open_button, hint, report, download, browser, panel, study
    )  # fmt: skip


class StudyHandlers:
    """The tab's events: the report and the study's ZIP by component; a failure is the tab's
    hint and keeps what the tab shows (`on_page`)."""

    def __init__(
        self,
        engine: Engine,
        space: TempSpace,
        limits: StudyLimits,
        tab: StudyTab,
        studies_dir: Path | None = None,
    ) -> None:
        self.engine, self.space, self.limits, self.tab = engine, space, limits, tab
        self.studies_dir = studies_dir.resolve() if studies_dir is not None else None
        self.hints = HintBoard({"study": tab.hint})

    @on_page()
    def run(
        self,
        files: Sequence[str] | None,
        model_a: str,
        model_b: str,
        analyses: Sequence[str] | None = None,
        layer: str = DEFAULT_LAYER,
        method: str = "gradcam",
        model_c: str = NONE,
        model_d: str = NONE,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 (gradio's way)
    ) -> dict[Any, Any]:
        """A study of the uploaded images with the page's models (two to four), at the page's
        CAM layer. Studies compute Grad-CAM: where the page shows another method, the report
        says so."""
        if layer not in LAYERS:
            raise gr.Error(f"Choose a CAM layer of {', '.join(LAYERS)}.", title="Layer")
        names = tuple(chosen_models(model_a, model_b, model_c, model_d))
        with study_failures():
            report, archive, folder = self._run(files, names, analyses or (), layer, progress)
        return self.tab.shown(method_note(method) + report, archive, folder)

    @on_page()
    def open(self, name: str | None) -> dict[Any, Any]:
        with study_failures():
            return self.tab.shown(*self._open(name))

    def listing(self) -> dict[str, Any]:
        """The studies under `--studies-dir` (folders with a study.json), for the dropdown."""
        return gr.update(choices=self.studies())

    def studies(self) -> list[str]:
        if self.studies_dir is None or not self.studies_dir.is_dir():
            return []
        found = self.studies_dir.glob("**/study.json")
        return sorted(str(p.parent.relative_to(self.studies_dir)) for p in found)

    def _run(
        self,
        files: Sequence[str] | None,
        names: tuple[str, ...],
        analyses: Sequence[str],
        layer: str,
        progress: gr.Progress,
    ) -> tuple[Any, ...]:
        if not files:
            raise gr.Error("Choose images or a ZIP of images first.", title="No images")
        if len(set(names)) != len(names):
            raise gr.Error("Choose different models (C and D may be left at none).", title="Models")
        folder = self.space.folder()
        images = folder / "images"
        try:
            count = unpack(files, images, self.limits)
            progress(0, desc="Waiting for the models")
            title = f"{count} image{'s' * (count != 1)} uploaded on the page"
            self.engine.study(images, folder / "study", names, analyses, layer=layer, title=title)
            return (*shown(folder / "study", self.space), folder / "study")
        except BaseException:
            # Nothing of a failed request is shown, so nothing of it is kept: before, a damaged
            # ZIP's members unpacked before the bad one stayed until 512 more requests came.
            self.space.discard(folder)
            raise

    def _open(self, name: str | None) -> tuple[Any, ...]:
        if self.studies_dir is None:
            raise gr.Error("This server was started without --studies-dir.", title="No studies")
        if not name or name not in self.studies():
            raise gr.Error(
                "Pick a study from the list (folders under the server's --studies-dir that "
                "hold a study.json).",
                title="Unknown study",
            )
        folder = (self.studies_dir / name).resolve()
        if not folder.is_relative_to(self.studies_dir):  # a link out of the studies folder
            raise gr.Error("That study lies outside the studies folder.", title="Unknown study")
        copy = self.space.folder() / "study"
        copy_report(folder, copy, self.studies_dir)
        return (*shown(copy, self.space), folder)  # the browser reads the rows where they are


def method_note(method: str) -> str:
    """A sentence above a page study's report where the page's CAM method is not Grad-CAM."""
    if method == "gradcam" or method not in METHODS:
        return ""
    return (
        f"<p><b>Note:</b> studies compute Grad-CAM; the page's method, "
        f"{html.escape(METHODS[method].title)}, was not used for this study.</p>"
    )


REPORT_FILES = ("report.html", "study.json", "problems.txt")
MAX_REPORT_BYTES = 50 * 2**20  # a report's page, summary and figures: a few MB


def copy_report(study: Path, copy: Path, root: Path) -> None:
    """The report of a study under `root` (its page, summary, problems, figures and tables; not its
    rows, which can be gigabytes) into `copy`: regular files only, none that is a link or lies
    outside `root`, at most `MAX_REPORT_BYTES` together."""
    wanted = [study / name for name in REPORT_FILES]
    wanted += sorted((study / "figures").glob("*.png"))
    wanted += sorted(p for p in (study / "tables").glob("*") if p.suffix in {".csv", ".tex"})
    total = 0
    for path in wanted:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root):
            continue  # missing, or a link: never followed
        total += path.stat().st_size
        if total > MAX_REPORT_BYTES:
            raise gr.Error("That study's report is too large to open here.", title="Too large")
        target = copy / path.relative_to(study)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target, follow_symlinks=False)
    if not (copy / "study.json").exists() or not (copy / "report.html").exists():
        raise gr.Error("That folder holds no complete study.", title="Unknown study")


@contextmanager
def study_failures() -> Iterator[None]:
    """The study's own words for its expected failures (a refused upload is not the server's
    failure: one line in the log, no traceback)."""
    try:
        yield
    except gr.Error:  # its own words already (gradio's Error is a ValueError)
        raise
    except (ModelsUnavailable, ValueError) as error:
        raise refuse(str(error), "The study could not run") from None
    except OSError as error:  # a file of the study missing or unreadable
        raise refuse(type(error).__name__, "The study could not be read") from None
    except Stopped:
        raise refuse("The server is stopping.", "Stopped") from None


Entry = tuple[PurePosixPath, Callable[[], Any], int]  # a name made here, an opener, its size


def unpack(files: Sequence[str], folder: Path, limits: StudyLimits) -> int:
    """The uploaded images (and the images inside uploaded ZIPs) into `folder`, made here;
    returns how many. Refuses, before writing anything, more than `limits` allow or a file that
    is neither; a file that cannot be unpacked, or more bytes than `limits` allow (whatever the
    sizes stated), is refused with `folder` removed again."""
    entries = _entries(files, limits)
    try:
        _write(entries, folder, limits.max_bytes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return len(entries)


def _entries(files: Sequence[str], limits: StudyLimits) -> list[Entry]:
    """What `unpack` writes, checked against `limits` by the sizes the files state."""
    entries: list[Entry] = []
    for file in files:
        path = Path(file)
        if path.suffix.lower() == ".zip":
            entries += _zip_entries(path, limits.max_images)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            entries.append(
                (PurePosixPath(path.name), lambda p=path: p.open("rb"), path.stat().st_size)
            )
        else:
            raise gr.Error(f"{path.name} is neither an image nor a ZIP.", title="Not an image")
    if not entries:
        raise gr.Error("The upload holds no images.", title="No images")
    if len(entries) > limits.max_images:
        raise gr.Error(
            f"{len(entries)} images: this server studies at most {limits.max_images} at once "
            "(sa-viz study takes whole datasets).",
            title="Too many images",
        )
    total = sum(size for _, _, size in entries)
    if total > limits.max_bytes:
        raise gr.Error(
            f"{total / 2**20:.0f} MB of images: this server takes at most "
            f"{limits.max_bytes / 2**20:.0f} MB at once.",
            title="Too large",
        )
    return entries


def _write(entries: Sequence[Entry], folder: Path, max_bytes: int) -> None:
    """Each entry's bytes into `folder`, at most `max_bytes` together."""
    used: set[PurePosixPath] = set()
    left = max_bytes
    for name, opener, _size in entries:
        target = folder / _free_name(name, used)
        target.parent.mkdir(parents=True, exist_ok=True)
        # zipfile reads an entry up to its declared size and then checks its CRC: an entry that
        # unpacks to more than it claims (a zip bomb's trick) ends there, as a damaged ZIP.
        try:
            with opener() as source, target.open("wb") as out:
                left -= _copy(source, out, left, max_bytes)
        except (zipfile.BadZipFile, OSError) as error:
            raise gr.Error(f"{name} could not be unpacked: {error}", title="Damaged ZIP") from error


def _copy(source: Any, out: Any, left: int, max_bytes: int) -> int:
    """Copy `source` into `out`, at most `left` bytes (of `max_bytes` for the whole upload), and
    return how many: the stated sizes were checked, this bounds what is actually written."""
    written = 0
    while chunk := source.read(min(CHUNK, left - written + 1)):
        written += len(chunk)
        if written > left:
            raise gr.Error(
                "The upload unpacks to more bytes than it states: this server takes at most "
                f"{max_bytes / 2**20:.0f} MB at once.",
                title="Too large",
            )
        out.write(chunk)
    return written


def _zip_entries(path: Path, max_images: int) -> list[Entry]:
    stated = _stated_entries(path)
    if stated is not None and stated > max(10 * max_images, 1000):
        raise gr.Error(
            f"{path.name} holds {stated} entries: this server studies at most {max_images} "
            "images at once.",
            title="Too many images",
        )  # refused before its directory is parsed (a million entries take ~1 GB)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise gr.Error(f"{path.name} is not a readable ZIP.", title="Not an image") from error
    entries = []
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        if info.is_dir() or name.suffix.lower() not in IMAGE_SUFFIXES:
            continue  # folders, text files, __MACOSX/… resource forks are not images
        if name.name.startswith(".") or "__MACOSX" in name.parts:
            continue
        if len(entries) == max_images:  # one more than allowed: `unpack` says so
            entries.append((name, lambda: None, 0))
            break
        # Class folders are kept when plain (one level, e.g. n01440764/x.jpg); anything else
        # (absolute paths, "..", deeper trees) keeps only the file's own name.
        kept = (
            name if len(name.parts) == 2 and all(PLAIN.fullmatch(p) for p in name.parts) else None
        )
        kept = kept or PurePosixPath(
            name.name if PLAIN.fullmatch(name.name) else f"image{name.suffix}"
        )
        entries.append((kept, lambda a=archive, i=info: a.open(i), info.file_size))
    return entries


def _stated_entries(path: Path) -> int | None:
    """The number of entries a ZIP's end record states, read without parsing its directory
    (zipfile's own reader of that record: private, but the same since Python 2)."""
    try:
        with path.open("rb") as f:
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return None
    return None if not end else int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def _free_name(name: PurePosixPath, used: set[PurePosixPath]) -> PurePosixPath:
    candidate, n = name, 1
    while candidate in used:
        candidate = name.with_name(f"{name.stem}-{n}{name.suffix}")
        n += 1
    used.add(candidate)
    return candidate


def shown(study: Path, space: TempSpace) -> tuple[str, str]:
    """What the tab shows of a study folder inside the temp space: its report (report.html's
    body, its figures inlined: the page serves no study folder) and the whole folder as a ZIP."""
    page = (study / "report.html").read_text()
    body = page[page.index("</style>") + len("</style>") :]
    body = body.replace("<a href=problems.txt>problems.txt</a>", "problems.txt in the ZIP")
    body = body.replace("<a href=tables/>tables/</a>", "tables/ in the ZIP")
    body = re.sub(r"<h1>.*?</h1>", "", body)  # it names the server's folder; the tab says it

    def inline(match: re.Match[str]) -> str:
        data = (study / "figures" / match.group(1)).read_bytes()
        return f'src="data:image/png;base64,{base64.b64encode(data).decode()}"'

    archive = shutil.make_archive(str(study.parent / "study"), "zip", study)
    return FIGURE.sub(inline, body), archive
