"""What a search can be asked with: a catalog pin, an image's bytes, or a decoded image, each with an optional
crop. The read path takes only these, never a string it would have to guess about (a path? a URL? an id?);
reading files and URLs is the command line's business."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from viscover.box import Box


@dataclass(frozen=True)
class PinQuery:
    """A catalog pin: its stored vector, or its image read again from its stored location (a file, or the URL
    its manifest gave, fetched within `fetch_timeout_s`) when a crop is given or it has no vector yet."""

    pin_id: str
    crop: Box | None = None


@dataclass(frozen=True)
class BytesQuery:
    """An encoded image (an upload), decoded exactly as indexed images are; `name` appears in errors."""

    data: bytes = field(repr=False)
    crop: Box | None = None
    name: str = "query image"


@dataclass(frozen=True)
class ImageQuery:
    """A decoded image (a composed scene, a video frame), used as it is."""

    image: Image.Image
    crop: Box | None = None


Query = PinQuery | BytesQuery | ImageQuery
