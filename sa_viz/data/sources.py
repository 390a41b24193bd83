"""The images of a study and what is known about each: where a dataset's labels and boxes are.

`read_source(path)` recognises four layouts and lists their images as `Item`s, labels mapped onto
the 1000 ImageNet classes:

- a list: a `.csv` (columns `path`, optional `label`, optional `box` as "x0 y0 x1 y1") or a
  `.jsonl` file (one object per line with the same keys); relative paths are read from the
  list's folder;
- the ImageNet validation layout: a flat folder of images with its ground truth, either
  `LOC_val_solution.csv` (the Kaggle localisation file: each image's synset and boxes) in it or
  beside it, or the official per-image XML annotations (`ILSVRC2012_val_00000001.xml`: the
  synset and box of each object) beside the images or in the official tree
  (`Annotations/CLS-LOC/val/` for `Data/CLS-LOC/val/`);
- an ImageFolder: one sub-folder per class, named by WordNet id (`n01440764`), class index
  (`0`–`999`) or class name (`tench`, `hot dog`: `sa_viz.data.imagenet.class_index`);
- any other folder: every image in it, recursively, without labels.

What cannot be used (an unknown label, a listed file that does not exist, the same file twice) is
reported by name in `Source.problems`, never dropped silently; the study goes on with the rest.
Files are not opened here: an unreadable image is reported when the study decodes it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from sa_viz.data.imagenet import NUM_CLASSES, class_index

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jpe"}
LOC_SOLUTION = "LOC_val_solution.csv"
WNID = re.compile(r"^n\d{8}$")

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the original image's pixels


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
    """The images at `path` and their labels (see the module's docstring for the layouts)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
        return _from_list(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a folder of images nor a .csv/.jsonl list")
    solution = next(
        (p for p in (path / LOC_SOLUTION, path.parent / LOC_SOLUTION) if p.is_file()), None
    )
    if solution is not None:
        return _imagenet_val(path, _solution_truth(solution), solution.name)
    annotations = _annotations_folder(path)
    if annotations is not None:
        return _imagenet_val(path, _xml_truth(annotations), f"{annotations.name}/*.xml")
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
    …" (one synset and box per object)."""
    truth: Truth = {}
    problems = []
    with solution.open(newline="") as f:
        for row in csv.DictReader(f):
            image, parts = row.get("ImageId", ""), (row.get("PredictionString") or "").split()
            objects = [parts[i : i + 5] for i in range(0, len(parts) - 4, 5)]
            try:
                label = label_of(objects[0][0]) if objects else None
                boxes = tuple(tuple(float(v) for v in o[1:5]) for o in objects)
            except ValueError as error:
                problems.append(f"{solution.name}, {image}: {error}")
                label, boxes = None, ()
            truth[image] = (label, boxes)
    return truth, problems


def _annotations_folder(folder: Path) -> Path | None:
    """Where the official XML annotations of a flat folder of validation images are: beside
    them, or in the official tree (…/Annotations/CLS-LOC/val for …/Data/CLS-LOC/val)."""
    candidates = [folder]
    data = folder.parent.parent  # …/Data/CLS-LOC/val
    if data.name == "Data":
        candidates.append(data.parent / "Annotations" / folder.parent.name / folder.name)
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
    rows: Iterable[tuple[int, dict]]
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            rows = list(enumerate(csv.DictReader(f), start=2))  # line 1: the header
    else:
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                source.problems.append(f"{path.name}, line {number}: not JSON ({error.msg})")
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
        numbers = tuple(float(v) for v in group)
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
