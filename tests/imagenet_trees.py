"""ImageNet's folder layouts in small, made in a test's folder: the official XML annotations and
the Kaggle localisation download (what `sa_viz.data.sources` must find from its root)."""

from __future__ import annotations

from pathlib import Path


def annotation(synset: str, *boxes: tuple[float, ...]) -> str:
    """An official per-image XML annotation: one object of `synset` per box."""
    objects = "".join(
        f"<object><name>{synset}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    return f"<annotation><folder>val</folder>{objects}</annotation>"


def tiny_jpeg(path: Path, shade: int = 128) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (shade, 64, 32)).save(path, "JPEG")  # min_side is 16


KAGGLE_VAL = ("ILSVRC", "Data", "CLS-LOC", "val")


def kaggle_download(root: Path, images: int = 3) -> Path:
    """The Kaggle ImageNet localisation download, in small: the solution file and the synset
    mapping at the root, the validation images (and their XML), and a training class folder."""
    val = root.joinpath(*KAGGLE_VAL)
    for i in range(1, images + 1):
        tiny_jpeg(val / f"ILSVRC2012_val_{i:08d}.JPEG", shade=40 * i)
    notes = root / "ILSVRC" / "Annotations" / "CLS-LOC" / "val"
    notes.mkdir(parents=True)
    # The XML says goldfish: a label from it would show that the csv was not the one read.
    (notes / "ILSVRC2012_val_00000001.xml").write_text(annotation("n01443537", (1, 1, 2, 2)))
    tiny_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "train" / "n01440764" / "a.JPEG")
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\n")
    (root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n02123045 10 20 200 210 n02123045 5 5 50 50 \n"
        "ILSVRC2012_val_00000002,n07920052 0 0 100 100 \n"
        "ILSVRC2012_val_00000003,n01440764 1 2 3 4 \n"
    )
    return val
