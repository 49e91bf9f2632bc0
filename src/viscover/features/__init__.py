"""Features stage: pretrained backbones by name, layer taps, fast embedding, and binarization."""

from viscover.features.binarize import METHODS, Binarizer, hamming_distances
from viscover.features.embed import EmbeddedBatch, Embedder, embed_locations
from viscover.features.registry import (
    BackboneSpec,
    FeatureNet,
    Preprocess,
    backbone_spec,
    create_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "METHODS",
    "BackboneSpec",
    "Binarizer",
    "EmbeddedBatch",
    "Embedder",
    "FeatureNet",
    "Preprocess",
    "backbone_spec",
    "create_backbone",
    "embed_locations",
    "hamming_distances",
    "list_backbones",
    "register_backbone",
]
