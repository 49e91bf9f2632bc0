"""The web page: one HTML shell for the search view (/), a pin's closeup (/pins/ID) and Lens (/lens); the
scripts under /static draw them from the API. The shell and its scripts hold no catalog data, so they load without
the API key, and the page asks for the key when the API wants one."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STATIC = Path(__file__).parent / "static"
SHELL = (STATIC / "index.html").read_text()
router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/pins/{pin_id}")
@router.get("/lens")
def page() -> HTMLResponse:
    """The search view, a closeup or Lens: the script tells them apart by the address."""
    return HTMLResponse(SHELL)
