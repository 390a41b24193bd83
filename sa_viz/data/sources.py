"""The images of a study and what is known about each: where a dataset's labels and boxes are.

`read_source(path)` recognises these layouts (`LAYOUTS`) and lists their images as `Item`s,
labels mapped onto the 1000 ImageNet classes:

- a list: a `.csv` (columns `path`, optional `label`, optional `box` as "x0 y0 x1 y1") or a
  `.jsonl` file (one object per line with the same keys); relative paths are read from the
  list's folder;
- the ImageNet validation layout: a flat folder of images with its ground truth, either
  `LOC_val_solution.csv` (the Kaggle localisation file: each image's synset and boxes) in it or
  beside it, or the official per-image XML annotations (`ILSVRC2012_val_00000001.xml`: the
  synset and box of each object) beside the images or in the official tree
  (`Annotations/CLS-LOC/val/` for `Data/CLS-LOC/val/`);
- the Kaggle ImageNet localisation download, from its root (`LOC_val_solution.csv` there, the
  images in `ILSVRC/Data/CLS-LOC/val/`), from `ILSVRC/` or from that val folder: the validation
  layout above, its keys the image names whichever folder was given;
- an ImageFolder: one sub-folder per class, named by WordNet id (`n01440764`), class index
  (`0`–`999`) or class name (`tench`, `hot dog`: `sa_viz.data.imagenet.class_index`);
- any other folder: every image in it, recursively, without labels.

What cannot be used (an unknown label, a row of a list or of `LOC_val_solution.csv` that cannot be
read, a listed file that does not exist, the same file twice) is reported by name in
`Source.problems` (a row by its file and line), never dropped silently; the study goes on with
the rest. A list or label file whose header cannot be read is a `SourceError`, one sentence; a
source with no image at all is an `EmptySource`, which names where it looked and the layouts
above (before, the Kaggle root studied 0 images and reported 0 problems). Images are not opened
here: an unreadable image is reported when the study decodes it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sa_viz.data.imagenet import NUM_CLASSES, class_index

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jpe"}
LOC_SOLUTION = "LOC_val_solution.csv"
KAGGLE_VAL = Path("Data", "CLS-LOC", "val")  # in the ILSVRC/ folder of Kaggle's download
WNID = re.compile(r"^n\d{8}$")
SKIPPED = "the row is skipped"  # the end of a problem with a row of a list or label file

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the original image's pixels
Row = dict[str, Any]


# What `read_source` recognises, in the order it tries them: what an empty source's error lists.
LAYOUTS = {
    "list": "a .csv or .jsonl list of images (columns path, and optionally label and box)",
    "imagenet-val": "an ImageNet validation folder (ILSVRC2012_val_*.JPEG) with "
    f"{LOC_SOLUTION} in it or beside it, or with its per-image XML annotations; also the "
    f"Kaggle ImageNet localisation download from its root ({LOC_SOLUTION}, "
    "ILSVRC/Data/CLS-LOC/val/) or from its ILSVRC/ folder",
    "imagefolder": "an ImageFolder: one sub-folder of images per class, named by WordNet id "
    "(n01440764), class index (0-999) or class name (tench)",
    "folder": "any other folder: every image in it and below it, without labels",
}


class SourceError(ValueError):
    """A source that cannot be studied at all: a list or label file whose header cannot be
    read (named with the line), or a source without images (`EmptySource`)."""


class EmptySource(SourceError):
    """A source in which no image was found: the message names where it looked, the layouts
    `read_source` knows and what to do."""


@dataclass(frozen=True)
class Item:
    """One image of a study: its key (its path relative to the source, unique), where it is,
    its ImageNet class if known and its boxes (for the pointing game)."""

    key: str
    path: Path
    label: int | None = None
    boxes: tuple[Box, ...] = ()


@dataclass
class Source:
    layout: str  # "list", "imagenet-val", "imagefolder" or "folder"
    root: Path
    items: list[Item] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one sentence each, naming the file

    @property
    def labelled(self) -> int:
        return sum(item.label is not None for item in self.items)


@cache
def wnids() -> dict[str, int]:
    """WordNet id → class index, in torchvision's order (timm ships the synset list)."""
    from timm.data import ImageNetInfo

    names = ImageNetInfo("imagenet-1k").label_names()
    assert len(names) == NUM_CLASSES
    return {wnid: i for i, wnid in enumerate(names)}


def label_of(text: str | int | None) -> int | None:
    """A label as a class index: a WordNet id, an index or a class name; None for no label.
    Raises ValueError for a label that names no class (or several)."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if WNID.match(text):
        if text not in wnids():
            raise ValueError(f"{text!r} is not an ImageNet-1k WordNet id")
        return wnids()[text]
    return class_index(text)


def read_source(path: str | Path) -> Source:
    """The images at `path` and their labels (see the module's docstring for the layouts).
    Raises `EmptySource` where no image is found, `SourceError` for a list or label file that
    cannot be read, FileNotFoundError for a path that is neither a folder nor a list."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
        return with_images(_from_list(path), path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a folder of images nor a .csv/.jsonl list")
    return with_images(_from_folder(path), path)


def with_images(source: Source, given: Path | None = None) -> Source:
    """`source`, if it lists an image; else an `EmptySource` naming where it looked (`given`,
    the path a person gave, and the folder read), the layouts known and what to do."""
    if source.items:
        return source
    given = source.root if given is None else given
    root = source.root
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    found = {
        "list": f"{given} lists no image that can be studied",
        "imagenet-val": f"it was read as ImageNet validation images with their labels, but "
        f"{root} holds no image ({suffixes}; Kaggle's download keeps them in "
        f"ILSVRC/{KAGGLE_VAL.as_posix()}/)",
        "imagefolder": f"it was read as an ImageFolder, but the class folders in {root} hold "
        f"no image ({suffixes})",
        "folder": f"no image file ({suffixes}) is in {root} or below it",
    }.get(source.layout, f"{root} holds no image")
    lines = [f"{given}: no images to study: {found}."]
    if source.problems:
        shown = "; ".join(source.problems[:3])
        more = f" (and {len(source.problems) - 3} more)" if len(source.problems) > 3 else ""
        lines.append(f"Its problems: {shown}{more}.")
    lines.append("sa-viz reads:")
    lines += [f"  - {text}" for text in LAYOUTS.values()]
    lines.append(
        "Point it at a source of one of these kinds (for the Kaggle download, the folder that "
        f"holds {LOC_SOLUTION}), or list your images in a .csv with a path column."
    )
    raise EmptySource("\n".join(lines))


def _from_folder(path: Path) -> Source:
    images = _validation_folder(path)
    solution = _solution_file(images)
    if solution is not None:
        return _imagenet_val(images, _solution_truth(solution), solution.name)
    annotations = _annotations_folder(images)
    if annotations is not None:
        return _imagenet_val(images, _xml_truth(annotations), f"{annotations.name}/*.xml")
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    if folders and _all_classes(folders):
        return _image_folder(path, folders)
    source = Source("folder", path)
    _add_images(source, _images(path), path, lambda _p: None)
    return source


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _all_classes(folders: list[Path]) -> bool:
    """True if most sub-folders name a class (an ImageFolder, possibly with a stray folder)."""
    named = 0
    for folder in folders:
        with contextlib.suppress(ValueError):  # not a class: counted as not named
            named += label_of(folder.name) is not None
    return named >= max(1, (len(folders) + 1) // 2)


def _image_folder(root: Path, folders: list[Path]) -> Source:
    source = Source("imagefolder", root)
    for folder in folders:
        try:
            label = label_of(folder.name)
        except ValueError as error:
            images = _images(folder)
            source.problems.append(
                f"folder {folder.name}/ ({len(images)} images): {error}; its images are studied "
                "without a label"
            )
            label = None
        _add_images(source, _images(folder), root, lambda _p, label=label: label)
    return source


BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
Truth = dict[str, tuple[int | None, tuple[Box, ...]]]  # image stem → label, boxes; or a problem


def _solution_truth(solution: Path) -> tuple[Truth, list[str]]:
    """`LOC_val_solution.csv`: "ImageId,PredictionString" with "n01751748 x0 y0 x1 y1 n01751748
    …" (one synset and box per object); a row that cannot be read is a problem, by its line."""
    truth: Truth = {}
    problems: list[str] = []
    for number, row in _csv_rows(solution, problems):
        where = f"{solution.name}, line {number}"
        image = (row.get("ImageId") or "").strip()
        if not image:
            problems.append(f"{where}: no ImageId; {SKIPPED}")
            continue
        try:
            truth[image] = _objects(row.get("PredictionString") or "")
        except ValueError as error:
            problems.append(f"{where}: {image}: {error}; studied without a label")
            truth[image] = (None, ())
    return truth, problems


def _objects(text: str) -> tuple[int | None, tuple[Box, ...]]:
    """A PredictionString's label (its first object's synset) and boxes. Raises ValueError for
    one that is not whole objects of five fields each: a part of one is not dropped silently."""
    parts = text.split()
    if not parts or len(parts) % 5:
        shown = text if len(text) <= 40 else text[:37] + "…"
        raise ValueError(f"{shown!r} is not a WordNet id and a box (x0 y0 x1 y1) for each object")
    objects = [parts[i : i + 5] for i in range(0, len(parts), 5)]
    boxes = tuple(tuple(float(v) for v in o[1:5]) for o in objects)
    return label_of(objects[0][0]), boxes


def _csv_rows(path: Path, problems: list[str]) -> Iterator[tuple[int, Row]]:
    """The rows of a CSV file with a header, by the header's names, each with its line number
    (its last line). A row that cannot be read (bytes that are not UTF-8, a field over the csv
    module's limit of 128 KB, more fields than the header names) is a problem naming the file
    and the line, and the rest are read; a header that cannot be read is a `SourceError`."""
    # Bytes that are not UTF-8 become lone surrogates, found per row below: a decoding error
    # would end the whole file at its first bad byte.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)  # (csv.DictReader's line_num stops at the last row read whole)
        try:
            header = next(reader, [])
        except csv.Error as error:
            raise SourceError(f"{path}, line {reader.line_num}: {error}") from None
        if not _is_text(header):
            raise SourceError(f"{path}, line {reader.line_num}: the header is not UTF-8 text")
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:  # the reader goes on at the next line
                problems.append(f"{path.name}, line {reader.line_num}: {error}; {SKIPPED}")
                continue
            where = f"{path.name}, line {reader.line_num}"
            if not _is_text(fields):
                problems.append(f"{where}: not UTF-8 text; {SKIPPED}")
            elif any(fields[len(header) :]):
                problems.append(
                    f"{where}: {len(fields)} fields, the header names {len(header)}; {SKIPPED}"
                )
            elif fields:  # (a blank line: no row)
                yield reader.line_num, dict(zip(header, fields, strict=False))


def _is_text(values: Iterable[str]) -> bool:
    """False if a value holds bytes that were not UTF-8 (read as lone surrogates)."""
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _jsonl_rows(path: Path, problems: list[str]) -> Iterator[tuple[int, Row]]:
    """The objects of a JSON Lines file, each with its line number; a line that is not UTF-8
    text, not JSON or not an object is a problem naming it, and the rest are read."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            where = f"{path.name}, line {number}"
            if not line.strip():
                continue
            if not _is_text([line]):
                problems.append(f"{where}: not UTF-8 text; {SKIPPED}")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error.msg})")
                continue
            if not isinstance(row, dict):
                problems.append(f"{where}: not a JSON object; {SKIPPED}")
                continue
            yield number, row


def _validation_folder(folder: Path) -> Path:
    """`folder`, or the validation images of the ImageNet tree in it: Kaggle's download holds
    `ILSVRC/Data/CLS-LOC/val/` at its root, the official tree `Data/CLS-LOC/val/`."""
    for tree in (folder / "ILSVRC", folder):
        if (tree / KAGGLE_VAL).is_dir():
            return tree / KAGGLE_VAL
    return folder


def _tree(folder: Path) -> Path | None:
    """The ImageNet tree (the folder holding `Data/`) of a folder …/Data/CLS-LOC/val; None for
    any other folder. Made absolute (symbolic links kept: a linked val folder is read where it
    is linked), so that "." inside the val folder is found too."""
    data = Path(os.path.abspath(folder)).parent.parent
    return data.parent if data.name == "Data" else None


def _solution_file(folder: Path) -> Path | None:
    """`LOC_val_solution.csv` for a flat folder of validation images: in it, beside it, or at
    the root of Kaggle's download (beside `ILSVRC/`, for `ILSVRC/Data/CLS-LOC/val/`)."""
    candidates = [folder / LOC_SOLUTION, folder.parent / LOC_SOLUTION]
    tree = _tree(folder)
    if tree is not None:
        candidates.append(tree.parent / LOC_SOLUTION)
    return next((p for p in candidates if p.is_file()), None)


def _annotations_folder(folder: Path) -> Path | None:
    """Where the official XML annotations of a flat folder of validation images are: beside
    them, or in the official tree (…/Annotations/CLS-LOC/val for …/Data/CLS-LOC/val)."""
    candidates = [folder]
    tree = _tree(folder)
    if tree is not None:
        val = Path(os.path.abspath(folder))
        candidates.append(tree / "Annotations" / val.parent.name / val.name)
    for candidate in candidates:
        if candidate.is_dir() and next(candidate.glob("*_val_*.xml"), None) is not None:
            return candidate
    return None


def _xml_truth(folder: Path) -> tuple[Truth, list[str]]:
    """The official annotations: per image an XML file with, per object, its synset (`name`)
    and box (`bndbox`: xmin, ymin, xmax, ymax)."""
    import xml.etree.ElementTree as ET

    truth: Truth = {}
    problems = []
    for path in sorted(folder.glob("*.xml")):
        try:
            objects = ET.parse(path).getroot().findall("object")
            names = [o.findtext("name", "") for o in objects]
            label = label_of(names[0]) if names else None
            boxes = tuple(
                tuple(float(o.findtext(f"bndbox/{k}", "")) for k in BOX_TAGS) for o in objects
            )
        except (ET.ParseError, ValueError) as error:
            problems.append(f"{path.name}: {error}; its image is studied without a label")
            label, boxes = None, ()
        truth[path.stem] = (label, boxes)
    return truth, problems


def _imagenet_val(folder: Path, read: tuple[Truth, list[str]], where: str) -> Source:
    """A flat folder of validation images and their ground truth (`where` names it)."""
    source = Source("imagenet-val", folder)
    truth, source.problems = read
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in images:
        if path.stem not in truth:
            source.problems.append(f"{path.name}: not in {where}; studied without a label")
    _add_images(source, images, folder, lambda p: truth.get(p.stem, (None, ()))[0], truth)
    return source


def _from_list(path: Path) -> Source:
    source = Source("list", path.parent)
    read = _csv_rows if path.suffix.lower() == ".csv" else _jsonl_rows
    rows = list(read(path, source.problems))
    seen: dict[Path, str] = {}
    for number, row in rows:
        where = f"{path.name}, line {number}"
        name = str(row.get("path") or "").strip()
        if not name:
            source.problems.append(f"{where}: no path")
            continue
        image = (path.parent / name).resolve() if not Path(name).is_absolute() else Path(name)
        if not image.is_file():
            source.problems.append(f"{where}: {name} does not exist")
            continue
        if image in seen:
            source.problems.append(f"{where}: {name} is listed twice (first as {seen[image]})")
            continue
        seen[image] = name
        try:
            label = label_of(row.get("label"))
        except ValueError as error:
            source.problems.append(f"{where}: {error}; {name} is studied without a label")
            label = None
        try:
            boxes = _boxes(row.get("box"))
        except ValueError:
            source.problems.append(f"{where}: box {row.get('box')!r} is not x0 y0 x1 y1")
            boxes = ()
        source.items.append(Item(name, image, label, boxes))
    return source


def _boxes(value: object) -> tuple[Box, ...]:
    """ "x0 y0 x1 y1" (several boxes separated by ";"), or a list of 4 numbers or of such lists."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        groups = [g.replace(",", " ").split() for g in value.split(";") if g.strip()]
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        groups = [list(g) for g in value]
    else:
        groups = [list(value)] if isinstance(value, (list, tuple)) else [[value]]
    boxes = []
    for group in groups:
        try:
            numbers = tuple(float(v) for v in group)
        except TypeError:  # JSON that is not numbers: an object, null
            raise ValueError(value) from None
        if len(numbers) != 4 or numbers[2] <= numbers[0] or numbers[3] <= numbers[1]:
            raise ValueError(value)
        boxes.append(numbers)
    return tuple(boxes)


def _add_images(
    source: Source,
    images: Iterable[Path],
    root: Path,
    label: Callable[[Path], int | None],
    truth: dict[str, tuple[int | None, tuple[Box, ...]]] | None = None,
) -> None:
    for path in images:
        key = path.relative_to(root).as_posix()
        boxes = truth.get(path.stem, (None, ()))[1] if truth else ()
        source.items.append(Item(key, path, label(path), boxes))
