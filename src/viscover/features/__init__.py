"""Features stage: pretrained backbones by name, layer taps, fast embedding, and binarization.

PyTorch is imported only by `viscover.features.network` (building a backbone) and the training code.
"""

from viscover.features.binarize import METHODS, Binarizer, hamming_distances
from viscover.features.embed import EmbeddedBatch, Embedder, embed_locations, load_pixels
from viscover.features.registry import (
    BACKBONES,
    BackboneSpec,
    Preprocess,
    backbone_spec,
    check_name,
    list_backbones,
    model_key,
    parse_model_key,
)

__all__ = [
    "BACKBONES",
    "METHODS",
    "BackboneSpec",
    "Binarizer",
    "EmbeddedBatch",
    "Embedder",
    "Preprocess",
    "backbone_spec",
    "check_name",
    "embed_locations",
    "hamming_distances",
    "list_backbones",
    "load_pixels",
    "model_key",
    "parse_model_key",
]
