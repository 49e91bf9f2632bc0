"""One box type for every region viscover handles: a user's crop, a detection, an object's padded crop."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from viscover.errors import BadCropError


@dataclass(frozen=True)
class Box:
    """A region in image pixels as corners (x0, y0) top-left and (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        return cls(x, y, x + w, y + h)

    @classmethod
    def parse(cls, text: str) -> Box:
        """Parse 'x,y,w,h' (left, top, width, height in pixels) as typed on the command line or in a form."""
        parts = str(text).split(",")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise BadCropError(f"crop {text!r}: expected four numbers 'x,y,w,h'")
        return cls.from_xywh(*values)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def __iter__(self) -> Iterator[float]:
        """x0, y0, x1, y1: a box unpacks and converts to arrays like the tuple it stands for."""
        return iter((self.x0, self.y0, self.x1, self.y1))

    def __str__(self) -> str:
        return f"{self.x0:g},{self.y0:g},{self.width:g},{self.height:g}"

    def check_inside(self, width: int, height: int) -> Box:
        """This box, if it has positive area and lies inside a width x height image; else a clear error."""
        if not all(math.isfinite(v) for v in self) or self.width <= 0 or self.height <= 0:
            raise BadCropError(f"crop {self} (x,y,w,h) has no area: width and height must be positive")
        if self.x0 < 0 or self.y0 < 0 or self.x1 > width or self.y1 > height:
            raise BadCropError(f"crop {self} (x,y,w,h) extends outside the {width}x{height} image")
        return self

    def scaled(self, factor: float) -> Box:
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor)

    def padded(self, context: float, width: int, height: int) -> Box:
        """Grown by `context` of its size on every side (tight boxes lack context, section 6), clipped to the
        image, on whole pixels."""
        dx, dy = context * self.width, context * self.height
        return Box(
            max(0, math.floor(self.x0 - dx)),
            max(0, math.floor(self.y0 - dy)),
            min(width, math.ceil(self.x1 + dx)),
            min(height, math.ceil(self.y1 + dy)),
        )

    def pixels(self) -> tuple[int, int, int, int]:
        """The whole pixels the box touches (at least one), as PIL's crop takes them."""
        return math.floor(self.x0), math.floor(self.y0), math.ceil(self.x1), math.ceil(self.y1)
