"""Admission: a per-caller rate limit answered 429 over a real server, and a bound on requests in flight that
answers 503 at once instead of queueing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.serve.conftest import start
from viscover.serve.observe import Admission


def test_a_caller_over_its_rate_gets_429_and_others_are_still_served(served_home: Path) -> None:
    for server in start(served_home, rate_limit_per_minute=3, api_key="k1"):
        with httpx.Client(base_url=server.url, timeout=60, headers={"X-API-Key": "k1"}) as client:
            answers = [client.get("/v1/search/text", params={"q": "leopard"}) for _ in range(4)]
            assert [a.status_code for a in answers[:3]] == [200, 200, 200]
            refused = answers[3]
            assert refused.status_code == 429 and refused.headers["retry-after"] == "20"
            assert refused.json()["error"]["type"] == "RateLimited"
            assert client.get("/healthz").status_code == 200  # never limited
        with httpx.Client(base_url=server.url, timeout=60) as anonymous:  # its own bucket: it reaches the key check
            assert anonymous.get("/v1/search/text", params={"q": "leopard"}).status_code == 401  # no key


def test_requests_past_the_bound_in_flight_get_503_at_once() -> None:
    release = asyncio.Event()

    async def slow_app(scope, receive, send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def scenario() -> list[int]:
        admission = Admission(slow_app, in_flight=1, per_minute=None, keyed=False)
        sent: list[list[dict]] = [[], []]

        def request(n: int):
            scope = {"type": "http", "path": "/v1/search", "method": "POST", "headers": [], "client": ("1.2.3.4", 1)}

            async def send(message: dict) -> None:
                sent[n].append(message)

            return admission(scope, None, send)

        first = asyncio.create_task(request(0))
        await asyncio.sleep(0.01)  # the first is in flight, waiting
        await asyncio.wait_for(request(1), timeout=1)  # answered at once, not queued behind it
        release.set()
        await first
        assert admission.active == 0
        return [messages[0]["status"] for messages in sent]

    assert asyncio.run(scenario()) == [200, 503]


def test_cors_answers_only_the_origins_named(served_home: Path) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    for server in start(served_home, allowed_origins=["https://shop.example"]):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            allowed = client.options("/v1/search", headers={"Origin": "https://shop.example", **preflight})
            assert allowed.headers.get("access-control-allow-origin") == "https://shop.example"
            other = client.options("/v1/search", headers={"Origin": "https://evil.example", **preflight})
            assert "access-control-allow-origin" not in other.headers
    for server in start(served_home):  # by default no origin is named: no CORS headers at all
        with httpx.Client(base_url=server.url, timeout=60) as client:
            closed = client.get("/healthz", headers={"Origin": "https://shop.example"})
            assert "access-control-allow-origin" not in closed.headers
