"""Backbones by name, the way timm's `create_model` works: each backbone file registers a builder."""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from viscover.config import Settings
from viscover.errors import UnknownNameError


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side, centre-crop a square, scale to [0, 1] and normalise per channel."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image → float32 CHW array ready for the network."""
        width, height = image.size
        scale = self.resize / min(width, height)
        size = (max(self.crop, round(width * scale)), max(self.crop, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        image = image.crop((left, top, left + self.crop, top + self.crop))
        array = np.asarray(image, dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


@dataclass(frozen=True)
class BackboneSpec:
    """How to build a pretrained network and which of its layers users may tap, by friendly name."""

    name: str
    build: Callable[[Settings], nn.Module]
    preprocess: Preprocess
    layers: dict[str, str]  # friendly layer name → FX node name (or node prefix) of the network
    classifier: str  # module path of the final Linear layer, replaced when fine-tuning
    description: str = ""
    default_layer: str = field(default="pool")


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> dict[str, BackboneSpec]:
    _load_builtin_backbones()
    return dict(sorted(_REGISTRY.items()))


def backbone_spec(name: str, settings: Settings | None = None) -> BackboneSpec:
    """A built-in backbone, or one fine-tuned into `settings.home` by `viscover finetune`."""
    backbones = list_backbones()
    if name in backbones:
        return backbones[name]
    if settings is not None:
        from viscover.features.finetune import finetuned_spec

        spec = finetuned_spec(name, settings)
        if spec is not None:
            return spec
    raise UnknownNameError(f"unknown backbone {name!r}; registered: {', '.join(backbones)}")


class FeatureNet(nn.Module):
    """A backbone cut at one layer: images (N,3,H,W) → features (N,D); spatial maps are average-pooled."""

    def __init__(self, spec: BackboneSpec, layer: str, network: nn.Module) -> None:
        super().__init__()
        self.spec, self.layer = spec, layer
        # A friendly name maps to an FX node or module name; torchvision takes a module's last node.
        target = spec.layers.get(layer, layer)
        with warnings.catch_warnings():  # torchvision notes that eval and train graphs differ; we use eval
            warnings.simplefilter("ignore", UserWarning)
            try:
                self.body = create_feature_extractor(network.eval(), {target: "out"})
            except ValueError:
                nodes = get_graph_node_names(network)[1]
                raise UnknownNameError(
                    f"backbone {spec.name!r} has no layer {layer!r}; use one of: {', '.join(spec.layers)}, "
                    f"or a module name such as {nodes[len(nodes) // 2]!r} (see torchvision's get_graph_node_names)"
                ) from None

    @property
    def key(self) -> str:
        """Names the feature space: vectors from different keys never share an index."""
        return f"{self.spec.name}/{self.layer}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.body(images)["out"]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1)


def create_backbone(name: str, layer: str | None = None, settings: Settings | None = None) -> FeatureNet:
    """Build a pretrained backbone cut at `layer` (default: its pooled penultimate layer)."""
    settings = settings or Settings()
    spec = backbone_spec(name, settings)
    network = spec.build(settings)
    return FeatureNet(spec, layer or spec.default_layer, network).eval()


def _load_builtin_backbones() -> None:
    from viscover.features import backbones

    for module in pkgutil.iter_modules(backbones.__path__):
        importlib.import_module(f"{backbones.__name__}.{module.name}")
