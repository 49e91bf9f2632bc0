"""`viscover serve`: the REST API and the web page over a home (FastAPI; install with `viscover[serve]`).

Nothing outside this package imports it, so the core installs and runs without FastAPI.
"""

from viscover.serve.app import create_app

__all__ = ["create_app"]
