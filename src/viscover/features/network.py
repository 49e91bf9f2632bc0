"""A backbone cut at one layer, as a PyTorch module: what extraction, export and fine-tuning run.

The only features module that imports PyTorch at import time; the read path reaches it only when a feature
space has no cached ONNX export yet.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from viscover.config import Settings
from viscover.errors import UnknownNameError
from viscover.features.registry import BackboneSpec, backbone_spec, model_key


class FeatureNet(nn.Module):
    """Images (N,3,H,W) → features (N,D) at one layer of a backbone; spatial maps are average-pooled."""

    def __init__(self, spec: BackboneSpec, layer: str, network: nn.Module, key: str) -> None:
        super().__init__()
        self.spec, self.layer, self.key = spec, layer, key
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

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.body(images)["out"]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1)


def create_backbone(name: str, layer: str | None = None, settings: Settings | None = None) -> FeatureNet:
    """Build a pretrained backbone cut at `layer` (default: its pooled penultimate layer)."""
    settings = settings or Settings()
    spec = backbone_spec(name, settings)
    layer = layer or spec.default_layer
    return FeatureNet(spec, layer, spec.build(settings), model_key(name, layer, settings)).eval()
