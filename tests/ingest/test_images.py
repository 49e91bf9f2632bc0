from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import caltech_image
from viscover.errors import BadCropError, BadImageError
from viscover.ingest import CropBox, decode_image, load_image


def png_bytes(size: tuple[int, int] = (64, 48), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128 if mode != "1" else 0).save(buffer, format=fmt)
    return buffer.getvalue()


def test_real_jpeg_decodes_with_hash_and_size() -> None:
    decoded = load_image(str(caltech_image("accordion", 1)))
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == decoded.image.size
    assert len(decoded.sha256) == 64


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"this is plain text, not pixels", "not an image"),
        (caltech_image("accordion", 1).read_bytes()[:3000], "corrupt or truncated"),
        (png_bytes(fmt="PPM"), "unsupported image format"),
    ],
)
def test_bad_bytes_name_the_file_and_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(BadImageError, match=reason) as info:
        load_image(str(path))
    assert "bad.jpg" in str(info.value)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png_bytes((12_000, 12_000), mode="1")  # 144 Mpx in a few KB
    with pytest.raises(BadImageError, match="decompression bomb"):
        decode_image(bomb, "bomb.png")


def test_missing_file() -> None:
    with pytest.raises(BadImageError, match="no such file"):
        load_image("/nonexistent/cat.jpg")


def test_crop_box_parse_and_apply() -> None:
    image = Image.new("RGB", (100, 80))
    assert CropBox.parse("10,20,30,40").apply(image).size == (30, 40)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1,2,3", "four integers"),
        ("a,b,c,d", "four integers"),
        ("0,0,0,10", "positive"),
        ("-5,0,10,10", "negative"),
        ("90,0,20,10", "outside"),
    ],
)
def test_bad_crop_boxes(text: str, reason: str) -> None:
    with pytest.raises(BadCropError, match=reason):
        CropBox.parse(text).apply(Image.new("RGB", (100, 80)))
