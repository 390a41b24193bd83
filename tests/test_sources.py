"""A study's images in each layout a dataset comes in, labels mapped onto ImageNet's classes, and
every problem reported by name."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ASSETS
from imagenet_trees import annotation, kaggle_download

from sa_viz.data.sources import label_of, read_source

PHOTOS = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"]


def copy(name: str, to) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ASSETS / name, to)


def test_labels_by_wordnet_id_index_or_name():
    assert label_of("n01440764") == 0 and label_of("n07697537") == 934
    assert label_of("934") == 934 and label_of("hot dog") == 934 and label_of("tabby") == 281
    assert label_of(None) is None and label_of("") is None
    for wrong in ("n99999999", "no such class", "1000"):
        with pytest.raises(ValueError):
            label_of(wrong)


def test_a_plain_folder_is_read_recursively_without_labels(tmp_path):
    copy("chelsea.jpg", tmp_path / "a.jpg")
    copy("coffee.jpg", tmp_path / "deeper" / "still" / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    source = read_source(tmp_path)
    assert source.layout == "folder" and source.labelled == 0
    assert [item.key for item in source.items] == ["a.jpg", "deeper/still/b.jpg"]


def test_an_image_folder_by_wordnet_id_index_and_name(tmp_path):
    copy("chelsea.jpg", tmp_path / "n02123045" / "cat.jpg")  # tabby
    copy("coffee.jpg", tmp_path / "967" / "cup.jpg")  # espresso
    copy("rocket.jpg", tmp_path / "hot dog" / "x.jpg")
    copy("astronaut.jpg", tmp_path / "astronauts" / "y.jpg")  # no such class
    source = read_source(tmp_path)
    assert source.layout == "imagefolder"
    labels = {item.key: item.label for item in source.items}
    assert labels == {
        "n02123045/cat.jpg": 281,
        "967/cup.jpg": 967,
        "hot dog/x.jpg": 934,
        "astronauts/y.jpg": None,
    }
    assert len(source.problems) == 1 and "astronauts/ (1 images)" in source.problems[0]


def test_the_imagenet_validation_layout_with_boxes(tmp_path):
    val = tmp_path / "val"
    for i, name in enumerate(PHOTOS[:3], start=1):
        copy(name, val / f"ILSVRC2012_val_{i:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n02123045 10 20 200 210 n02123045 5 5 50 50 \n"
        "ILSVRC2012_val_00000002,n07920052 0 0 100 100 \n"  # espresso
    )
    source = read_source(val)
    assert source.layout == "imagenet-val"
    first, second, third = source.items
    assert first.label == 281 and first.boxes == ((10, 20, 200, 210), (5, 5, 50, 50))
    assert second.label == 967 and third.label is None
    assert source.problems == [
        "ILSVRC2012_val_00000003.JPEG: not in LOC_val_solution.csv; studied without a label"
    ]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_list_reports_every_problem_by_name_and_keeps_the_rest(tmp_path, kind):
    copy("chelsea.jpg", tmp_path / "img" / "cat.jpg")
    copy("coffee.jpg", tmp_path / "img" / "cup.jpg")
    rows = [
        {"path": "img/cat.jpg", "label": "tabby", "box": "10 20 200 210"},
        {"path": "img/cup.jpg", "label": "no such class"},
        {"path": "img/missing.jpg", "label": "1"},
        {"path": "img/cat.jpg", "label": "281"},
        {"path": "img/cup.jpg", "label": "967", "box": "5 5 1 1"} if kind == "jsonl" else None,
    ]
    rows = [r for r in rows if r]
    listing = tmp_path / f"list.{kind}"
    if kind == "csv":
        lines = ["path,label,box"] + [f"{r['path']},{r['label']},{r.get('box', '')}" for r in rows]
        listing.write_text("\n".join(lines) + "\n")
    else:
        listing.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    source = read_source(listing)
    assert source.layout == "list"
    assert [(i.key, i.label, i.boxes) for i in source.items] == [
        ("img/cat.jpg", 281, ((10.0, 20.0, 200.0, 210.0),)),
        ("img/cup.jpg", None, ()),
    ]
    text = " | ".join(source.problems)
    assert "'no such class' is not one ImageNet class name" in text
    assert "img/missing.jpg does not exist" in text
    assert "img/cat.jpg is listed twice" in text
    if kind == "jsonl":
        assert "not JSON" in text


def test_a_missing_source_says_what_it_needs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"neither a folder of images nor a \.csv"):
        read_source(tmp_path / "nothing")


def test_the_official_tree_with_xml_annotations(tmp_path):
    """ILSVRC/Data/CLS-LOC/val/*.JPEG with ILSVRC/Annotations/CLS-LOC/val/*.xml."""
    val = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    notes = tmp_path / "ILSVRC" / "Annotations" / "CLS-LOC" / "val"
    notes.mkdir(parents=True)
    for i, name in enumerate(PHOTOS[:3], start=1):
        copy(name, val / f"ILSVRC2012_val_{i:08d}.JPEG")
    (notes / "ILSVRC2012_val_00000001.xml").write_text(
        annotation("n02123045", (10, 20, 200, 210), (5, 5, 50, 50))
    )
    (notes / "ILSVRC2012_val_00000002.xml").write_text("<annotation><object>")  # cut short
    source = read_source(val)
    assert source.layout == "imagenet-val"
    first, second, third = source.items
    assert first.label == 281 and first.boxes == ((10, 20, 200, 210), (5, 5, 50, 50))
    assert second.label is None and third.label is None
    assert len(source.problems) == 2
    assert source.problems[0].startswith("ILSVRC2012_val_00000002.xml: ")
    assert source.problems[1] == (
        "ILSVRC2012_val_00000003.JPEG: not in val/*.xml; studied without a label"
    )


def test_xml_annotations_beside_the_images(tmp_path):
    copy(PHOTOS[0], tmp_path / "val" / "ILSVRC2012_val_00000007.JPEG")
    (tmp_path / "val" / "ILSVRC2012_val_00000007.xml").write_text(
        annotation("n07920052", (1, 2, 3, 4))
    )
    (item,) = read_source(tmp_path / "val").items
    assert item.label == 967 and item.boxes == ((1, 2, 3, 4),)


def validation_folder(tmp_path, images: int):
    val = tmp_path / "val"
    for i in range(1, images + 1):
        copy(PHOTOS[0], val / f"ILSVRC2012_val_{i:08d}.JPEG")
    return val


def test_every_unreadable_row_of_the_solution_file_is_a_named_problem(tmp_path):
    """Before: rows whose PredictionString held no whole object left their image unlabelled
    with nothing said; only an unknown synset was named."""
    val = validation_folder(tmp_path, 6)
    (val / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n02123045 10 20 200 210\n"
        "ILSVRC2012_val_00000002,garbage\n"
        "ILSVRC2012_val_00000003,n01751748 1 2\n"
        "ILSVRC2012_val_00000004,n01751748 1 2 3 4 5\n"
        "ILSVRC2012_val_00000005,\n"
        "ILSVRC2012_val_00000006,n01751748 1 2 x 4\n"
        ",n01751748 1 2 3 4\n"
    )
    source = read_source(val)
    assert [item.label for item in source.items] == [281, None, None, None, None, None]
    assert all(item.boxes == () for item in source.items[1:])
    assert len(source.problems) == 6, source.problems
    for line, problem in enumerate(source.problems, start=3):
        assert problem.startswith(f"LOC_val_solution.csv, line {line}: "), problem
    for i, problem in enumerate(source.problems[:5], start=2):
        assert f"ILSVRC2012_val_{i:08d}: " in problem and "without a label" in problem
    assert "'garbage' is not a WordNet id and a box" in source.problems[0]
    assert "no ImageId" in source.problems[5]


BAD_BYTES = b"\xff\xfe caf\xe9"  # not UTF-8 (Latin-1 at best)
LONG = b"x" * 200_000  # over the csv module's field limit of 128 KB


@pytest.mark.parametrize("bad", [BAD_BYTES, LONG], ids=["not-utf8", "long-field"])
def test_a_hostile_solution_file_names_the_line_and_goes_on(tmp_path, bad):
    """Before: UnicodeDecodeError or _csv.Error, and the CLI ended with a traceback."""
    val = validation_folder(tmp_path, 3)
    (val / "LOC_val_solution.csv").write_bytes(
        b"ImageId,PredictionString\n"
        b"ILSVRC2012_val_00000001,n02123045 10 20 200 210\n"
        b"ILSVRC2012_val_00000002,n02123045 " + bad + b"\n"
        b"ILSVRC2012_val_00000003,n07920052 0 0 100 100\n"
    )
    source = read_source(val)
    assert [item.label for item in source.items] == [281, None, 967]
    assert source.problems[0].startswith("LOC_val_solution.csv, line 3: "), source.problems
    assert ("not UTF-8" if bad is BAD_BYTES else "field larger") in source.problems[0]
    assert "val_00000002.JPEG: not in LOC_val_solution.csv" in source.problems[1]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_list_with_bytes_that_are_not_text_names_the_line_and_goes_on(tmp_path, kind):
    """Before: UnicodeDecodeError (and, in a JSON Lines list, AttributeError for JSON that is
    not an object, TypeError for a box that is an object)."""
    for name, to in (("chelsea.jpg", "cat.jpg"), ("coffee.jpg", "cup.jpg"), (PHOTOS[2], "a.jpg")):
        copy(name, tmp_path / to)
    listing = tmp_path / f"list.{kind}"
    if kind == "csv":  # line 1: the header
        listing.write_bytes(
            b"path,label\ncat.jpg,tabby\n" + BAD_BYTES + b".jpg,1\ncup.jpg,967\na.jpg,1,2\n"
        )
        lines = ["list.csv, line 3: not UTF-8 text", "list.csv, line 5: 3 fields, the header"]
        studied = [("cat.jpg", 281), ("cup.jpg", 967)]
    else:
        listing.write_bytes(
            b'{"path": "cat.jpg", "label": "tabby"}\n{"path": "' + BAD_BYTES + b'.jpg"}\n'
            b'{"path": "cup.jpg", "label": 967}\n[1, 2]\n{"path": "a.jpg", "box": {"x": 1}}\n'
        )
        lines = ["list.jsonl, line 2: not UTF-8 text", "list.jsonl, line 4: not a JSON object"]
        lines.append("list.jsonl, line 5: box {'x': 1} is not x0 y0 x1 y1")
        studied = [("cat.jpg", 281), ("cup.jpg", 967), ("a.jpg", None)]
    source = read_source(listing)
    assert [(i.key, i.label) for i in source.items] == studied
    assert len(source.problems) == len(lines), source.problems
    for expected, problem in zip(lines, source.problems, strict=True):
        assert problem.startswith(expected), source.problems


@pytest.mark.parametrize(
    ("header", "words"),
    [(b"Image\xffId,PredictionString\n", "not UTF-8"), (LONG + b"\n", "field larger")],
    ids=["not-utf8", "long-field"],
)
def test_a_label_file_whose_header_cannot_be_read_stops_with_one_sentence(tmp_path, header, words):
    val = validation_folder(tmp_path, 1)
    (val / "LOC_val_solution.csv").write_bytes(header + b"ILSVRC2012_val_00000001,n02123045\n")
    with pytest.raises(ValueError, match=rf"LOC_val_solution\.csv, line 1: .*{words}") as caught:
        read_source(val)
    assert caught.typename == "SourceError"  # what the command line answers in one sentence


@pytest.mark.parametrize("given", ["root", "ILSVRC", "val", "dot in val"])
def test_the_kaggle_download_is_read_from_its_root_its_ilsvrc_folder_or_its_val_folder(
    tmp_path, monkeypatch, given
):
    """Issue 28: from the root, 0 images were studied and 0 problems reported, nothing said."""
    val = kaggle_download(tmp_path)
    path = {"root": tmp_path, "ILSVRC": tmp_path / "ILSVRC", "val": val}.get(given)
    if path is None:
        monkeypatch.chdir(val)
        path = "."
    source = read_source(path)
    assert source.layout == "imagenet-val" and source.problems == []
    assert source.root.resolve() == val.resolve()
    # The same keys whichever folder was given: a study begun from one resumes from another.
    assert [(i.key, i.label, i.boxes) for i in source.items] == [
        ("ILSVRC2012_val_00000001.JPEG", 281, ((10, 20, 200, 210), (5, 5, 50, 50))),
        ("ILSVRC2012_val_00000002.JPEG", 967, ((0, 0, 100, 100),)),
        ("ILSVRC2012_val_00000003.JPEG", 0, ((1, 2, 3, 4),)),
    ]


def test_the_official_tree_is_read_from_its_root_with_its_xml(tmp_path):
    """ILSVRC/ without Kaggle's csv: the validation images and the XML annotations."""
    val = kaggle_download(tmp_path)
    (tmp_path / "LOC_val_solution.csv").unlink()
    source = read_source(tmp_path / "ILSVRC")
    assert source.layout == "imagenet-val" and source.root == val
    assert [item.label for item in source.items] == [1, None, None]  # goldfish, by its XML
    assert source.problems[0].endswith("not in val/*.xml; studied without a label")


def empty_sources(tmp_path):
    """Sources in which no image is found, each with what its error must say."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes" / "deeper").mkdir(parents=True)
    (tmp_path / "notes" / "deeper" / "a.txt").write_text("not an image")
    (tmp_path / "kaggle").mkdir()  # only the label file downloaded
    (tmp_path / "kaggle" / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n02123045 1 2 3 4\n"
    )
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / "classes" / wnid).mkdir(parents=True)
    (tmp_path / "list.csv").write_text("path,label\ngone/a.jpg,1\ngone/b.jpg,2\n")
    return {
        "empty": (tmp_path / "empty", "no image file (.bmp"),
        "no images": (tmp_path / "notes", "is in"),
        "labels only": (tmp_path / "kaggle", "ILSVRC/Data/CLS-LOC/val/"),
        "empty classes": (tmp_path / "classes", "read as an ImageFolder"),
        "missing files": (tmp_path / "list.csv", "list.csv, line 2: gone/a.jpg does not exist"),
    }


@pytest.mark.parametrize(
    "kind", ["empty", "no images", "labels only", "empty classes", "missing files"]
)
def test_a_source_without_images_names_where_it_looked_and_the_layouts_it_knows(tmp_path, kind):
    from sa_viz.data.sources import LAYOUTS, EmptySource, SourceError

    path, words = empty_sources(tmp_path)[kind]
    with pytest.raises(EmptySource) as caught:
        read_source(path)
    message = str(caught.value)
    assert isinstance(caught.value, SourceError)  # what the command line answers with
    assert message.startswith(f"{path}: no images to study: ") and words in message, message
    assert all(f"  - {text}" in message for text in LAYOUTS.values()), message
    assert "Kaggle" in message and "Point it at" in message
