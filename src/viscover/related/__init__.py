"""Related Pins (section 6 of the paper): board co-occurrence candidates re-ranked by a learned Rank-SVM with
visual, category-cross and dominant-object features. Composes the engine's read path; the core never imports it."""

from viscover.related.graph import NORMALIZATIONS, BoardGraph, Scores
from viscover.related.ranker import RankSVM
from viscover.related.related import (
    FEATURE_SETS,
    MODEL_FILE,
    SOURCES,
    VARIANTS,
    CatalogGraph,
    Categories,
    LiveRelated,
    RelatedHit,
    RelatedModel,
    RelatedPins,
    load_related,
)

__all__ = [
    "FEATURE_SETS",
    "MODEL_FILE",
    "NORMALIZATIONS",
    "SOURCES",
    "VARIANTS",
    "BoardGraph",
    "CatalogGraph",
    "Categories",
    "LiveRelated",
    "RankSVM",
    "RelatedHit",
    "RelatedModel",
    "RelatedPins",
    "Scores",
    "load_related",
]
