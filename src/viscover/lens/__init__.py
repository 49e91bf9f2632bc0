"""Lens (section 8 of the paper): a photo in, what viscover understands of it, and a blend of results. So far:
salient colours, named (`colours.py`). Composes the engine's read path; the core never imports it."""

from viscover.lens.colours import PALETTE, Colour, salient_colours

__all__ = ["PALETTE", "Colour", "salient_colours"]
