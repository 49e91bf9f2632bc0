"""Flashlight (section 7 of the paper): crop and object-dot search, clickable tf-idf annotations, and dots
kept only where visual search is confident (the engine's `Insight` judges annotations and dots). Composes the
engine's read path; nothing in the core imports it."""

from viscover.flashlight.flashlight import Flashlight, Look

__all__ = ["Flashlight", "Look"]
