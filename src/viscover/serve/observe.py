"""What a server tells its operators and what it lets in: a request id on every response and access-log line,
Prometheus counters and latency histograms per route, a hard cap on request bodies (413 before the body is
read), host and origin checks, and admission (a bound on requests in flight, an optional rate limit)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("viscover.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One app's Prometheus metrics, in a registry of its own (two apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "viscover_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "viscover_request_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class Observe:
    """ASGI middleware: request id (the client's X-Request-ID if well-formed, else a new one), one
    access-log line and one metrics observation per request, labelled by route template, not raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status, start = 500, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(seconds)
            client = scope.get("client") or ("-", 0)
            path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]  # as sent: no decoded newlines
            access_log.info(
                '%s %s "%s %s" %d %.1fms', request_id, client[0], scope["method"], path, status, 1000 * seconds
            )


class BodyLimit:
    """ASGI middleware: a request whose declared or streamed body passes `max_bytes` gets 413 at once; a
    declared length is refused before a byte of the body is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await answer_error(scope, send, 413, "PayloadTooLarge", self.message, "image")
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a body without a declared length: stop reading it
                    raise TooLarge(self.message)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def message(self) -> str:
        return f"the request body is larger than {self.max_bytes / 2**20:g} MB (VISCOVER_MAX_UPLOAD_MB)"


class TooLarge(HTTPException):
    """Raised while a body streams in; an HTTPException, so the body parser lets it through as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)
        self.field = "image"


class Guard:
    """ASGI middleware: answer only to the host names this server is for (a page on another site cannot
    reach a loopback server through DNS rebinding), and refuse writes sent from other sites' pages."""

    def __init__(self, app: ASGIApp, hosts: set[str] | None, origins: set[str]) -> None:
        self.app, self.hosts, self.origins = app, hosts, origins  # hosts None: any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if self.hosts is not None and name.lower() not in self.hosts:
            await answer_error(
                scope, send, 400, "UnknownHost", f"host {host!r} is not served here (VISCOVER_ALLOWED_HOSTS)"
            )
            return
        origin = headers.get(b"origin", b"").decode("latin-1")
        cross_site = headers.get(b"sec-fetch-site") == b"cross-site"
        foreign = (origin or cross_site) and origin not in (f"http://{host}", f"https://{host}", *self.origins)
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and foreign:
            message = f"writes from {origin or 'another site'} are refused (VISCOVER_ALLOWED_ORIGINS)"
            await answer_error(scope, send, 403, "CrossSiteRequest", message)
            return
        await self.app(scope, receive, send)


class Admission:
    """ASGI middleware: at most `in_flight` requests at once, each caller (its API key where the server has
    one, else its address) at most `per_minute` requests a minute (a token bucket); past either, a fast 503 or
    429 with Retry-After, never a request left waiting. `/healthz` and static files are always answered."""

    def __init__(self, app: ASGIApp, in_flight: int, per_minute: int | None, keyed: bool) -> None:
        self.app, self.in_flight, self.per_minute, self.keyed = app, in_flight, per_minute, keyed
        self.active = 0
        self.buckets: dict[str, tuple[float, float]] = {}  # caller → (tokens, when counted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        if self.per_minute is not None and not self._take(self._caller(scope)):
            message = f"more than {self.per_minute} requests a minute (VISCOVER_RATE_LIMIT_PER_MINUTE): slow down"
            await answer_error(scope, send, 429, "RateLimited", message, retry_after=60 / self.per_minute)
            return
        if self.active >= self.in_flight:
            message = f"the server is busy with {self.active} requests (VISCOVER_MAX_REQUESTS_IN_FLIGHT): try again"
            await answer_error(scope, send, 503, "Overloaded", message, retry_after=1)
            return
        self.active += 1  # one event loop: no lock needed between the check and the count
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    def _caller(self, scope: Scope) -> str:
        key = dict(scope["headers"]).get(b"x-api-key")
        if key and self.keyed:  # without a server key, a made-up header must not buy a fresh bucket
            return "key:" + hashlib.sha256(key).hexdigest()
        return "address:" + (scope.get("client") or ("-", 0))[0]

    def _take(self, caller: str) -> bool:
        """Take one token from the caller's bucket (refilled at `per_minute`, holding at most that many)."""
        now = time.monotonic()
        tokens, then = self.buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - then) * self.per_minute / 60)
        if len(self.buckets) > 100_000:  # callers that came once must not grow memory for ever
            self.buckets.clear()
        self.buckets[caller] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        return tokens >= 1


async def answer_error(
    scope: Scope,
    send: Send,
    status: int,
    kind: str,
    message: str,
    field: str | None = None,
    retry_after: float | None = None,
) -> None:
    """A JSON error answer, in the API's error shape, sent from middleware (the connection is then closed)."""
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps({"error": {"type": kind, "message": message, "field": field, "request_id": request_id}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body.encode()})
