"""Hostile and unusual image files, made here, each with what SA-Viz must do with it.

Every file goes through the page's upload (test_browser), the API (test_hostile, also as a
`data:` URL) and the CLI (test_hostile). `expected` is either None (explained, under the policy
in sa_viz/preprocess.py) or a regular expression the error message must match. `damaged_zip`
makes an upload for the Study tab (test_study_tab, test_hardening_study).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RNG_SEED = 7


@dataclass(frozen=True)
class Hostile:
    name: str  # file name, with the extension a user's file would have
    data: bytes
    expected: str | None  # None: a result; otherwise a pattern of the message
    note: str = ""  # for an accepted file: what the result's notes must mention


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 320, height: int = 240, seed: int = RNG_SEED) -> Image.Image:
    """A smooth colourful picture (JPEG-friendly), different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    phase = rng.uniform(0, 6, 3)
    rgb = [127 + 120 * np.sin(6 * x + 4 * y + p) for p in phase]
    return Image.fromarray(np.uint8(np.stack(rgb, -1)))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of width × height zero pixels: well under 1 MB on disk."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def heic_like() -> bytes:
    """The start of an iPhone HEIC file: an ISO-BMFF `ftyp` box with the `heic` brand and a
    `meta` box (Pillow can't decode HEIC, so the payload is not needed to test the refusal)."""
    ftyp = b"ftyp" + b"heic" + struct.pack(">I", 0) + b"mif1heic"
    meta = b"meta" + b"\x00" * 64
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + struct.pack(">I", 4 + len(meta)) + meta


def animated(fmt: str) -> bytes:
    frames = [photo(160, 120, seed) for seed in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    return encode(photo(320, 240), "JPEG", exif=exif.tobytes())


def catalogue() -> list[Hostile]:
    base = photo()
    jpeg = encode(base, "JPEG", quality=90)
    rgba = np.zeros((240, 320, 4), np.uint8)
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.uint16(np.linspace(0, 65535, 240 * 320).reshape(240, 320)))
    too_small = "only 1×1 pixels.*at least 16"
    return [
        Hostile("empty.jpg", b"", r"empty \(0 bytes\)"),
        Hostile("text.jpg", b"This is not a JPEG, it is a note.\n" * 20, "looks like text"),
        Hostile("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated or corrupted"),
        Hostile("one-pixel.png", encode(Image.new("RGB", (1, 1), "red"), "PNG"), too_small),
        Hostile("bomb.png", png_bomb(20_000, 20_000), "400 megapixels; the limit is 50"),
        Hostile("huge.png", png_bomb(10_000, 10_000), "100 megapixels; the limit is 50"),
        Hostile(
            "huge.jpg",
            encode(Image.new("RGB", (10_000, 10_000), (30, 90, 160)), "JPEG", quality=50),
            None,
            "decoded at 1/2 scale",
        ),
        Hostile("sixteen-bit.png", encode(sixteen, "PNG"), None, "16-bit"),
        Hostile("cmyk.jpg", encode(base.convert("CMYK"), "JPEG"), None, "CMYK"),
        Hostile("palette-transparent.png", encode(palette, "PNG"), None),
        Hostile("la.png", encode(base.convert("LA"), "PNG"), None),
        Hostile("transparent.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"), None),
        Hostile("bilevel.png", encode(base.convert("1"), "PNG"), None),
        Hostile("animated.gif", animated("GIF"), None, "first frame"),
        Hostile("animated.webp", animated("WEBP"), None, "first frame"),
        Hostile("exif-rotated.jpg", exif_rotated(), None, "EXIF orientation 6"),
        Hostile("grayscale.jpg", encode(base.convert("L"), "JPEG"), None),
        Hostile(
            "panorama.png",
            encode(photo(4000, 40), "PNG"),
            r"aspect ratio of 100:1.*centre-crop mode",
        ),
        Hostile(
            "drawing.svg",
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" '
            b'height="64"><script>alert(1)</script><rect width="64" height="64"/></svg>',
            "SVG is a vector format",
        ),
        Hostile("photo.heic", heic_like(), "HEIC/HEIF"),
        # Pillow would hand EPS to Ghostscript; only photo formats are ever decoded
        Hostile("drawing.eps", encode(base, "EPS"), "not an image SA-Viz can read"),
    ]


def damaged_zip(honest_mb: int) -> bytes:
    """Two honest members of `honest_mb` MB each (zeros: the ZIP stays small), then a third
    whose directory entry understates its size: refused only once the first two are out."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("a.png", "b.png"):
            archive.writestr(name, b"\0" * (honest_mb << 20))
        archive.writestr("c.png", b"\0" * 1_000_000)
    data = bytearray(buffer.getvalue())
    central = data.rindex(b"PK\x01\x02")  # the last entry's directory record: its size lies
    data[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    return bytes(data)


def write_all(folder: Path) -> dict[str, Hostile]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for item in catalogue():
        (folder / item.name).write_bytes(item.data)
        files[str(folder / item.name)] = item
    return files
