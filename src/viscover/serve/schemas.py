"""What the API answers, as pydantic models: they make the OpenAPI schema at /docs and check every response."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    type: str = Field(description="the kind of problem: an error class (BadImageError, …), validation or http")
    message: str = Field(description="what is wrong and, where it helps, what to do")
    field: str | None = Field(None, description="the request field at fault, if one is")
    request_id: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class ObjectOut(BaseModel):
    box: list[float] = Field(description="x0, y0, x1, y1 in the image's pixels")
    label: str
    score: float
    dominant: bool


class PinOut(BaseModel):
    pin_id: str
    key: int
    description: str
    boards: list[str]
    category: str | None
    width: int
    height: int
    image_url: str
    thumbnail_url: str


class HitOut(PinOut):
    """A result: the pin, and how it was found."""

    rank: int
    source: str = Field(description="visual (whole images), object (scenes holding a similar object) or text")
    metric: str
    distance: float
    code_bits: int | None
    similarity: float = Field(description="in [0, 1]: 1 - d/bits for Hamming (see the README)")
    calibrated: bool
    near_duplicates: list[str]
    object_box: list[float] | None = Field(
        None, description="object search: the matched object in the scene, x0, y0, x1, y1 in its pixels"
    )
    object_label: str | None = Field(
        None, description="object search: the matched object's detector label, or `region` for a sliding window"
    )


class QueryOut(BaseModel):
    digest: str = Field(description="names the query; the server keeps its vector for paging")
    pin_id: str | None = None
    crop: str | None = Field(None, description="x,y,w,h in the original image's pixels")


class AnnotationOut(BaseModel):
    term: str = Field(description="click it: the same search narrowed to pins carrying it (`term`)")
    score: float = Field(description="mean tf-idf of the term per result pin (see the README)")


class SearchPage(BaseModel):
    results: list[HitOut]
    next_cursor: str | None = Field(description="pass it back as `cursor` for the next page; null at the end")
    query: QueryOut
    generation: int = Field(description="the index generation that answered")
    annotations: list[AnnotationOut] | None = Field(
        None, description="the results' annotations (first pages only; not narrowed)"
    )
    term: str | None = Field(None, description="the annotation the results are narrowed to")


class DotOut(BaseModel):
    box: list[float] = Field(description="the detected object: x0, y0, x1, y1 in the image's pixels")
    crop: str = Field(description="the box as a crop (x,y,w,h) to search it")
    label: str
    score: float = Field(description="the detector's confidence")
    similarity: float = Field(description="similarity of the box's top visual result")
    annotation: float = Field(description="score of the box's top annotation")
    conformity: float = Field(
        description="category conformity of the box's top results: the share carrying the box's label (or, with "
        "dot_conformity=largest, the largest share with one category)"
    )
    shown: bool = Field(description="whether every signal passed its threshold: show it as a dot")


class FlashlightOut(BaseModel):
    page: SearchPage
    dots: list[DotOut] | None = Field(description="objects found in the image (null for a crop or with dots off)")


class ScenesPage(BaseModel):
    results: list[HitOut] = Field(description="scenes, best first, each with the object that matched")


class TextPage(BaseModel):
    results: list[HitOut]
    next_offset: int | None = Field(description="pass it back as `offset` for the next page; null at the end")


class ColourOut(BaseModel):
    name: str = Field(description="a plain colour word; click it to steer the feed (`term`)")
    share: float = Field(description="its share of the photo's foreground pixels: its salience")
    rgb: str = Field(description="the colour as seen, #rrggbb")


class UnderstandingOut(BaseModel):
    width: int
    height: int
    annotations: list[AnnotationOut]
    objects: list[DotOut] = Field(description="detected objects; `shown` ones passed the dot filter")
    colours: list[ColourOut]
    category: str | None = Field(description="the commonest category among the visual results")
    conformity: float = Field(description="the share of those results with that category")


class LensHitOut(HitOut):
    why: str = Field(description="why its source found it")
    signals: dict[str, float] = Field(description="the numbers behind `why`")


class SourceShareOut(BaseModel):
    name: str = Field(description="visual, text or object")
    fired: bool = Field(description="whether its trigger held")
    reason: str = Field(description="why it fired or not")
    precision: float = Field(description="the precision measured for it at this confidence (docs/results/lens)")
    quota: float = Field(description="its share of the feed, from the precisions of the sources that fired")
    offered: int
    placed: int


class LensOut(BaseModel):
    understanding: UnderstandingOut
    results: list[LensHitOut] = Field(description="the blended feed; `source` says where each came from")
    mix: list[SourceShareOut] = Field(description="how the sources were blended, and why")
    term: str | None = Field(None, description="the annotation or colour the feed is steered to")
    seconds: dict[str, float] = Field(description="time spent in each stage of the request")


class RelatedOut(PinOut):
    """A related pin, and why it is there."""

    rank: int
    score: float = Field(description="the ranker's score (without a trained ranker: shared boards first)")
    sources: list[str] = Field(
        description="the candidate sources that proposed it: cooccurrence, walk, neighbour boards, visual, text"
    )
    contributions: dict[str, float] = Field(description="each ranker feature's part of the score")


class RelatedPage(BaseModel):
    results: list[RelatedOut]
    next_offset: int | None = Field(description="pass it back as `offset` for the next page; null at the end")
    ranker: str | None = Field(
        description="the trained ranker: each query kind's feature set and variant; null before one is trained"
    )


class PinsPage(BaseModel):
    pins: list[PinOut]
    next_after: int | None = Field(description="pass it back as `after` for the next page; null at the end")


class AddedPinOut(BaseModel):
    pin: PinOut
    change: str = Field(description="added, updated (a known image got new metadata) or unchanged")
    indexed: bool = Field(description="searchable now (a catalog needs 9 pins before it can learn codes)")


class DetectionsOut(BaseModel):
    detector: str
    width: int
    height: int
    objects: list[ObjectOut]


class EmbedderOut(BaseModel):
    model: str
    runtime: str = Field(description="onnx (ONNX Runtime), or torch (the slow PyTorch fallback)")
    threads: int


class ReadyOut(BaseModel):
    ready: bool
    reason: str | None = None
    generation: int
    pins: int
    indexed: int
    code_bits: int | None
    embedder: EmbedderOut | None
