"""A corpus of hostile and awkward inputs, generated (nothing binary is committed): broken files of every
format, bombs, odd but valid images that must be accepted, non-images, and names no file should have."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.conftest import caltech_image


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims `width` x `height` pixels (CRC fixed, so only the size is a lie)."""
    data = bytearray(_encoded(Image.new("RGB", (1, 1)), "PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def _gif_frames(count: int) -> bytes:
    frames = [Image.new("P", (2, 2), n % 256) for n in range(count)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


def corpus() -> dict[str, tuple[bytes, bool]]:
    """file name → (bytes, whether it is a usable image)."""
    photo = Image.open(caltech_image("Leopards", 5)).convert("RGB")
    jpeg, png = _encoded(photo, "JPEG", quality=90), _encoded(photo, "PNG")
    webp, gif = _encoded(photo, "WEBP"), _encoded(photo.convert("P"), "GIF")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    corrupt_png = bytearray(png)
    corrupt_png[len(png) // 2 : len(png) // 2 + 64] = b"\x00" * 64
    return {
        "truncated.jpg": (jpeg[: len(jpeg) // 3], False),
        "truncated.png": (png[: len(png) // 3], False),
        "corrupt.png": (bytes(corrupt_png), False),
        "truncated.webp": (webp[: len(webp) // 3], False),
        "truncated.gif": (gif[: len(gif) // 3], False),
        "zero-bytes.jpg": (b"", False),
        "bomb.png": (_png_claiming(100_000, 100_000), False),
        "wide-bomb.png": (_png_claiming(2_000_000_000, 1), False),
        "page.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', False),
        "page.html": (b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", False),
        "text-named.jpg": (b"just some text, not an image at all\n" * 10, False),
        "frames-10000.gif": (_gif_frames(10_000), True),
        "cmyk.jpg": (_encoded(photo.convert("CMYK"), "JPEG"), True),
        "grey-16bit.png": (_encoded(photo.convert("I;16"), "PNG"), True),
        "palette.png": (_encoded(photo.convert("P"), "PNG"), True),
        "alpha.png": (_encoded(photo.convert("RGBA"), "PNG"), True),
        "exif-rotated.jpg": (_encoded(photo, "JPEG", exif=exif), True),
        "webp.webp": (webp, True),
        "polyglot.jpg": (jpeg + b"<html><script>alert(1)</script></html>", True),
        "new\nline.jpg": (_encoded(photo.rotate(90), "JPEG"), True),
        "dots..name.jpg": (_encoded(photo.rotate(180), "JPEG"), True),
    }


def write_corpus(folder: Path) -> dict[Path, bool]:
    """The corpus as files under `folder`, path → usable content (plus a usable image whose name is not
    UTF-8: the command line refuses it by its name)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (data, usable) in corpus().items():
        (folder / name).write_bytes(data)
        written[folder / name] = usable
    odd = folder / os.fsdecode(b"latin1-\xe9t\xe9.jpg")  # a name Linux allows but that is not UTF-8
    odd.write_bytes(_encoded(Image.open(caltech_image("Leopards", 6)).convert("RGB"), "JPEG"))
    written[odd] = True
    return written
