"""torchvision's ImageNet classifiers, with the paper's layer names (fc6/fc7/fc8, pool5, fc1000).

Weights come from the models directory, the torch hub cache, or a download when allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from viscover.config import Settings
from viscover.features.registry import BACKBONES, BackboneSpec, Preprocess
from viscover.model_files import torchvision_weights

if TYPE_CHECKING:
    from torch import nn

_RESNET = {"pool5": "flatten", "fc1000": "fc", "logits": "fc", "pool": "flatten"}
_ALEXNET = {
    "fc6": "classifier.1",
    "fc7": "classifier.4",
    "fc8": "classifier.6",
    "pool": "classifier.4",
    "logits": "classifier.6",
}
_VGG = {
    "fc6": "classifier.0",
    "fc7": "classifier.3",
    "fc8": "classifier.6",
    "pool": "classifier.3",
    "logits": "classifier.6",
}
_GOOGLENET = {"pool5": "flatten", "loss3/classifier": "fc", "pool": "flatten", "logits": "fc"}
_MOBILENET_V3 = {"pool": "flatten", "logits": "classifier.3"}

NETWORKS = {
    "resnet50": _RESNET,
    "resnet101": _RESNET,
    "resnet152": _RESNET,
    "vgg16": _VGG,
    "alexnet": _ALEXNET,
    "googlenet": _GOOGLENET,
    "mobilenet_v3_large": _MOBILENET_V3,
    "mobilenet_v3_small": _MOBILENET_V3,
}


def _weights(name: str):
    def weight_files(settings: Settings) -> list[Path]:
        import torchvision

        return [torchvision_weights(torchvision.models.get_model_weights(name).DEFAULT.url, settings)]

    return weight_files


def _builder(name: str):
    def build(settings: Settings) -> nn.Module:
        import torch
        import torchvision

        kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
        network = torchvision.models.get_model(name, weights=None, **kwargs)
        (path,) = _weights(name)(settings)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if name == "googlenet":
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
        network.load_state_dict(state)
        return network

    return build


for _name, _layers in NETWORKS.items():
    BACKBONES.register(
        BackboneSpec(
            name=_name,
            build=_builder(_name),
            weight_files=_weights(_name),
            preprocess=Preprocess(),
            layers=_layers,
            classifier=_layers["logits"],
            description=f"torchvision {_name}, ImageNet DEFAULT weights; layers {', '.join(_layers)}",
        )
    )
