"""Ingest stage: safe image decoding, pin sources (folders, manifests) and the SQLite catalog."""

from viscover.ingest.catalog import Catalog, CatalogReader, DeletedPins, Pin, StoredObject
from viscover.ingest.images import DecodedImage, decode_for_model, decode_image, load_image, read_bytes
from viscover.ingest.ingest import IngestReport, ingest
from viscover.ingest.sources import PinSource, iter_sources

__all__ = [
    "Catalog",
    "CatalogReader",
    "DecodedImage",
    "DeletedPins",
    "IngestReport",
    "Pin",
    "PinSource",
    "StoredObject",
    "decode_for_model",
    "decode_image",
    "ingest",
    "iter_sources",
    "load_image",
    "read_bytes",
]
