"""The server's app factory: one `Service` made in the lifespan and handed to handlers by `Depends`, user
errors mapped to 4xx answers that name the problem (never a traceback), request ids, metrics, an upload cap,
and an optional API key."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

import viscover
from viscover import errors
from viscover.config import Settings
from viscover.serve import api, pages
from viscover.serve.observe import Admission, BodyLimit, Guard, Metrics, Observe
from viscover.serve.schemas import EmbedderOut, ReadyOut
from viscover.serve.service import Service

log = logging.getLogger(__name__)

# The most specific class of a user error decides its status; anything else is a bug: 500, no details.
STATUS = {
    errors.AccessDeniedError: 401,
    errors.UnknownPinError: 404,
    errors.PinConflictError: 409,
    errors.NotIndexedError: 409,
    errors.NotEnoughDataError: 409,
    errors.ExpiredCursorError: 410,
    errors.WeightsUnavailableError: 503,
    errors.WriteLockTimeoutError: 503,
    errors.ShardUnavailableError: 503,
    errors.BadSettingError: 500,
    errors.StoredImageError: 500,
    errors.ViscoverError: 422,  # bad image, crop, argument, name, manifest
}
SERVER_TROUBLE = {
    errors.ShardUnavailableError: "a shard of the index is not answering (its server is restarting): try again",
    errors.WriteLockTimeoutError: "the catalog is busy with another writer: try again in a moment",
    errors.StoredImageError: "this pin's image cannot be read on the server (see its log)",
    errors.WeightsUnavailableError: "a model this needs is not available on the server (see its log)",
}
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has a key")


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """With VISCOVER_API_KEY set, a request must carry it in X-API-Key (compared in constant time)."""
    expected = request.app.state.service.settings.api_key
    given = (key or "").encode("utf-8", "surrogateescape")
    if expected is not None and not (given and secrets.compare_digest(given, expected.get_secret_value().encode())):
        raise errors.AccessDeniedError("this server wants its API key in the X-API-Key header")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A viscover server over `settings.home` (default: settings from the environment)."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = Service(settings)
        threading.Thread(target=app.state.service.warm_up, name="viscover-warm-up", daemon=True).start()
        yield
        app.state.service.close()

    app = FastAPI(
        title="viscover",
        version=viscover.__version__,
        description="Visual search over a catalog of pins (after 'Visual Discovery at Pinterest'): search by "
        "an image or a pin, crop it, page through results, add and remove pins, detect objects.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    metrics = Metrics()
    protected = [Depends(require_api_key)]
    app.include_router(api.router, dependencies=protected)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")

    @app.get("/healthz", summary="The process answers (no key needed)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=ReadyOut, dependencies=protected, summary="Index and models loaded?")
    def readyz(request: Request) -> JSONResponse:
        service: Service = request.app.state.service
        snapshot = service.searcher.snapshot()
        visual, embedder = snapshot.visual, None
        if visual is not None and service.searcher.has_embedder(visual.model):
            loaded = service.searcher.embedder(visual.model)
            embedder = EmbedderOut(model=loaded.key, runtime=loaded.runtime, threads=loaded.threads)
        reason = (
            "no index yet: ingest and index a catalog (or add pins)"
            if visual is None
            else service.warm_up_error or (None if embedder else "loading the embedder")
        )
        body = ReadyOut(
            ready=reason is None,
            reason=reason,
            generation=snapshot.generation.number,
            pins=len(service.searcher.catalog),
            indexed=len(visual.codes) if visual else 0,
            code_bits=visual.bits if visual else None,
            embedder=embedder,
        )
        return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

    @app.get("/metrics", dependencies=protected, summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", dependencies=protected, include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="viscover API")

    @app.exception_handler(errors.ViscoverError)
    async def user_error(request: Request, exc: errors.ViscoverError) -> JSONResponse:
        code = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
        message, field = str(exc), getattr(exc, "field", None)
        if code >= 500:  # the server's own trouble: details (paths, pids) go to its log, not to the client
            log.error("%s: %s", type(exc).__name__, exc)
            message, field = SERVER_TROUBLE.get(type(exc), "the server cannot answer this now: see its log"), None
        return error_response(request, code, type(exc).__name__, message, field)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        field = next((str(p["loc"][-1]) for p in problems if p.get("loc")), None)
        message = "; ".join(f"{'.'.join(map(str, p.get('loc', ())[1:])) or 'request'}: {p['msg']}" for p in problems)
        return error_response(request, 422, "validation", message, field)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(request, exc.status_code, "http", str(exc.detail), getattr(exc, "field", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal", "internal error: see the server log", None)

    if settings.allowed_origins:  # CORS stays closed unless origins are named: no page elsewhere reads answers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 2**20))
    app.add_middleware(
        Admission,
        in_flight=settings.max_requests_in_flight,
        per_minute=settings.rate_limit_per_minute,
        keyed=settings.api_key is not None,
    )
    app.add_middleware(Guard, hosts=served_hosts(settings), origins=set(settings.allowed_origins))
    app.add_middleware(Observe, metrics=metrics)
    return app


def served_hosts(settings: Settings) -> set[str] | None:
    """Host names the server answers to: loopback, its bind address and VISCOVER_ALLOWED_HOSTS; None (any)
    when it binds every interface or the list holds '*'."""
    if "*" in settings.allowed_hosts or settings.serve_host in ("0.0.0.0", "::", ""):
        return None
    return {"127.0.0.1", "localhost", "::1", settings.serve_host.lower(), *(h.lower() for h in settings.allowed_hosts)}


def error_response(request: Request, code: int, kind: str, message: str, field: str | None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = {"error": {"type": kind, "message": message, "field": field, "request_id": request_id}}
    return JSONResponse(body, status_code=code)
