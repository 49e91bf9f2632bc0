"""Lens (section 8 of the paper): a photo in; what viscover understands of it (annotations, objects, salient
colours, a category) and one feed blended from visual, text and object search. Composes the engine's read
path; the core never imports it."""

from viscover.lens.blend import Candidate, Placed, SourceResults, SourceShare, blend, quotas
from viscover.lens.colours import PALETTE, Colour, salient_colours
from viscover.lens.lens import Lens, LensResult, Understanding

__all__ = [
    "PALETTE",
    "Candidate",
    "Colour",
    "Lens",
    "LensResult",
    "Placed",
    "SourceResults",
    "SourceShare",
    "Understanding",
    "blend",
    "quotas",
    "salient_colours",
]
