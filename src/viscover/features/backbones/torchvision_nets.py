"""torchvision's ImageNet classifiers, with the paper's layer names (fc6/fc7/fc8, pool5, fc1000).

Weights come from a local file (VISCOVER_WEIGHTS_DIR), the torch hub cache, or a download when allowed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from viscover.config import Settings
from viscover.errors import WeightsUnavailableError
from viscover.features.registry import BackboneSpec, Preprocess, register_backbone

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


def weights_file(name: str, settings: Settings) -> Path:
    """Find (or, when allowed, download) the DEFAULT ImageNet checkpoint of a torchvision network."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    filename = url.rsplit("/", 1)[-1]
    candidates = [Path(torch.hub.get_dir()) / "checkpoints" / filename]
    if settings.weights_dir is not None:
        candidates.insert(0, settings.weights_dir / filename)
    for path in candidates:
        if path.is_file():
            return path
    if not settings.allow_download:
        raise WeightsUnavailableError(
            f"weights for {name} not found; put {filename} in {' or '.join(map(str, candidates))} "
            f"(from {url}) or allow downloads (VISCOVER_ALLOW_DOWNLOAD=1)"
        )
    try:
        torch.hub.download_url_to_file(url, str(candidates[-1]), progress=True)
    except OSError as exc:
        raise WeightsUnavailableError(f"could not download weights for {name} from {url}: {exc}") from exc
    return candidates[-1]


def _builder(name: str):
    def build(settings: Settings) -> nn.Module:
        kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
        network = torchvision.models.get_model(name, weights=None, **kwargs)
        state = torch.load(weights_file(name, settings), map_location="cpu", weights_only=True)
        if name == "googlenet":
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
        network.load_state_dict(state)
        return network

    return build


for _name, _layers in NETWORKS.items():
    register_backbone(
        BackboneSpec(
            name=_name,
            build=_builder(_name),
            preprocess=Preprocess(),
            layers=_layers,
            classifier=_layers["logits"],
            description=f"torchvision {_name}, ImageNet DEFAULT weights; layers {', '.join(_layers)}",
        )
    )
