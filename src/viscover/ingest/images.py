"""Safe image decoding and crop boxes: every way an image can be bad becomes one clear `BadImageError`."""

from __future__ import annotations

import hashlib
import io
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from viscover.errors import BadCropError, BadImageError

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image with the facts the catalog records about its bytes."""

    image: Image.Image
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class CropBox:
    """A region of an image in pixels: left, top, width, height (Flashlight's cropper)."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> CropBox:
        """Parse 'x,y,w,h' as typed on the command line."""
        parts = text.split(",")
        if len(parts) != 4:
            raise BadCropError(f"crop {text!r}: expected four integers 'x,y,w,h'")
        try:
            x, y, w, h = (int(float(p)) for p in parts)
        except ValueError as exc:
            raise BadCropError(f"crop {text!r}: expected four integers 'x,y,w,h'") from exc
        return cls(x, y, w, h)

    def check_inside(self, width: int, height: int) -> None:
        """Refuse boxes with no area, negative corners, or parts outside a width x height image."""
        if self.w <= 0 or self.h <= 0:
            raise BadCropError(f"crop {self}: width and height must be positive")
        if self.x < 0 or self.y < 0:
            raise BadCropError(f"crop {self}: x and y must not be negative")
        if self.x + self.w > width or self.y + self.h > height:
            raise BadCropError(f"crop {self}: extends outside the {width}x{height} image")

    def apply(self, image: Image.Image) -> Image.Image:
        self.check_inside(*image.size)
        return image.crop((self.x, self.y, self.x + self.w, self.y + self.h))

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def read_bytes(location: str, timeout_s: float = 20.0) -> bytes:
    """Read an image's bytes from a path or an http(s) URL, refusing empty and oversized files."""
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=timeout_s) as response:
                data = response.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise BadImageError(f"{location}: download failed ({exc})") from exc
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format not in SUPPORTED_FORMATS:
                raise BadImageError(f"{name}: unsupported image format {probe.format}")
            width, height = probe.size
            if width * height > max_pixels:
                raise BadImageError(
                    f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} (decompression bomb?)"
                )
            probe.load()
            image = probe.convert("RGB")
    except BadImageError:
        raise
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{name}: not an image file (unrecognised format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{name}: too many pixels (decompression bomb): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    return DecodedImage(image, hashlib.sha256(data).hexdigest(), width, height)


def load_image(location: str, max_pixels: int = 89_478_485, timeout_s: float = 20.0) -> DecodedImage:
    """Read and decode an image from a path or URL."""
    return decode_image(read_bytes(location, timeout_s), location, max_pixels)
