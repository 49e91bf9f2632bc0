"""Model-file download and checks against a real HTTP server on loopback (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from viscover.config import Settings
from viscover.errors import WeightsUnavailableError
from viscover.model_files import ModelFile, fetch, torchvision_weights


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_fetch_checks_the_sha256_and_leaves_nothing_on_mismatch(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    payload = b"model bytes" * 1000
    (root / "m.onnx").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "models" / "m.onnx"
    assert fetch(f"{url}/m.onnx", dest, 5, sha256=digest).read_bytes() == payload
    wrong = tmp_path / "models" / "wrong.onnx"
    with pytest.raises(WeightsUnavailableError, match="expected 0000"):
        fetch(f"{url}/m.onnx", wrong, 5, sha256="0" * 64)
    assert not wrong.exists() and list(wrong.parent.iterdir()) == [dest]
    with pytest.raises(WeightsUnavailableError, match="could not download"):
        fetch(f"{url}/missing.onnx", tmp_path / "x", 5)


def test_model_file_downloads_when_allowed(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    (root / "det.onnx").write_bytes(b"weights")
    spec = ModelFile("det/det.onnx", hashlib.sha256(b"weights").hexdigest(), url=f"{url}/det.onnx")
    offline = Settings(home=tmp_path, models_dir=tmp_path / "models", allow_download=False)
    with pytest.raises(WeightsUnavailableError, match="VISCOVER_ALLOW_DOWNLOAD=1"):
        spec.locate(offline)
    online = Settings(home=tmp_path, models_dir=tmp_path / "models", allow_download=True)
    assert spec.locate(online).read_bytes() == b"weights"


def test_torchvision_weights_come_through_a_mirror_with_the_hash_in_the_name(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = server
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    payload = b"a checkpoint"
    name = f"tiny_coco-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (root / name).write_bytes(payload)
    (root / "bad_coco-12345678.pth").write_bytes(payload)
    settings = Settings(home=tmp_path, models_dir=tmp_path / "models", download_mirror=url, allow_download=True)
    path = torchvision_weights(f"https://download.pytorch.org/models/{name}", settings)
    assert path.read_bytes() == payload and path.parent.name == "checkpoints"
    with pytest.raises(WeightsUnavailableError, match=r"expected 12345678"):
        torchvision_weights("https://download.pytorch.org/models/bad_coco-12345678.pth", settings)
