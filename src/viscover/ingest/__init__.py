"""Ingest stage: safe image decoding, pin sources (folders, manifests) and the SQLite catalog."""

from viscover.ingest.catalog import Catalog, CatalogReader, CatalogView, DeletedPins, ObjectRun, Pin, StoredObject
from viscover.ingest.images import DecodedImage, decode_crops, decode_for_model, decode_image, load_image, read_bytes
from viscover.ingest.ingest import IngestReport, ingest
from viscover.ingest.sources import PinSource, iter_sources

__all__ = [
    "Catalog",
    "CatalogReader",
    "CatalogView",
    "DecodedImage",
    "DeletedPins",
    "IngestReport",
    "ObjectRun",
    "Pin",
    "PinSource",
    "StoredObject",
    "decode_crops",
    "decode_for_model",
    "decode_image",
    "ingest",
    "iter_sources",
    "load_image",
    "read_bytes",
]
