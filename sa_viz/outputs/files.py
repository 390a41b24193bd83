"""Every file that leaves SA-Viz is written here: PNG, JPEG, SVG, JSON, NPZ, ZIP, Parquet and
HTML, each whole or not at all (a temporary name beside the file, then a rename).

The other modules build what to write (pictures, figures, documents, tables) and pass it here,
so encodings and the all-or-nothing write live in one place.
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

if TYPE_CHECKING:  # neither imported here: the app makes this module's first file before
    # matplotlib or pyarrow is loaded (matplotlib may make a cache folder as it loads)
    import pyarrow as pa
    from matplotlib.figure import Figure

FIGURE_DPI = 110  # matplotlib figures (the CLI's and the study report's)
JPEG_QUALITY = 92  # photo-like pictures on the page: 20 ms for 1.4 MP, where PNG takes 160–500 ms
# Charts on the page: flat colours compress well at zlib's fastest level without PNG's row
# filters, which cost more time than they save bytes here (measured: 3 ms instead of 8 ms for
# the gate summary, 27 KB instead of 22 KB).
FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def png_bytes(picture: np.ndarray | Figure, dpi: int = FIGURE_DPI) -> bytes:
    """An RGB picture (H, W, 3) uint8, or a matplotlib figure at `dpi`, as PNG."""
    buffer = io.BytesIO()
    if isinstance(picture, np.ndarray):
        Image.fromarray(picture).save(buffer, "PNG")
    else:
        picture.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def page_picture_bytes(picture: np.ndarray, *, lossless: bool = False) -> tuple[bytes, str]:
    """An RGB picture for the page, fast: JPEG (PNG at zlib's fastest level if `lossless`);
    returns the bytes and the file suffix."""
    bgr = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    if lossless:
        ok, data = cv2.imencode(".png", bgr, FAST_PNG)
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("could not encode a picture")
    return data.tobytes(), ".png" if lossless else ".jpg"


def json_text(document: Any) -> str:
    """A JSON document as SA-Viz writes every one: indented, one final newline."""
    return json.dumps(document, indent=2) + "\n"


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Named arrays as a compressed NumPy archive (`np.load` reads it)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@contextmanager
def _whole(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block ends
    without an error, removed otherwise (a reader never sees half a file)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with _whole(path) as partial:
        partial.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Text in UTF-8 (not the locale's encoding: pages and captions hold "–", "≠", "✓")."""
    return write_bytes(path, text.encode("utf-8"))


def write_html(path: str | Path, page: str) -> Path:
    return write_text(path, page)


def write_png(path: str | Path, picture: np.ndarray | Figure) -> Path:
    return write_bytes(path, png_bytes(picture))


def write_svg(path: str | Path, figure: Figure) -> Path:
    """A matplotlib figure as SVG, without the date matplotlib would write into it (the same
    figure, the same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return write_bytes(path, buffer.getvalue())


def write_json(path: str | Path, document: Any) -> Path:
    return write_text(path, json_text(document))


def write_zip(path: str | Path, members: Mapping[str, bytes | str]) -> Path:
    """A deflated ZIP of `members` (name → contents; text in UTF-8), in their order."""
    with _whole(path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return Path(path)


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    import pyarrow.parquet as pq

    with _whole(path) as partial:
        pq.write_table(table, partial)
    return Path(path)
