"""Backbones by name, the way timm's `create_model` works: each file under `backbones/` registers its specs.

Nothing here imports PyTorch: listing backbones, naming feature spaces and preprocessing images stay cheap,
and a network is built only when features must be computed (`features/network.py`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from viscover.config import Settings
from viscover.errors import BadArgumentError, UnknownNameError
from viscover.model_files import sha256_of
from viscover.registry import Registry

if TYPE_CHECKING:
    from torch import nn

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side, centre-crop a square, scale to [0, 1] and normalise per channel."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image → float32 CHW array ready for the network."""
        return self.normalize(self.pixels(image)[None])[0]

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The resized, centre-cropped RGB pixels, uint8 HWC (a quarter of the floats' bytes, to send)."""
        width, height = image.size
        scale = self.resize / min(width, height)
        size = (max(self.crop, round(width * scale)), max(self.crop, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        return np.asarray(image.crop((left, top, left + self.crop, top + self.crop)))

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels → the network's float32 NCHW input, scaled to [0, 1] and normalised per channel, in
        one multiply and one subtraction written straight into NCHW order (it runs beside the model per batch)."""
        std, mean = np.asarray(self.std, np.float32), np.asarray(self.mean, np.float32)
        pixels = np.asarray(pixels)
        out = np.empty((pixels.shape[0], pixels.shape[3], pixels.shape[1], pixels.shape[2]), np.float32)
        np.multiply(pixels.transpose(0, 3, 1, 2), (1 / (255 * std))[:, None, None], out=out)
        out -= (mean / std)[:, None, None]
        return out


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a pretrained network and which of its layers users may tap, by friendly name."""

    name: str
    build: Callable[[Settings], nn.Module]
    weight_files: Callable[[Settings], Sequence[Path]]  # the files whose bytes fix the network's weights
    preprocess: Preprocess
    layers: dict[str, str]  # friendly layer name → FX node name (or node prefix) of the network
    classifier: str  # module path of the final Linear layer, replaced when fine-tuning
    description: str = ""
    default_layer: str = field(default="pool")

    def weights_digest(self, settings: Settings) -> str:
        """Names the weights: retrained weights under the same backbone name get a new digest."""
        digest = hashlib.sha256(self.name.encode())
        for path in self.weight_files(settings):
            stat = path.stat()
            digest.update(_file_digest(str(path), stat.st_size, stat.st_mtime_ns).encode())
        return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, _size: int, _mtime_ns: int) -> str:
    """SHA-256 of a weights file, hashed once per process while its size and time stay the same."""
    return sha256_of(Path(path))


BACKBONES: Registry[BackboneSpec] = Registry("backbone", "viscover.features.backbones")


def check_name(kind: str, name: str) -> str:
    """A name that becomes a folder under the home: a plain word, never a path."""
    if not _PLAIN_NAME.fullmatch(name or ""):
        raise BadArgumentError(
            f"a {kind} name must be a plain name (letters, digits, '_', '-', '.'; at most 64), got {name!r}"
        )
    return name


def backbone_spec(name: str, settings: Settings | None = None) -> BackboneSpec:
    """A built-in backbone, or one fine-tuned into `settings.home` by `viscover finetune`."""
    if name in BACKBONES:
        return BACKBONES.get(name)
    if settings is not None and _PLAIN_NAME.fullmatch(name or ""):
        from viscover.features.finetuned import finetuned_spec

        spec = finetuned_spec(name, settings)
        if spec is not None:
            return spec
    raise UnknownNameError(
        f"unknown backbone {name!r}; registered: {', '.join(BACKBONES.all())}, or one fine-tuned into the home"
    )


def model_key(backbone: str, layer: str, settings: Settings) -> str:
    """Names a feature space: backbone, layer and the digest of the weights, as `backbone/layer@digest`.
    Vectors under different keys never share an index."""
    return f"{backbone}/{layer}@{backbone_spec(backbone, settings).weights_digest(settings)}"


def parse_model_key(key: str) -> tuple[str, str, str]:
    """(backbone, layer, weights digest) of a model key."""
    backbone, _, rest = key.partition("/")
    layer, _, digest = rest.rpartition("@")
    if not (backbone and layer and digest):
        raise UnknownNameError(f"{key!r} is not a feature space name (backbone/layer@digest)")
    return backbone, layer, digest


def list_backbones() -> dict[str, BackboneSpec]:
    return BACKBONES.all()
