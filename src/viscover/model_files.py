"""Finding, checking and (for users online) fetching model files: one models directory for everything.

Backbones and detectors never download at import or in tests; a missing file is an error that says where
to put it, and a fetched or found file is checked against its SHA-256 before a model is built from it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from viscover.config import Settings
from viscover.errors import WeightsUnavailableError
from viscover.storage import atomic_path

PYTORCH_MODELS = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class ModelFile:
    """A file a model needs, by its place under the models directory and its published checksum."""

    relative_path: str  # e.g. "yolox-nano/yolox_nano.onnx"
    sha256: str
    url: str | None = None  # a direct download a user online can fetch it from
    source: str = ""  # where it comes from when there is no direct download (an archive, a release page)

    def locate(self, settings: Settings) -> Path:
        """The verified file under the models directory; fetched first when missing and allowed."""
        path = settings.model_files / self.relative_path
        if not path.is_file():
            if self.url is None or not settings.allow_download:
                where = f" (from {self.source})" if self.source else ""
                if self.url:
                    where = f", or fetch it from {self.url} with VISCOVER_ALLOW_DOWNLOAD=1"
                raise WeightsUnavailableError(
                    f"model file {path} not found: put {Path(self.relative_path).name} (SHA-256 {self.sha256}) "
                    f"there, point VISCOVER_MODELS_DIR / --models-dir at a folder holding "
                    f"{self.relative_path}{where}"
                )
            fetch(self.url, path, settings.fetch_timeout_s, sha256=self.sha256)
        digest = sha256_of(path)
        if digest != self.sha256:
            raise WeightsUnavailableError(
                f"model file {path} has SHA-256 {digest}, expected {self.sha256}: it is corrupt, truncated or a "
                "different version; replace it"
            )
        return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, timeout_s: float, *, sha256: str | None = None, sha256_prefix: str = "") -> Path:
    """Download `url` to `dest` atomically; a checksum mismatch leaves nothing behind and says so."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            raise WeightsUnavailableError(f"could not download {url}: {exc}") from exc
        digest = sha256_of(tmp)
        if (sha256 and digest != sha256) or not digest.startswith(sha256_prefix):
            expected = sha256 or f"{sha256_prefix}…"
            raise WeightsUnavailableError(f"download of {url} has SHA-256 {digest}, expected {expected}")
    return dest


def torchvision_weights(url: str, settings: Settings) -> Path:
    """A torchvision checkpoint by its published URL: from the models directory, the torch hub cache, or a
    download (through `download_mirror` when set) whose SHA-256 must start with the hash in its file name."""
    import torch

    filename = url.rsplit("/", 1)[-1]
    candidates = [settings.model_files / filename, Path(torch.hub.get_dir()) / "checkpoints" / filename]
    for path in candidates:
        if path.is_file():
            return path
    if not settings.allow_download:
        raise WeightsUnavailableError(
            f"weights {filename} not found; put it in {' or '.join(map(str, candidates))} "
            f"(from {url}) or allow downloads (VISCOVER_ALLOW_DOWNLOAD=1)"
        )
    if settings.download_mirror and url.startswith(PYTORCH_MODELS):
        url = settings.download_mirror.rstrip("/") + "/" + url.removeprefix(PYTORCH_MODELS)
    match = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return fetch(url, candidates[-1], settings.fetch_timeout_s, sha256_prefix=match.group(1) if match else "")
