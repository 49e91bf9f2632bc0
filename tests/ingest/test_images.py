from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import caltech_image
from viscover import Box
from viscover.errors import BadImageError
from viscover.ingest import decode_for_model, decode_image, load_image


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


def test_model_decoding_is_one_function_for_images_and_crops(tmp_path: Path) -> None:
    """A large JPEG decodes at reduced size (draft) with its shorter side still at least the model's input,
    and a crop of it is taken from pixels at least that fine, in original-pixel coordinates."""
    large = Image.open(caltech_image("Leopards", 1)).convert("RGB").resize((1600, 1200))
    buffer = io.BytesIO()
    large.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    whole = decode_for_model(data, "large.jpg", 256)
    assert whole.size == (400, 300)  # 1/4 scale: 300 >= 256
    crop = decode_for_model(data, "large.jpg", 256, crop=Box.from_xywh(800, 600, 600, 520))
    assert crop.size == (300, 260)  # 1/2 scale keeps the crop's 520-pixel side above 256
    finer = decode_for_model(data, "large.jpg", 256, crop=Box.from_xywh(800, 600, 600, 500))
    assert finer.size == (600, 500)  # at 1/2 its 500-pixel side would fall below 256: full size
    assert decode_for_model(png_bytes(), "small.png", 256).size == (64, 48)  # nothing to reduce
    with pytest.raises(BadImageError, match="not an image"):
        decode_for_model(b"not an image at all", "upload", 256)
