"""Flashlight (section 7 of the paper): crop and object-dot search, clickable tf-idf annotations, and dots
kept only where visual search is confident. Composes the engine's read path; nothing in the core imports it."""

from viscover.flashlight.annotations import METHODS, Annotation, annotate, best_terms, conformity, idf
from viscover.flashlight.flashlight import Dot, DotThresholds, Flashlight, Look, write_thresholds

__all__ = [
    "METHODS",
    "Annotation",
    "Dot",
    "DotThresholds",
    "Flashlight",
    "Look",
    "annotate",
    "best_terms",
    "conformity",
    "idf",
    "write_thresholds",
]
