"""Images in the wild → bounded, normalised model input aligned with the display image."""

from __future__ import annotations

import base64
import io
import time
import tracemalloc

import numpy as np
import pytest
import torch
from conftest import ASSETS
from hostile import png_bomb
from PIL import Image
from torchvision.models import ResNet50_Weights

from sa_viz.data.imagenet import MEAN, STD, labels
from sa_viz.data.preprocess import ImageError, Limits, load_image, prepare_image, whole_image_size

RNG = np.random.default_rng(0)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int = 400, height: int = 300) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(30_000, 30_000)  # 900 megapixels


def unnormalise(tensor: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    return (tensor[0] * std + mean).permute(1, 2, 0).numpy() * 255


def test_tensor_and_display_are_the_same_pixels():
    prepared = prepare_image(ASSETS / "chelsea.jpg")
    assert prepared.tensor.shape == (1, 3, 224, 337)
    assert prepared.display.shape == (224, 337, 3) and prepared.display.dtype == np.uint8
    np.testing.assert_allclose(unnormalise(prepared.tensor), prepared.display, atol=1e-3)


def test_whole_image_mode_keeps_everything():
    assert whole_image_size(451, 300) == (337, 224)
    assert whole_image_size(300, 451) == (224, 337)
    assert whole_image_size(2000, 400) == (896, 179)  # 5:1: the longer side is capped at 896
    assert whole_image_size(100, 100) == (224, 224)  # small images are scaled up


def test_a_panorama_says_its_shorter_side_is_not_224():
    wide = prepare_image(np.full((100, 900, 3), 128, np.uint8))
    assert wide.size == (100, 896)
    assert any("shorter side 100 px, not 224" in note for note in wide.notes)
    assert not prepare_image(np.full((300, 451, 3), 128, np.uint8)).notes


def test_crop_mode_is_the_evaluation_protocol():
    image = Image.open(ASSETS / "coffee.jpg")
    expected = ResNet50_Weights.IMAGENET1K_V1.transforms()(image).unsqueeze(0)
    prepared = prepare_image(ASSETS / "coffee.jpg", crop=True)
    assert prepared.size == (224, 224)
    torch.testing.assert_close(prepared.tensor, expected, atol=2e-5, rtol=0)


def test_every_source_type_gives_the_same_input():
    path = ASSETS / "astronaut.jpg"
    data = path.read_bytes()
    pil = Image.open(path)
    array = np.asarray(pil.convert("RGB"))
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    reference = prepare_image(path).tensor
    for source in (str(path), data, bytearray(data), pil, array, url):
        torch.testing.assert_close(prepare_image(source).tensor, reference)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (400, 200), "white")
    image.paste((255, 0, 0), (0, 0, 100, 200))  # red band on the left as stored
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    prepared = prepare_image(encode(image, "JPEG", exif=exif, quality=95))
    h, w = prepared.size
    assert h > w  # upright: portrait
    top = prepared.display[: h // 8].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[1] < 80  # the band is now at the top
    assert any("EXIF orientation 6" in note for note in prepared.notes)


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    rgb, notes = load_image(encode(Image.fromarray(ramp)))
    values = np.asarray(rgb)[0, :, 0]
    assert values[0] == 0 and values[-1] == 255
    assert 120 <= values[128] <= 135  # mid-grey stays mid-grey (clipping would give 255)
    assert "16-bit" in notes[0]


@pytest.mark.parametrize(
    ("name", "make", "expected_rgb", "note"),
    [
        (
            "RGBA",
            lambda: Image.new("RGBA", (64, 64), (255, 0, 0, 0)),
            (255, 255, 255),
            "transparent",
        ),
        ("LA", lambda: Image.new("LA", (64, 64), (0, 128)), (127, 127, 127), "transparency"),
        ("P+transparency", None, (255, 255, 255), "transparent"),
        ("1", lambda: Image.new("1", (64, 64), 1), (255, 255, 255), None),
        ("L", lambda: Image.new("L", (64, 64), 77), (77, 77, 77), None),
        ("CMYK", lambda: Image.new("CMYK", (64, 64), (0, 255, 255, 0)), (255, 0, 0), "CMYK"),
    ],
)
def test_modes_become_rgb(name, make, expected_rgb, note):
    if make is None:
        image = Image.new("P", (64, 64), 0)
        image.putpalette([0, 0, 0] * 256)
        data = encode(image, transparency=0)
    else:
        image = make()
        data = encode(image, "JPEG" if name == "CMYK" else "PNG")
    rgb, notes = load_image(data)
    assert rgb.mode == "RGB"
    np.testing.assert_allclose(np.asarray(rgb)[32, 32], expected_rgb, atol=3)
    if note:
        assert any(note in n for n in notes)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_use_the_first_frame(fmt):
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    rgb, notes = load_image(data)
    assert np.asarray(rgb)[10, 10].tolist() == [255, 0, 0]
    assert "its first frame is shown" in notes[0]


def test_a_decompression_bomb_is_refused_cheaply(bomb):
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ImageError, match="900 megapixels; the limit is 50"):
        prepare_image(bomb)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 50e6  # decoding would take ~900 MB


def test_a_large_png_is_refused_before_decoding():
    data = png_bomb(10_000, 10_000)
    with pytest.raises(ImageError, match="10000×10000 = 100 megapixels; the limit is 50"):
        load_image(data)


def test_a_large_jpeg_is_decoded_at_reduced_scale():
    data = encode(Image.new("RGB", (10_000, 6_000), "navy"), "JPEG")
    rgb, notes = load_image(data)
    assert rgb.size == (5_000, 3_000) and "1/2 scale" in notes[0]


@pytest.mark.parametrize("orientation", [1, 6])  # 6: stored turned a quarter
def test_a_box_on_a_jpeg_decoded_at_reduced_scale_is_in_the_files_pixels(orientation):
    from sa_viz.data.preprocess import boxes_in_input, point_in_input, point_in_source

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.new("RGB", (1_600, 1_200), "navy"), "JPEG", exif=exif.tobytes())
    small = Limits(max_pixels=200_000)  # decoded at 1/4 scale
    prepared = prepare_image(data, limits=small)
    upright = (1_600, 1_200) if orientation == 1 else (1_200, 1_600)
    assert "1/4 scale" in prepared.notes[0]
    assert prepared.original_size == (upright[0] // 4, upright[1] // 4)
    assert prepared.source_size == upright  # before: the reduced size, boxes 4 × too large
    height, width = prepared.size
    half = (0, 0, upright[0] / 2, upright[1] / 2)  # the upper-left quarter of the photo
    ((x0, y0, x1, y1),) = boxes_in_input([half], prepared)
    assert (x0, y0, x1, y1) == pytest.approx((0, 0, width / 2, height / 2))
    assert prepare_image(ASSETS / "chelsea.jpg").file_size is None  # decoded whole
    for crop in (False, True):  # a click on the input is a point of the photo, and back
        prepared = prepare_image(data, limits=small, crop=crop)
        for point in ((0.0, 0.0), (37.5, 101.25), (upright[0] / 2, upright[1] / 3)):
            there = point_in_input(*point, prepared)
            assert point_in_source(*there, prepared) == pytest.approx(point)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not a picture\n" * 20, "looks like text"),
        (b"\x00\x01\x02\x03" * 200, "not a known image format"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC"),
        (b"%PDF-1.7\n" + bytes(100), "PDF"),
    ],
    ids=["empty", "text", "binary", "svg", "heic", "pdf"],
)
def test_unreadable_files_get_a_clear_message(data, message):
    with pytest.raises(ImageError, match=message):
        prepare_image(data)


def test_truncated_jpeg():
    data = encode(photo(), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupted"):
        prepare_image(data[: len(data) // 3])


def test_size_policies():
    with pytest.raises(ImageError, match="only 1×1 pixels"):
        prepare_image(encode(Image.new("RGB", (1, 1))))
    panorama = encode(Image.new("RGB", (10_000, 100), "gray"))
    with pytest.raises(ImageError, match=r"100:1.*centre-crop"):
        prepare_image(panorama)
    assert prepare_image(panorama, crop=True).size == (224, 224)
    assert prepare_image(encode(Image.new("RGB", (16, 16)))).size == (224, 224)


def test_limits_are_configurable(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(encode(photo(400, 300)))
    with pytest.raises(ImageError, match="limit is 0 MB"):
        prepare_image(path, limits=Limits(max_bytes=1000))
    with pytest.raises(ImageError, match="megapixels"):
        prepare_image(path, limits=Limits(max_pixels=100_000))
    with pytest.raises(ImageError, match="No image file"):
        prepare_image(tmp_path / "missing.png")


def test_arrays():
    gray16 = (RNG.random((50, 60)) * 65535).astype(np.uint16)
    assert prepare_image(gray16).size == (224, 269)
    floats = RNG.random((50, 60, 3))
    np.testing.assert_array_equal(np.asarray(load_image(floats)[0]), np.rint(floats * 255))
    with pytest.raises(ImageError, match="shape"):
        prepare_image(np.zeros((4, 4, 4, 4)))
    with pytest.raises(ImageError, match="NaN"):
        prepare_image(np.full((32, 32), np.nan))


def test_labels_live_in_one_place():
    assert len(labels()) == 1000
    assert labels()[285] == "Egyptian cat"
