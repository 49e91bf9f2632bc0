"""The REST API under /v1: search by upload or pin (with crop and pages), Flashlight, Lens, object and text
search, pins (read, similar, related, image, thumbnail, add, delete), detection. They share one `Service`, whose
read path is thread-safe and whose writes go through the home's single writer. Plain handlers run in FastAPI's
thread pool; the ones that take uploads are async only to read them, and hand all blocking work to the pool
(`run`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Literal, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from viscover.box import Box
from viscover.detect import dominant_object
from viscover.errors import BadArgumentError, ViscoverError
from viscover.ingest import Pin, decode_image
from viscover.ingest.text import user_term
from viscover.lens import LensResult
from viscover.search import BytesQuery, Dot, PinQuery, SearchHit
from viscover.search import Query as SearchQuery
from viscover.serve.schemas import (
    AddedPinOut,
    AnnotationOut,
    ColourOut,
    DetectionsOut,
    DotOut,
    ErrorOut,
    FlashlightOut,
    HitOut,
    LensHitOut,
    LensOut,
    ObjectOut,
    PinOut,
    PinsPage,
    QueryOut,
    RelatedOut,
    RelatedPage,
    ScenesPage,
    SearchPage,
    SourceShareOut,
    TextPage,
    UnderstandingOut,
)
from viscover.serve.service import Cursor, Page, Service

T = TypeVar("T")
# Any id a manifest may give, up to 256 characters, but no control characters or slashes, and not only dots.
PIN_ID = r"^[^\x00-\x1f/\x7f]*[^\x00-\x1f/\x7f.][^\x00-\x1f/\x7f]*$"
PinId = Annotated[str, Path(pattern=PIN_ID, max_length=256, description="a pin's id")]
Metric = Literal["hamming", "l2", "l1"]
ERRORS = {
    code: {"model": ErrorOut}
    for code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND, 409, 410, 413, 422, 503)
}


async def service(request: Request) -> Service:
    return request.app.state.service  # async: a plain function would cost a thread-pool hop per request


Shared = Annotated[Service, Depends(service)]
router = APIRouter(prefix="/v1", responses=ERRORS)


@contextmanager
def blame(field: str) -> Iterator[None]:
    """Name the request field a user error comes from, so the 4xx answer says which one it was."""
    try:
        yield
    except ViscoverError as exc:
        exc.field = getattr(exc, "field", None) or field
        raise


def narrowing_term(term: str | None, after: Cursor | None) -> str | None:
    """The annotation a request narrows to, written as annotations write terms; a cursor keeps its own."""
    if not term:
        return after.term if after else None
    with blame("term"):
        normal = user_term(term)
        if after is not None and normal != after.term:
            raise BadArgumentError(
                f"term: the cursor continues results narrowed to {after.term!r}; search again to narrow to {normal!r}"
            )
    return normal


def pin_out(pin: Pin) -> PinOut:
    path = f"/v1/pins/{quote(pin.pin_id, safe='')}"
    version = pin.sha256[:12]  # URLs change with the image, so browsers may cache them for long
    return PinOut(
        pin_id=pin.pin_id,
        key=pin.key,
        description=pin.description,
        boards=list(pin.boards),
        category=pin.category,
        width=pin.width,
        height=pin.height,
        image_url=f"{path}/image?v={version}",
        thumbnail_url=f"{path}/thumbnail?v={version}",
    )


def hit_out(hit: SearchHit) -> HitOut:
    return HitOut(
        **pin_out(hit.pin).model_dump(),
        rank=hit.rank,
        source=hit.source,
        metric=hit.metric,
        distance=hit.distance,
        code_bits=hit.code_bits,
        similarity=hit.similarity,
        calibrated=hit.calibrated,
        near_duplicates=list(hit.near_duplicates),
        object_box=list(hit.object.box) if hit.object else None,
        object_label=hit.object.label if hit.object else None,
    )


def page_out(page: Page, query: SearchQuery | None, term: str | None) -> SearchPage:
    """A page as the API answers it; `query` is None for a cursor's page of an upload."""
    crop = query.crop if query is not None else None
    return SearchPage(
        results=[hit_out(hit) for hit in page.hits],
        next_cursor=page.next_cursor,
        query=QueryOut(
            digest=page.digest,
            pin_id=query.pin_id if isinstance(query, PinQuery) else None,
            crop=str(crop) if crop else None,
        ),
        generation=page.generation,
        annotations=None if page.annotations is None else [AnnotationOut(**asdict(a)) for a in page.annotations],
        term=term,
    )


async def query_of(image: UploadFile | None, pin_id: str | None, crop: str | None) -> SearchQuery:
    """The query a form describes: an uploaded image or a pin, and an optional crop."""
    with blame("crop"):
        box = Box.parse(crop) if crop else None
    with blame("image" if pin_id is None else "pin_id"):
        one_source(image, pin_id)
    if pin_id is not None:
        return PinQuery(pin_id, box)
    return BytesQuery(await upload_bytes(image), box, image.filename or "upload")


async def upload_bytes(upload: UploadFile) -> bytes:
    with blame("image"):
        data = await upload.read()
        if not data:
            raise BadArgumentError("image: the uploaded file is empty")
        return data


def one_source(image: UploadFile | None, pin_id: str | None) -> None:
    if (image is None) == (pin_id is None):
        raise BadArgumentError("give either a file in `image` or a `pin_id`, not both and not neither")


@router.post("/search", response_model=SearchPage, summary="Search by an uploaded image or a pin, optionally a crop")
async def search(
    shared: Shared,
    image: Annotated[UploadFile | None, File(description="the query image")] = None,
    pin_id: Annotated[
        str | None, Form(pattern=PIN_ID, max_length=256, description="or a catalog pin as the query")
    ] = None,
    crop: Annotated[str | None, Form(description="x,y,w,h in the original image's pixels")] = None,
    k: Annotated[int | None, Form(ge=1, le=100, description="results per page")] = None,
    metric: Annotated[Metric, Form(description="hamming (binary codes) or l2/l1 (raw features)")] = "hamming",
    cursor: Annotated[str | None, Form(description="next_cursor of the previous page")] = None,
    term: Annotated[str | None, Form(max_length=200, description="narrow to pins carrying this annotation")] = None,
) -> SearchPage:
    with blame("cursor"):
        after = Cursor.decode(cursor, shared.secret) if cursor else None
    # a cursor carries its query (the image is not sent again) and its term
    narrow_to = narrowing_term(term, after)
    query = None if after else await query_of(image, pin_id, crop)
    field = "cursor" if after else "image" if image is not None else "pin_id"
    with blame(field):
        page = await run(shared.search, query, k or shared.settings.page_size, metric, after, narrow_to)
    return page_out(page, after.query if after else query, narrow_to)


@router.post("/flashlight", response_model=FlashlightOut, summary="Results, annotations and object dots at once")
async def flashlight(
    shared: Shared,
    image: Annotated[UploadFile | None, File(description="the query image")] = None,
    pin_id: Annotated[str | None, Form(pattern=PIN_ID, max_length=256, description="or a catalog pin")] = None,
    crop: Annotated[str | None, Form(description="x,y,w,h in the original image's pixels (no dots then)")] = None,
    k: Annotated[int | None, Form(ge=1, le=100, description="results per page")] = None,
) -> FlashlightOut:
    query = await query_of(image, pin_id, crop)
    with blame("image" if pin_id is None else "pin_id"):
        page = await run(shared.search, query, k or shared.settings.page_size, "hamming")
        dots = await run(shared.dots, query) if shared.flashlight.showing_dots and not crop else None
    return FlashlightOut(page=page_out(page, query, None), dots=None if dots is None else [dot_out(d) for d in dots])


def dot_out(dot: Dot) -> DotOut:
    box = dot.box
    return DotOut(
        box=list(box),
        crop=str(Box(*(round(v) for v in box))),
        label=dot.label,
        score=dot.score,
        similarity=dot.similarity,
        annotation=dot.annotation,
        conformity=dot.conformity,
        shown=dot.shown,
    )


@router.post("/search/objects", response_model=ScenesPage, summary="Scenes holding objects like an image or its crop")
async def search_objects(
    shared: Shared,
    image: Annotated[UploadFile | None, File(description="the query image")] = None,
    pin_id: Annotated[str | None, Form(pattern=PIN_ID, max_length=256, description="or a catalog pin")] = None,
    crop: Annotated[str | None, Form(description="x,y,w,h in the original image's pixels: the object")] = None,
    k: Annotated[int | None, Form(ge=1, le=100, description="scenes to return")] = None,
) -> ScenesPage:
    query = await query_of(image, pin_id, crop)
    with blame("image" if pin_id is None else "pin_id"):
        hits = await run(shared.scenes, query, k or shared.settings.page_size)
    return ScenesPage(results=[hit_out(hit) for hit in hits])


@router.post("/lens", response_model=LensOut, summary="Lens: what a photo shows, and a feed blended from three sources")
async def lens(
    shared: Shared,
    image: Annotated[UploadFile | None, File(description="the photo")] = None,
    pin_id: Annotated[str | None, Form(pattern=PIN_ID, max_length=256, description="or a catalog pin")] = None,
    k: Annotated[int | None, Form(ge=1, le=100, description="results in the feed")] = None,
    term: Annotated[
        str | None, Form(max_length=200, description="steer to pins carrying this annotation or colour")
    ] = None,
) -> LensOut:
    steer = narrowing_term(term, None)
    query = await query_of(image, pin_id, None)
    with blame("image" if pin_id is None else "pin_id"):
        result = await run(shared.look, query, k or shared.settings.page_size, steer)
    return lens_out(result)


def lens_out(result: LensResult) -> LensOut:
    seen = result.understanding
    return LensOut(
        understanding=UnderstandingOut(
            width=seen.width,
            height=seen.height,
            annotations=[AnnotationOut(**asdict(a)) for a in seen.annotations],
            objects=[dot_out(d) for d in seen.objects],
            colours=[ColourOut(**asdict(c)) for c in seen.colours],
            category=seen.category,
            conformity=seen.conformity,
        ),
        results=[
            LensHitOut(
                **hit_out(p.candidate.hit).model_dump() | {"rank": p.rank, "source": p.source},
                why=p.candidate.why,
                signals=dict(p.candidate.signals),
            )
            for p in result.feed
        ],
        mix=[SourceShareOut(**asdict(share)) for share in result.mix],
        term=result.term,
        seconds=result.seconds,
    )


@router.get("/search/text", response_model=TextPage, summary="Keyword search over the pins' text (BM25)")
def search_text(
    shared: Shared,
    q: Annotated[str, Query(min_length=1, max_length=500, description="words; every one must match")],
    k: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    any_word: Annotated[bool, Query(description="match pins with any of the words instead")] = False,
) -> TextPage:
    k = k or shared.settings.page_size
    hits = shared.searcher.search_text(q, k + 1, offset, any_word)
    return TextPage(results=[hit_out(h) for h in hits[:k]], next_offset=offset + k if len(hits) > k else None)


@router.get("/pins", response_model=PinsPage, summary="Catalog pins in key order, a page at a time")
def list_pins(
    shared: Shared,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="next_after of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 48,
) -> PinsPage:
    pins = shared.searcher.catalog.pins_after(after, limit + 1)
    return PinsPage(
        pins=[pin_out(p) for p in pins[:limit]], next_after=pins[limit - 1].key if len(pins) > limit else None
    )


@router.get("/pins/{pin_id}", response_model=PinOut, summary="One pin: description, boards, category, size")
def get_pin(shared: Shared, pin_id: PinId) -> PinOut:
    with blame("pin_id"):
        return pin_out(shared.searcher.pin(pin_id))


@router.get("/pins/{pin_id}/similar", response_model=SearchPage, summary="Pins like this one (its stored vector)")
def similar(
    shared: Shared,
    pin_id: PinId,
    k: Annotated[int | None, Query(ge=1, le=100)] = None,
    metric: Annotated[Metric, Query()] = "hamming",
    cursor: Annotated[str | None, Query()] = None,
    term: Annotated[str | None, Query(max_length=200, description="narrow to pins carrying this annotation")] = None,
) -> SearchPage:
    with blame("cursor"):
        after = Cursor.decode(cursor, shared.secret) if cursor else None
        if after is not None and after.query != PinQuery(pin_id):
            raise BadArgumentError(f"cursor: it continues another query than pins like {pin_id!r}")
    narrow_to = narrowing_term(term, after)
    with blame("pin_id"):
        page = shared.search(PinQuery(pin_id), k or shared.settings.page_size, metric, after, narrow_to)
    return page_out(page, PinQuery(pin_id), narrow_to)


@router.get("/pins/{pin_id}/related", response_model=RelatedPage, summary="Related Pins: what goes with this pin")
def related(
    shared: Shared,
    pin_id: PinId,
    k: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000)] = 0,
) -> RelatedPage:
    related_pins = shared.related()
    with blame("pin_id"):
        hits = related_pins.related(pin_id, (k := k or shared.settings.page_size) + 1, offset)
    model = related_pins.model
    return RelatedPage(
        results=[
            RelatedOut(
                **pin_out(h.pin).model_dump(),
                rank=h.rank,
                score=h.score,
                sources=list(h.sources),
                contributions=h.contributions,
            )
            for h in hits[:k]
        ],
        next_offset=offset + k if len(hits) > k else None,
        ranker=model.describe() if model else None,
    )


@router.get("/pins/{pin_id}/image", summary="The pin's image as stored", response_class=Response)
def pin_image(shared: Shared, pin_id: PinId) -> Response:
    with blame("pin_id"):
        data, media_type = shared.image(shared.searcher.pin(pin_id))
    return Response(data, media_type=media_type, headers={"cache-control": "private, max-age=86400"})


@router.get("/pins/{pin_id}/thumbnail", summary="A JPEG thumbnail of the pin", response_class=Response)
def pin_thumbnail(shared: Shared, pin_id: PinId) -> Response:
    with blame("pin_id"):
        data = shared.thumbnail(shared.searcher.pin(pin_id))
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})


@router.post("/pins", response_model=AddedPinOut, status_code=201, summary="Add an image to the catalog")
async def add_pin(
    shared: Shared,
    image: Annotated[UploadFile, File(description="the image; stored under its content hash")],
    pin_id: Annotated[
        str | None, Form(pattern=PIN_ID, max_length=256, description="default: from the image's hash")
    ] = None,
    description: Annotated[str, Form(max_length=5000)] = "",
    boards: Annotated[str, Form(max_length=5000, description="board names separated by ';' or ','")] = "",
    category: Annotated[str | None, Form(max_length=200)] = None,
) -> AddedPinOut:
    data = await upload_bytes(image)
    names = [b.strip() for b in boards.replace(",", ";").split(";") if b.strip()]
    with blame("image"):
        added = await run(shared.writer.add, data, pin_id, description.strip(), names, category or None)
    return AddedPinOut(pin=pin_out(added.pin), change=added.change, indexed=added.indexed)


@router.delete("/pins/{pin_id}", status_code=204, response_class=Response, summary="Remove a pin everywhere")
def delete_pin(shared: Shared, pin_id: PinId) -> Response:
    with blame("pin_id"):
        shared.writer.delete([pin_id])
    return Response(status_code=204)


@router.post("/detect", response_model=DetectionsOut, summary="Objects in an uploaded image or a pin")
async def detect(
    shared: Shared,
    image: Annotated[UploadFile | None, File()] = None,
    pin_id: Annotated[str | None, Form(pattern=PIN_ID, max_length=256)] = None,
    min_score: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> DetectionsOut:
    with blame("image" if pin_id is None else "pin_id"):
        one_source(image, pin_id)
        data = None if pin_id is not None else await upload_bytes(image)
        name = f"pin {pin_id}" if pin_id is not None else image.filename or "upload"
        return await run(_detect, shared, data, pin_id, name, min_score)


def _detect(
    shared: Service, data: bytes | None, pin_id: str | None, name: str, min_score: float | None
) -> DetectionsOut:
    settings = shared.settings
    if data is None:
        data = shared.searcher.pin(pin_id).image_bytes(settings.fetch_timeout_s)
    with shared.images:
        picture = decode_image(data, name, shared.searcher.settings.max_image_pixels).image  # boxes in its pixels
        detector = shared.searcher.detector()
        found = detector.detect(picture, settings.min_score if min_score is None else min_score)
    dominant = dominant_object(found, *picture.size, settings.dominant_area, settings.dominant_score)
    objects = [ObjectOut(box=list(d.box), label=d.label, score=d.score, dominant=d is dominant) for d in found]
    return DetectionsOut(detector=detector.name, width=picture.width, height=picture.height, objects=objects)


async def run(function: Callable[..., T], *args: object) -> T:
    """Run blocking work (embedding, FAISS, SQLite, writing) in the thread pool, off the event loop."""
    return await run_in_threadpool(function, *args)
