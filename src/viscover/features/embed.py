"""Turning images into feature vectors fast: ONNX Runtime (exported once, cached under the feature space's
name, checked against PyTorch) with a PyTorch fallback, and decoding overlapped with inference.

A feature space whose export is cached loads without importing PyTorch, which keeps a cold `viscover
search` fast; the export carries its own preprocessing, so the read path needs nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import BadImageError, WeightsUnavailableError
from viscover.features.registry import Preprocess, parse_model_key
from viscover.ingest.images import decode_for_model, read_bytes
from viscover.storage import atomic_path
from viscover.threads import torch_threads

if TYPE_CHECKING:
    from viscover.features.network import FeatureNet

log = logging.getLogger(__name__)

EXPORT_TOLERANCE = 1e-3  # max |onnx - torch| relative to the feature scale accepted at export time
PREPROCESS_METADATA = "viscover.preprocess"


class Embedder:
    """Runs one feature space (a model key) on preprocessed batches; thread-safe, so one serves all requests."""

    def __init__(
        self, key: str, preprocess: Preprocess, run: Callable[[np.ndarray], np.ndarray], runtime: str, threads: int
    ) -> None:
        self.key, self.preprocess, self.runtime, self.threads = key, preprocess, runtime, threads
        self._run = run

    @classmethod
    def load(cls, key: str, settings: Settings, threads: int) -> Embedder:
        """The embedder of feature space `key`, running on `threads` threads.

        From its cached ONNX export when there is one; otherwise the network is built, checked to still have
        the weights `key` names, exported and verified (or run in PyTorch if it will not export)."""
        path = onnx_path(key, settings)
        if settings.runtime != "torch" and path.exists():
            return cls._from_onnx(key, path, threads)
        from viscover.features.network import create_backbone

        backbone, layer, _ = parse_model_key(key)
        net = create_backbone(backbone, layer, settings)
        if net.key != key:
            raise WeightsUnavailableError(
                f"features {key} were made with weights that backbone {backbone!r} no longer has (now {net.key}) "
                "and whose export is not cached: run `viscover index` to re-extract them"
            )
        if settings.runtime != "torch":
            try:
                _export(net, path)
                return cls._from_onnx(key, path, threads)
            except Exception as exc:  # any exporter or runtime failure means: use PyTorch
                if settings.runtime == "onnx":
                    raise
                log.warning("%s: ONNX export failed (%s); using PyTorch", key, exc)
        return cls(key, net.spec.preprocess, _torch_runner(net, threads), "torch", threads)

    @classmethod
    def _from_onnx(cls, key: str, path: Path, threads: int) -> Embedder:
        session = _session(path, threads)
        preprocess = Preprocess(**json.loads(session.get_modelmeta().custom_metadata_map[PREPROCESS_METADATA]))
        return cls(key, preprocess, lambda batch: session.run(None, {"images": batch})[0], "onnx", threads)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N,3,H,W) float32 → (N,D) float32."""
        return self._run(batch)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed decoded RGB images (queries, crops)."""
        return self.run(np.stack([self.preprocess(image) for image in images]))


def onnx_path(key: str, settings: Settings) -> Path:
    """Where the export of feature space `key` is cached; the weights digest is part of the name."""
    return settings.model_cache / (re.sub(r"[^A-Za-z0-9_.-]", "-", key.replace("@", "-")) + ".onnx")


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads wait instead of spinning, which took CPU from the decoding threads and Ray's read tasks
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _torch_runner(net: FeatureNet, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    torch_threads(threads)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(batch)).numpy()

    return run


def _export(net: FeatureNet, path: Path) -> None:
    """Export `net` to ONNX with its preprocessing as metadata, and keep it only if it matches PyTorch."""
    import onnx
    import torch

    crop = net.spec.preprocess.crop
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
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(
            model, {PREPROCESS_METADATA: json.dumps(dataclasses.asdict(net.spec.preprocess)), "viscover.key": net.key}
        )
        onnx.save(model, str(tmp))
        with torch.inference_mode():
            expected = net(sample).numpy()
        got = _session(tmp, 1).run(None, {"images": sample.numpy()})[0]
        error = float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-6))
        if error > EXPORT_TOLERANCE:
            raise RuntimeError(f"ONNX output differs from PyTorch by {error:.2e} (relative)")


def load_pixels(location: str, preprocess: Preprocess, settings: Settings) -> np.ndarray:
    """The image at `location` read, decoded at reduced size, resized and cropped for the network (uint8 HWC:
    `preprocess.normalize` makes the input); a bad image raises BadImageError."""
    data = read_bytes(location, settings.fetch_timeout_s)
    return preprocess.pixels(decode_for_model(data, location, preprocess.resize, settings.max_image_pixels))


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

    def load(location: str) -> np.ndarray:  # normalised here too: the decoding threads do it beside the model
        return embedder.preprocess.normalize(load_pixels(location, embedder.preprocess, settings)[None])[0]

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
