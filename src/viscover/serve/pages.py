"""The web page: one HTML shell for the search view (/) and a pin's closeup (/pins/ID); the script under
/static draws both from the API. The shell and its script hold no catalog data, so they load without the API
key, and the page asks for the key when the API wants one."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def search_page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text())


@router.get("/pins/{pin_id}")
def closeup_page(pin_id: str) -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text())
