"""One real uvicorn server on a loopback port for the whole session, over a copy of the small indexed home;
tests that need another configuration (an API key, a home to fuzz) start their own. The page's tests drive it in
Debian's chromium (through Playwright) and leave screenshots in artifacts/screenshots/."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.conftest import caltech_image
from viscover.config import Settings
from viscover.serve import create_app


class LiveServer:
    """A uvicorn server in a thread of the test process, on a port the OS picks."""

    def __init__(self, settings: Settings) -> None:
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.app = config.app

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start(home: Path, **overrides: object) -> Iterator[LiveServer]:
    server = LiveServer(Settings.load(home, **overrides))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served_home(indexed_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(indexed_home, home)
    return home


@pytest.fixture(scope="session")
def server(served_home: Path) -> Iterator[LiveServer]:
    # dots on, kept on the detector's score alone: these tests check how dots work, not the shipped thresholds
    yield from start(served_home, dots=True, dot_min_conformity=0.0)


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as session:
        yield session


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An airplane on the left and a leopard on the right, neither image in the catalog."""
    left = Image.open(caltech_image("airplanes", 20)).convert("RGB").resize((300, 220))
    right = Image.open(caltech_image("Leopards", 20)).convert("RGB").resize((300, 220))
    picture = Image.new("RGB", (600, 220))
    picture.paste(left, (0, 0))
    picture.paste(right, (300, 0))
    path = tmp_path_factory.mktemp("scene") / "scene.jpg"
    picture.save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def ikea_server(ikea_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over a copy of the ikea-rooms home, whose rooms are boards and whose ranker is trained."""
    home = tmp_path_factory.mktemp("served-ikea") / "home"
    shutil.copytree(ikea_home, home)
    yield from start(home)


SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    """A page of Debian's headless chromium (never a browser Playwright downloads), one per test module."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: .ci/run installs it with apt-get")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def screenshot(page: Page, name: str) -> None:
    """The whole page, as artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
