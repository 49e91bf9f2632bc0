"""Turning images into feature vectors fast: ONNX Runtime (exported once, cached, checked against
PyTorch) with a PyTorch fallback, and decoding overlapped with inference in worker threads."""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadImageError
from viscover.features.registry import FeatureNet
from viscover.ingest.images import read_bytes
from viscover.storage import atomic_path

log = logging.getLogger(__name__)

EXPORT_TOLERANCE = 1e-3  # max |onnx - torch| relative to the feature scale accepted at export time


class Embedder:
    """Runs a FeatureNet on preprocessed batches, through ONNX Runtime when it exports, else PyTorch."""

    def __init__(self, net: FeatureNet, settings: Settings) -> None:
        self.net = net
        self.preprocess = net.spec.preprocess
        self.runtime = "torch"
        self._session = None
        if settings.runtime != "torch":
            try:
                self._session = _onnx_session(net, settings.model_cache)
                self.runtime = "onnx"
            except Exception as exc:  # any exporter or runtime failure means: use PyTorch
                if settings.runtime == "onnx":
                    raise
                log.warning("%s: ONNX export failed (%s); using PyTorch", net.key, exc)

    @property
    def key(self) -> str:
        return self.net.key

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N,3,H,W) float32 → (N,D) float32."""
        if self._session is not None:
            return self._session.run(None, {"images": batch})[0]
        with torch.inference_mode():
            return self.net(torch.from_numpy(batch)).numpy()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed in-memory RGB images (queries, crops)."""
        return self.run(np.stack([self.preprocess(image) for image in images]))


@dataclass
class EmbeddedBatch:
    """One batch of extraction output: the keys that worked, their vectors, and those that failed."""

    keys: list[int]
    vectors: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)


def embed_locations(
    embedder: Embedder,
    items: Sequence[tuple[int, str]],
    settings: Settings,
    progress: bool = True,
) -> Iterator[EmbeddedBatch]:
    """Embed (key, location) items batch by batch; decoding runs `decode_workers` threads ahead."""
    size = settings.batch_size

    def load(location: str) -> np.ndarray:
        return embedder.preprocess(_open_for_model(location, embedder.preprocess.resize, settings))

    with (
        ThreadPoolExecutor(settings.decode_workers) as pool,
        tqdm(total=len(items), unit="img", desc=f"extract {embedder.key}", disable=not progress) as bar,
    ):
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        pending: list[list[Future]] = []
        for chunk_index in range(len(chunks) + 1):
            if chunk_index < len(chunks):  # keep one batch decoding while the model runs on the last
                pending.append([pool.submit(load, location) for _, location in chunks[chunk_index]])
            if chunk_index == 0:
                continue
            chunk, futures = chunks[chunk_index - 1], pending.pop(0)
            keys, arrays, failures = [], [], []
            for (key, location), future in zip(chunk, futures, strict=True):
                try:
                    arrays.append(future.result())
                    keys.append(key)
                except BadImageError as exc:
                    failures.append((location, str(exc)))
            vectors = embedder.run(np.stack(arrays)) if arrays else np.empty((0, 0), np.float32)
            bar.update(len(chunk))
            yield EmbeddedBatch(keys, vectors, failures)


def _open_for_model(location: str, min_side: int, settings: Settings) -> Image.Image:
    """Decode at reduced size where JPEG allows (draft mode): the model only needs `min_side` pixels."""
    data = read_bytes(location, settings.fetch_timeout_s)
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (min_side, min_side))
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{location}: cannot decode ({exc})") from exc


def _weights_digest(net: FeatureNet) -> str:
    digest = hashlib.sha256(net.key.encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _onnx_session(net: FeatureNet, cache: Path):
    """Load the cached ONNX export of `net`, exporting and verifying it first if it is missing."""
    import onnxruntime as ort

    crop = net.spec.preprocess.crop
    path = cache / f"{net.key.replace('/', '-')}-{_weights_digest(net)}.onnx"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not path.exists():
        sample = torch.rand(2, 3, crop, crop) * 4 - 2
        with atomic_path(path) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's constant-folding notes are not actionable
                torch.onnx.export(
                    net,
                    (sample,),
                    str(tmp),
                    input_names=["images"],
                    output_names=["features"],
                    dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                )
            session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])
            with torch.inference_mode():
                expected = net(sample).numpy()
            got = session.run(None, {"images": sample.numpy()})[0]
            error = float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-6))
            if error > EXPORT_TOLERANCE:
                raise RuntimeError(f"ONNX output differs from PyTorch by {error:.2e} (relative)")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
