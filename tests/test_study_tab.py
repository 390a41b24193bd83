"""The Study tab's handlers: uploads unpacked within bounds and under names made here, studies
opened only from the studies folder, every failure a hint that keeps what the tab shows."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import zipfile

import gradio as gr
import pytest
from conftest import ASSETS
from hostile import damaged_zip

from sa_viz.app.engine import Engine
from sa_viz.app.study_tab import StudyHandlers, StudyLimits, study_tab, unpack
from sa_viz.app.tempspace import TempSpace
from sa_viz.studies import run_study

PHOTO = (ASSETS / "chelsea.jpg").read_bytes()


def make_zip(path, names, data=PHOTO):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, data)
    return str(path)


def new_studies(engine, space=None, root=None):
    """The tab's handlers, for a tab of their own (their outputs are its components)."""
    with gr.Blocks():
        tab = study_tab(StudyLimits(), root, 10**8)
    return StudyHandlers(engine, space or TempSpace(), StudyLimits(), tab, root)


def parts(answer, studies):
    """(report, archive, hint) of a tab event's answer: None for an output it leaves as it is."""
    return tuple(
        answer.get(c) for c in (studies.tab.report, studies.tab.download, studies.tab.hint)
    )


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_zip_keeps_plain_class_folders_and_nothing_outside(tmp_path):
    archive = make_zip(
        tmp_path / "set.zip",
        [
            "n02123045/a.jpg",  # a class folder: kept (the label)
            "../../escape.jpg",  # outside: only its name is kept
            "/etc/absolute.jpg",
            "deep/er/tree.jpg",
            "__MACOSX/n02123045/._a.jpg",  # resource forks and hidden files: skipped
            ".hidden.jpg",
            "notes.txt",  # not an image: skipped
            "n02123045/b c.jpg",  # odd but plain
        ],
    )
    out = tmp_path / "out"
    assert unpack([archive], out, StudyLimits()) == 5
    assert files_in(out) == [
        "absolute.jpg",
        "escape.jpg",
        "n02123045/a.jpg",
        "n02123045/b c.jpg",
        "tree.jpg",
    ]
    assert not (tmp_path / "escape.jpg").exists()


def test_the_same_name_twice_gets_a_second_name(tmp_path):
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir(), second.mkdir()
    shutil.copy(ASSETS / "chelsea.jpg", first / "cat.jpg")
    shutil.copy(ASSETS / "coffee.jpg", second / "cat.jpg")
    out = tmp_path / "out"
    unpack([str(first / "cat.jpg"), str(second / "cat.jpg")], out, StudyLimits())
    assert files_in(out) == ["cat-1.jpg", "cat.jpg"]
    assert (out / "cat-1.jpg").read_bytes() == (ASSETS / "coffee.jpg").read_bytes()


@pytest.mark.parametrize(
    ("limits", "names", "words"),
    [
        (StudyLimits(max_images=3), [f"{i}.jpg" for i in range(4)], "at most 3"),
        (StudyLimits(max_bytes=2 * len(PHOTO)), ["a.jpg", "b.jpg", "c.jpg"], "at most"),
        (StudyLimits(), ["notes.txt"], "no images"),
    ],
    ids=["count", "size", "empty"],
)
def test_limits_are_checked_before_anything_is_written(tmp_path, limits, names, words):
    archive = make_zip(tmp_path / "set.zip", names)
    out = tmp_path / "out"
    with pytest.raises(gr.Error, match=words):
        unpack([archive], out, limits)
    assert not out.exists()


def test_a_file_that_is_neither_is_named(tmp_path):
    (tmp_path / "list.csv").write_text("path\n")
    with pytest.raises(gr.Error, match=r"list\.csv is neither an image nor a ZIP"):
        unpack([str(tmp_path / "list.csv")], tmp_path / "out", StudyLimits())
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(gr.Error, match=r"bad\.zip is not a readable ZIP"):
        unpack([str(tmp_path / "bad.zip")], tmp_path / "out", StudyLimits())


def test_an_entry_that_unpacks_to_more_than_it_declares_stops_there(tmp_path):
    """A ZIP whose directory understates an entry's size (a zip bomb's trick): the limits count
    the declared sizes, and the copy stops there with a hint."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.png", b"\0" * 1_000_000)
    data = bytearray(buffer.getvalue())
    central = data.rindex(b"PK\x01\x02")  # the central directory's entry: its sizes lie
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    (tmp_path / "bomb.zip").write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(gr.Error, match=r"big\.png could not be unpacked"):
        unpack([str(tmp_path / "bomb.zip")], out, StudyLimits(max_bytes=10_000))
    assert not out.exists()  # before: the first 1000 bytes of big.png stayed


def size_of(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_damaged_zips_leave_nothing_in_the_temp_space(tmp_path):
    """Before: each refused request left its 40 MB of honest members in the temp space (the
    folder was cleaned only once a study started), so a few small uploads filled the disk."""
    (tmp_path / "set.zip").write_bytes(damaged_zip(20))
    space = TempSpace()
    studies = new_studies(Engine(dict), space)
    sizes = [size_of(space.root)]
    for _ in range(3):
        *kept, hint = parts(
            studies.run([str(tmp_path / "set.zip")], "resnet50", "sa_resnet50"), studies
        )
        assert kept == [None, None] and "Damaged ZIP" in hint["value"], hint
        sizes.append(size_of(space.root))
    assert sizes == [0, 0, 0, 0], sizes
    assert not list(space.root.iterdir())  # no empty folder per request either


def test_what_is_written_is_bounded_whatever_the_sizes_stated(tmp_path):
    """A file that reads as more bytes than stated (here a pipe, stated 0 bytes, that yields
    3 MB): the copy stops at the limit. Before: all of it was written, however much."""
    stream = tmp_path / "stream.png"
    os.mkfifo(stream)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), stream.open("wb") as pipe:
            for _ in range(3):
                pipe.write(b"\0" * 2**20)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "out"
    with pytest.raises(gr.Error, match="at most 1 MB"):
        unpack([str(stream)], out, StudyLimits(max_bytes=2**20))
    writer.join(timeout=10)
    assert not out.exists()


@pytest.fixture
def studies(tmp_path, loaded_models):
    """A studies folder with one study in it, and a study outside it linked from inside."""
    root = tmp_path / "studies"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ASSETS / "chelsea.jpg", data / "chelsea.jpg")
    run_study(data, root / "cats", loaded_models, workers=0, progress=False)
    shutil.copytree(root / "cats", tmp_path / "outside")
    (root / "linked").symlink_to(tmp_path / "outside")
    engine = Engine(lambda: loaded_models)
    return new_studies(engine, root=root)


def test_links_inside_a_study_are_not_followed(studies, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    cats = studies.studies_dir / "cats"
    (cats / "figures" / "stolen.png").symlink_to(secret)
    (cats / "problems.txt").unlink()
    (cats / "problems.txt").symlink_to(secret)
    _report, archive, _hint = parts(studies.open("cats"), studies)
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert "figures/stolen.png" not in names and "problems.txt" not in names
        assert not any(n.startswith("rows/") for n in names)  # the rows stay where they are
        assert all(b"not for the page" not in z.read(n) for n in names)


def test_a_study_opens_from_the_studies_folder_only(studies):
    assert "cats" in studies.studies()
    report, archive, hint = parts(studies.open("cats"), studies)
    assert "1 of 1 images studied" in report and "data:image/png;base64," in report
    assert "<h1>" not in report and 'src="figures/' not in report
    assert "tables/ in the ZIP" in report and "href=tables/" not in report
    assert archive.endswith(".zip") and str(studies.space.root) in archive
    with zipfile.ZipFile(archive) as z:
        assert {"report.html", "study.json", "problems.txt"} <= set(z.namelist())
        assert {"tables/accuracy.csv", "tables/accuracy.tex"} <= set(z.namelist())
    assert hint["visible"] is False
    for name in ("linked", "../outside", "/etc", "", None):
        *kept, hint = parts(studies.open(name), studies)
        assert kept == [None, None] and hint["visible"], name
        assert "Unknown study" in hint["value"] or "outside" in hint["value"]


def test_run_asks_for_images_and_two_models(studies, tmp_path):
    *kept, hint = parts(studies.run(None, "resnet50", "sa_resnet50"), studies)
    assert kept == [None, None] and "No images" in hint["value"]
    *kept, hint = parts(studies.run([str(ASSETS / "chelsea.jpg")], "resnet50", "resnet50"), studies)
    assert "Choose different models" in hint["value"]


def test_a_study_from_the_tab_runs_the_ticked_analyses(loaded_models):
    engine = Engine(lambda: loaded_models).start()
    studies = new_studies(engine)
    answer = studies.run([str(ASSETS / "chelsea.jpg")], "resnet50", "sa_resnet50", ["road"])
    report, archive, hint = parts(answer, studies)
    assert hint["visible"] is False, hint
    assert "<h2>Analyses</h2>" in report and "road_gap" in report
    with zipfile.ZipFile(archive) as z:
        summary = json.loads(z.read("study.json"))
    assert summary["settings"]["analyses"] == ["road"]
    assert summary["analyses"]["road_morf"]["sa_resnet50"]["n"] == 1


def test_a_page_study_says_what_it_is_and_what_it_did_not_use(loaded_models):
    """Issue 27: a page study took neither the page's layer nor said that it ignores its
    method, and its report's title was a temporary folder's path."""
    engine = Engine(lambda: loaded_models).start()
    studies = new_studies(engine)
    answer = studies.run(
        [str(ASSETS / "chelsea.jpg")], "resnet50", "sa_resnet50", [], "layer3", "scorecam"
    )
    report, archive, hint = parts(answer, studies)
    assert hint["visible"] is False, hint
    assert "studies compute Grad-CAM; the page's method, ScoreCAM, was not used" in report
    assert "Grad-CAM at layer3" in report
    with zipfile.ZipFile(archive) as z:
        page = z.read("report.html").decode()
        summary = json.loads(z.read("study.json"))
    assert summary["settings"]["layer"] == "layer3"
    assert "<h1>SA-Viz study of 1 image uploaded on the page</h1>" in page
    answer = studies.run([str(ASSETS / "chelsea.jpg")], "resnet50", "sa_resnet50", [], "layer9")
    assert "Choose a CAM layer" in parts(answer, studies)[2]["value"]
