"""Index stage: FAISS indexes over binary codes (Hamming) and raw features (L2/L1), keyed by pin key, and
the generations in which a writer publishes them to readers; raw features searched from a memory-mapped file."""

from viscover.index.raw_vectors import RawVectors
from viscover.index.store import Generation, IndexStore
from viscover.index.vector_index import METRICS, Metric, VectorIndex
from viscover.index.visual_index import VisualIndex

__all__ = ["METRICS", "Generation", "IndexStore", "Metric", "RawVectors", "VectorIndex", "VisualIndex"]
