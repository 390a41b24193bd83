"""Any image source → the models' input tensor and the display image, pixel for pixel aligned.

Uploads arrive as anything (phone photos, scans, screenshots, animations, hostile files), so every
image is bounded and normalised here, before and while it is decoded:

- bytes: at most `Limits.max_bytes`; pixels: the header's size is checked before decoding, so a
  decompression bomb costs nothing (large JPEGs are decoded at 1/2, 1/4 or 1/8 scale instead);
- EXIF orientation applied; alpha composited on white; palette, bilevel, grayscale, CMYK and
  16-bit images converted to 8-bit RGB (16-bit scaled, not clipped); animations: the first frame;
- at least `Limits.min_side` pixels on each side; in the default "whole image" mode at most
  `Limits.max_aspect`:1 (beyond that a CNN sees too little of the short side);
- whole-image mode (default): shorter side to 224, aspect kept, longer side at most 896, so the
  CAM covers everything that was uploaded; centre-crop mode: the evaluation protocol (shorter side
  256, central 224×224).

Each model takes its own input (`Preprocessing`: interpolation, mean and std, and in centre-crop
mode its resize and crop): `prepare_image(..., preprocessing=[...])` resamples the upright image
once per distinct transform, and `PreparedImage.input_for(p)` is the tensor for `p`. In the
whole-image mode every view covers the display's pixels. In centre-crop mode each model takes
its own crop exactly; models evaluated with different crop fractions see different parts of the
image, so the display is the widest crop and `PreparedImage.region_of(p)` is the box of the
display that model `p` saw (`sa_viz.data.regions`: `place` puts a map over a model's input onto
the display, NaN where that model saw nothing; `take` reads a display map back on its grid).

Problems raise `ImageError` with a sentence that says what is wrong and what to do.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from sa_viz.data.imagenet import INPUT_SIZE, MEAN, STD
from sa_viz.data.regions import Region, crop_region, resized_size, widest
from sa_viz.data.transforms import IMAGENET, Preprocessing
from sa_viz.errors import stage

ImageSource = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray

SUPPORTED = "JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF"
# Only these decoders ever see an upload: Pillow's other ~40 formats are rarely photos and widen
# the attack surface (its EPS plugin, for one, runs Ghostscript on the file).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
MAX_SIDE_FACTOR = 4  # whole-image mode: longer side at most 4 × 224 = 896
_PIL = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}
_TV = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class ImageError(ValueError):
    """The image can't be used; the message says why and what to do, in words for a person."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what an image may cost. Change them with `Limits(...)`; the app exposes flags."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 16
    max_aspect: float = 10.0


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class PreparedImage:
    """What the models see. `tensor` (1, 3, H, W) is `display` (H, W, 3) uint8 RGB, normalised."""

    tensor: torch.Tensor
    display: np.ndarray
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    crop: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    # (width, height) of the upright file before a reduced decoding (a large JPEG decoded at
    # 1/2, 1/4 or 1/8 scale); None: decoded whole, the same as `original_size`.
    file_size: tuple[int, int] | None = None
    # Each model's pixels (uint8, covering the display exactly), by `view_key`: one per
    # distinct resampling; `display` is the view of `protocol`.
    views: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    protocol: Preprocessing = IMAGENET
    # Centre-crop mode: the box (x0, y0, x1, y1), in the display's pixels, that a view with a
    # narrower crop than the display's covers, by `view_key`; a view not here covers it all.
    regions: dict[tuple, Region] = field(default_factory=dict, compare=False)

    def input_for(self, preprocessing: Preprocessing) -> torch.Tensor:
        """(1, 3, h, w): the model input for `preprocessing`, normalised with its mean and std."""
        return to_tensor(self.view_for(preprocessing), preprocessing.mean, preprocessing.std)

    def region_of(self, preprocessing: Preprocessing) -> Region | None:
        """The box (x0, y0, x1, y1) of the display, in its pixels, that the model taking
        `preprocessing` saw; None: all of it."""
        return self.regions.get(view_key(preprocessing, self.crop))

    def view_for(self, preprocessing: Preprocessing) -> np.ndarray:
        """(h, w, 3) uint8: the pixels the model taking `preprocessing` saw."""
        key = view_key(preprocessing, self.crop)
        pixels = self.display if key == view_key(self.protocol, self.crop) else self.views.get(key)
        if pixels is None:
            raise ValueError(
                f"this image was prepared without {preprocessing.describe()}: pass that "
                "preprocessing to prepare_image(..., preprocessing=[...])"
            )
        return pixels

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the upright image file: the pixels a box on the photo is in."""
        return self.file_size or self.original_size

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model input and of the display image."""
        return self.display.shape[0], self.display.shape[1]


def load_image(
    source: ImageSource, limits: Limits = DEFAULT_LIMITS
) -> tuple[Image.Image, list[str]]:
    """Decode `source` into an 8-bit RGB image, bounded by `limits`; also return notes on what
    was done to it (orientation, alpha, frames, bit depth, reduced decoding)."""
    rgb, notes, _ = _decode(source, limits)
    return rgb, notes


def _decode(
    source: ImageSource, limits: Limits
) -> tuple[Image.Image, list[str], tuple[int, int] | None]:
    """`load_image`, and the upright file's size when it was decoded at a reduced scale."""
    notes: list[str] = []
    stored = None
    if isinstance(source, np.ndarray):
        image = _from_array(source, limits, notes)
    elif isinstance(source, Image.Image):
        _check_pixels(source.size, limits)
        image = source.copy()
    else:
        image, stored = _open(_read_bytes(source, limits), limits, notes)
    turned = stored is not None and _quarter_turned(image)
    upright = _orient(image, notes)
    file_size = None
    if stored is not None and stored != image.size:  # decoded at a reduced scale
        file_size = stored[::-1] if turned and upright is not image else stored
    rgb = _to_rgb(upright, notes)
    _check_shape(rgb.size, limits)
    return rgb, notes, file_size


def view_key(preprocessing: Preprocessing, crop: bool) -> tuple:
    """What a view's pixels depend on: the interpolation, and in centre-crop mode the sizes."""
    if crop:
        return (preprocessing.interpolation, preprocessing.resize, preprocessing.crop)
    return (preprocessing.interpolation,)


def prepare_image(
    source: ImageSource,
    *,
    crop: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    preprocessing: Sequence[Preprocessing] = (),
) -> PreparedImage:
    """Load `source` and make the display image and each model's input from the same pixels.

    `preprocessing`: the models' transforms (default: ImageNet's). In centre-crop mode the
    display is the crop of the widest of them (the first among equal crop fractions), and
    `PreparedImage.regions` says where each narrower one lies in it."""
    with stage("decoding"):
        return _prepare(source, crop, limits, tuple(preprocessing) or (IMAGENET,))


def _prepare(
    source: ImageSource, crop: bool, limits: Limits, preprocessing: tuple[Preprocessing, ...]
) -> PreparedImage:
    rgb, notes, file_size = _decode(source, limits)
    width, height = rgb.size
    protocol = widest(preprocessing) if crop else preprocessing[0]
    if crop:
        resized = _crop_view(rgb, protocol)
    else:
        if width / height > limits.max_aspect or height / width > limits.max_aspect:
            raise ImageError(
                f"The image is {width}×{height} pixels, an aspect ratio of "
                f"{max(width, height) / min(width, height):.0f}:1; the whole-image view accepts "
                f"up to {limits.max_aspect:g}:1. Crop the region you want explained, or switch "
                "to centre-crop mode."
            )
        size = whole_image_size(width, height)
        if min(size) < INPUT_SIZE:
            aspect = max(width, height) / min(width, height)
            notes.append(
                f"shorter side {min(size)} px, not {INPUT_SIZE}: at {aspect:.1f}:1 the longer "
                f"side is capped at {MAX_SIDE_FACTOR * INPUT_SIZE} px (centre crop: 224 × 224)"
            )
        resized = rgb.resize(size, _PIL[protocol.interpolation])
    display = np.asarray(resized, dtype=np.uint8).copy()
    views: dict[tuple, np.ndarray] = {}
    regions: dict[tuple, Region] = {}
    for p in preprocessing:
        key = view_key(p, crop)
        if key == view_key(protocol, crop) or key in views:
            continue
        if not crop:
            views[key] = np.asarray(rgb.resize(resized.size, _PIL[p.interpolation]), np.uint8)
            continue
        views[key] = np.asarray(_crop_view(rgb, p), np.uint8)
        if (region := crop_region(width, height, p, protocol)) is not None:
            regions[key] = region
            notes.append(
                f"a model evaluated with a {p.crop_fraction:.1%} centre crop saw "
                f"{_share(regions[key], display.shape):.0%} of the shown "
                f"{protocol.crop_fraction:.1%} crop (its maps are dark gray outside it)"
            )
    return PreparedImage(
        tensor=to_tensor(display, protocol.mean, protocol.std),
        display=display,
        original_size=(width, height),
        crop=crop,
        notes=tuple(dict.fromkeys(notes)),
        file_size=file_size,
        views=views,
        protocol=protocol,
        regions=regions,
    )


def _share(region: Region, shape: tuple[int, ...]) -> float:
    x0, y0, x1, y1 = region
    return (x1 - x0) * (y1 - y0) / (shape[0] * shape[1])


def _crop_view(rgb: Image.Image, p: Preprocessing) -> Image.Image:
    """torchvision's evaluation transform: the shorter side to `p.resize`, the central crop."""
    resized = TF.resize(rgb, p.resize, interpolation=_TV[p.interpolation])
    return TF.center_crop(resized, [p.crop, p.crop])


def boxes_in_input(
    boxes: Sequence[tuple[float, float, float, float]], prepared: PreparedImage
) -> tuple[tuple[float, float, float, float], ...]:
    """Boxes (x0, y0, x1, y1) in the upright file's pixels (`prepared.source_size`), as the
    model input's pixels: through the reduced decoding, the resize and the centre crop
    (torchvision's arithmetic), clipped to the input; a box left with no area is dropped."""
    sx, sy, left, top = _input_geometry(prepared)
    out_h, out_w = prepared.size
    mapped = []
    for x0, y0, x1, y1 in boxes:
        nx0, nx1 = (min(max(v * sx - left, 0.0), out_w) for v in (x0, x1))
        ny0, ny1 = (min(max(v * sy - top, 0.0), out_h) for v in (y0, y1))
        if nx1 > nx0 and ny1 > ny0:
            mapped.append((nx0, ny0, nx1, ny1))
    return tuple(mapped)


def point_in_source(x: float, y: float, prepared: PreparedImage) -> tuple[float, float]:
    """A point of the model input (a click on it) in the upright file's pixels: the inverse of
    `boxes_in_input`."""
    sx, sy, left, top = _input_geometry(prepared)
    return (x + left) / sx, (y + top) / sy


def point_in_input(x: float, y: float, prepared: PreparedImage) -> tuple[float, float]:
    """A point of the upright file in the model input's pixels (not clipped)."""
    sx, sy, left, top = _input_geometry(prepared)
    return x * sx - left, y * sy - top


def _input_geometry(prepared: PreparedImage) -> tuple[float, float, float, float]:
    """The file's pixels → the model input's: scales (x, y) and the crop's offsets (left, top)."""
    fw, fh = prepared.source_size
    w, h = prepared.original_size
    out_h, out_w = prepared.size
    if prepared.crop:  # shorter side resized (the longer truncated), then the central crop
        p = prepared.protocol
        rw, rh = resized_size(w, h, p.resize)
        left, top = round((rw - p.crop) / 2.0), round((rh - p.crop) / 2.0)
    else:
        rw, rh, left, top = out_w, out_h, 0, 0
    return rw / fw, rh / fh, left, top


def whole_image_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the whole-image model input: shorter side 224, longer side ≤ 896."""
    scale = INPUT_SIZE / min(width, height)
    scale = min(scale, MAX_SIDE_FACTOR * INPUT_SIZE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_tensor(
    rgb: np.ndarray,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (1, 3, H, W) float32, normalised (default: ImageNet's)."""
    # A view may be read-only (a decoded study image shared between workers): the float copy
    # below is new memory either way, so such an array is copied first (torch warns otherwise).
    pixels = rgb if rgb.flags.writeable else rgb.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div_(255)
    return TF.normalize(tensor, list(mean), list(std)).unsqueeze(0)


def _read_bytes(source: str | Path | bytes | bytearray | memoryview, limits: Limits) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and source.startswith("data:"):
        data = _decode_data_url(source, limits)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No image file named {path.name!r} was found.")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageError(_too_many_bytes(size, limits))
        data = path.read_bytes()
    else:
        raise ImageError(f"Can't read an image from a {type(source).__name__}.")
    if not data:
        raise ImageError("The file is empty (0 bytes). Choose an image file.")
    if len(data) > limits.max_bytes:
        raise ImageError(_too_many_bytes(len(data), limits))
    return data


def _decode_data_url(url: str, limits: Limits) -> bytes:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise ImageError("Only base64 data: URLs are accepted (data:image/png;base64,...).")
    if len(payload) > limits.max_bytes * 4 // 3 + 4:
        raise ImageError(_too_many_bytes(len(payload) * 3 // 4, limits))
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as error:
        raise ImageError("The data: URL is not valid base64.") from error


def _too_many_bytes(size: int, limits: Limits) -> str:
    return (
        f"The file is {size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB. "
        "Save it as a JPEG or scale it down."
    )


def _sniff_unsupported(data: bytes) -> str | None:
    head = data[:1024].lstrip()
    if head.startswith(b"<?xml") or b"<svg" in head[:1024].lower():
        return (
            "SVG is a vector format and can't be explained as pixels. "
            "Export it as PNG or JPEG and upload that."
        )
    if data[4:8] == b"ftyp" and data[8:12] in {
        b"heic",
        b"heix",
        b"hevc",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
    }:
        return (
            "HEIC/HEIF photos (the iPhone default) can't be read here. Convert it to JPEG or PNG "
            "(on an iPhone: Settings → Camera → Formats → Most Compatible)."
        )
    if head.startswith(b"%PDF"):
        return "This is a PDF, not an image. Export the page as PNG or JPEG."
    return None


def _open(data: bytes, limits: Limits, notes: list[str]) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (at a reduced scale if it is a JPEG over the pixel limit) and the
    size stored in the file."""
    if (message := _sniff_unsupported(data)) is not None:
        raise ImageError(message)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning is superseded by the explicit pixel limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            stored = image.size
            _check_pixels(image.size, limits, image, notes)
            # is_animated, not n_frames: counting a GIF's frames decodes every one of them.
            if getattr(image, "is_animated", False):
                notes.append("animated image: its first frame is shown")
            image.load()
    except Image.DecompressionBombError as error:
        # Pillow refuses beyond 2 × Image.MAX_IMAGE_PIXELS before our check; its text has the
        # pixel count ("Image size (400000000 pixels) exceeds limit of ...").
        counted = re.search(r"\((\d+) pixels\)", str(error))
        raise ImageError(
            _too_many_pixels_message(None, limits, int(counted[1]) if counted else None)
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(_unidentified_message(data)) from error
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        # Pillow reports truncated and malformed files with any of these; a truncated file is
        # refused rather than half-decoded (ImageFile.LOAD_TRUNCATED_IMAGES stays False).
        raise ImageError(
            "The image file is truncated or corrupted and can't be decoded "
            f"({_first_line(error)}). Re-export or re-download it."
        ) from error
    return image, stored


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__


def _unidentified_message(data: bytes) -> str:
    head = data[:512].decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in head)
    kind = "it looks like text" if printable >= 0.95 * len(head) else "not a known image format"
    return f"This file is not an image SA-Viz can read ({kind}). Upload a {SUPPORTED} file."


def _too_many_pixels_message(
    size: tuple[int, int] | None, limits: Limits, pixels: int | None = None
) -> str:
    if size:
        described = f"{size[0]}×{size[1]} = {size[0] * size[1] / 1e6:.0f} megapixels"
    elif pixels:
        described = f"{pixels / 1e6:.0f} megapixels"
    else:
        described = "hundreds of megapixels"
    return (
        f"The image is {described}; the limit is {limits.max_pixels / 1e6:.0f} megapixels. "
        "Scale it down (a few megapixels is plenty: the models see 224 pixels on the short side)."
    )


def _check_pixels(
    size: tuple[int, int],
    limits: Limits,
    image: Image.Image | None = None,
    notes: list[str] | None = None,
) -> None:
    """Refuse before decoding; a JPEG may instead be decoded at 1/2, 1/4 or 1/8 scale."""
    width, height = size
    pixels = width * height
    if pixels <= limits.max_pixels:
        return
    if image is not None and image.format == "JPEG":
        reduction = 2 ** math.ceil(math.log2(math.sqrt(pixels / limits.max_pixels)))
        if reduction <= 8:
            image.draft("RGB", (math.ceil(width / reduction), math.ceil(height / reduction)))
            if image.size[0] * image.size[1] <= limits.max_pixels:
                if notes is not None:
                    notes.append(f"large JPEG ({width}×{height}) decoded at 1/{reduction} scale")
                return
    raise ImageError(_too_many_pixels_message(size, limits))


def _check_shape(size: tuple[int, int], limits: Limits) -> None:
    width, height = size
    if min(width, height) < limits.min_side:
        raise ImageError(
            f"The image is only {width}×{height} pixels; SA-Viz needs at least "
            f"{limits.min_side} pixels on each side (the models were trained at 224). "
            "Upload a larger image."
        )


def _quarter_turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the image a quarter (its width becomes its height)."""
    try:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # unreadable EXIF: `_orient` leaves the image as stored
        return False


def _orient(image: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block must not cost the user the image
        notes.append("EXIF data unreadable; orientation left as stored")
        return image
    if orientation in (None, 1):
        return image
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:
        notes.append("EXIF orientation unreadable; left as stored")
        return image
    notes.append(f"rotated upright from EXIF orientation {orientation}")
    return oriented


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_rgb(image, notes)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return image.convert("RGB")
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            notes.append(
                "fully transparent: shown as white"
                if alpha.max() == 0
                else "transparency composited on white"
            )
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit and 32-bit images scaled into 0..255 (Pillow's own conversion clips at 255)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or (
        image.mode == "I" and values.min() >= 0 and values.max() <= 65535
    ):
        scaled = values / 257.0
        notes.append("16-bit image scaled to 8 bits")
    else:
        low, high = float(values.min()), float(values.max())
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        notes.append(f"{image.mode}-mode image rescaled from [{low:g}, {high:g}] to 8 bits")
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def _from_array(array: np.ndarray, limits: Limits, notes: list[str]) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}."
        )
    _check_pixels((array.shape[1], array.shape[0]), limits)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
        notes.append("16-bit array scaled to 8 bits")
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("The image array contains NaN or infinite values.")
        top = 1.0 if array.max() <= 1.0 else 255.0
        array = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))
