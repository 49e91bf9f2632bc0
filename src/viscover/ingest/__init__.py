"""Ingest stage: safe image decoding, pin sources (folders, manifests) and the SQLite catalog."""

from viscover.ingest.catalog import Catalog, Pin, StoredObject
from viscover.ingest.images import CropBox, DecodedImage, decode_image, load_image
from viscover.ingest.ingest import IngestReport, ingest
from viscover.ingest.sources import PinSource, iter_sources

__all__ = [
    "Catalog",
    "CropBox",
    "DecodedImage",
    "IngestReport",
    "Pin",
    "PinSource",
    "StoredObject",
    "decode_image",
    "ingest",
    "iter_sources",
    "load_image",
]
