"""Safe image decoding: every way an image can be bad becomes one clear `BadImageError`.

Indexing and queries decode for the model through one function (`decode_for_model`), so a copy of an
indexed photo is embedded from the same pixels and lands at distance 0."""

from __future__ import annotations

import hashlib
import http.client
import io
import math
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from viscover.box import Box
from viscover.errors import BadImageError

SUPPORTED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image with the facts the catalog records about its bytes."""

    image: Image.Image
    sha256: str
    width: int
    height: int
    format: str  # as PIL names it: JPEG, PNG, …


def read_bytes(location: str, timeout_s: float = 20.0) -> bytes:
    """Read an image's bytes from a path or an http(s) URL, refusing empty and oversized files."""
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=timeout_s) as response:
                data = response.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # also a malformed URL or port
            raise BadImageError(f"{location}: download failed ({type(exc).__name__}: {exc})") from exc
    else:
        path = Path(location)
        if not path.is_file():
            raise BadImageError(f"{location}: no such file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise BadImageError(f"{location}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = path.read_bytes()
    if not data:
        raise BadImageError(f"{location}: file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise BadImageError(f"{location}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
    return data


def decode_image(data: bytes, name: str, max_pixels: int = 89_478_485) -> DecodedImage:
    """Decode bytes fully into RGB; corrupt, truncated, bomb-sized or unsupported data raise BadImageError."""
    image = _checked_open(data, name, max_pixels)
    width, height = image.size
    return DecodedImage(_as_rgb(image, name), hashlib.sha256(data).hexdigest(), width, height, image.format)


def decode_for_model(
    data: bytes, name: str, min_side: int, max_pixels: int = 89_478_485, crop: Box | None = None
) -> Image.Image:
    """The RGB pixels a model sees: the image (or its `crop`, in original pixels) decoded at reduced size where
    JPEG allows (draft mode), keeping the region's shorter side at least `min_side` pixels."""
    return decode_crops(data, name, min_side, max_pixels, [crop])[0]


def decode_crops(
    data: bytes, name: str, min_side: int, max_pixels: int, crops: Sequence[Box | None]
) -> list[Image.Image]:
    """`decode_for_model` for many crops of one image, the same pixels each, decoding the image once per draft
    size rather than once per crop (an object index embeds dozens of regions of each scene)."""
    width, height = _checked_open(data, name, max_pixels).size
    decoded: dict[tuple[int, int], tuple[Image.Image, float]] = {}  # by the size the draft decodes at
    found = []
    for crop in crops:
        region = (crop or Box(0, 0, width, height)).check_inside(width, height)
        # JPEG draft scales by 1/2, 1/4 or 1/8 while both sides stay at least the requested size; asking for
        # the full image's shorter side scaled like the region's keeps the region at least `min_side` pixels.
        request = math.ceil(min_side * min(width, height) / min(region.width, region.height))
        image = _checked_open(data, name, max_pixels)  # opening and drafting read only the header
        image.draft("RGB", (request, request))
        if image.size not in decoded:
            decoded[image.size] = (_as_rgb(image, name), image.size[0] / width)
        pixels, scale = decoded[image.size]
        found.append(pixels if crop is None else pixels.crop(region.scaled(scale).pixels()))
    return found


def _checked_open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open lazily, refusing unknown formats and decompression bombs before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{name}: not an image file (unrecognised format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{name}: too many pixels (decompression bomb): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise BadImageError(f"{name}: unsupported image format {image.format}")
    width, height = image.size
    if width * height > max_pixels:
        raise BadImageError(f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} (decompression bomb?)")
    return image


def _as_rgb(image: Image.Image, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{name}: too many pixels (decompression bomb): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image ({exc})") from exc


def load_image(location: str, max_pixels: int = 89_478_485, timeout_s: float = 20.0) -> DecodedImage:
    """Read and decode an image from a path or URL (ingest and the command line; never the read path)."""
    return decode_image(read_bytes(location, timeout_s), location, max_pixels)
