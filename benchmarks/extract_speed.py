"""Feature extraction speed end to end (read + decode + resize + model), ONNX Runtime versus PyTorch
eager, measured in the same run on the same images.

    python benchmarks/extract_speed.py --images 400
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from viscover.config import Settings
from viscover.features import Embedder, embed_locations, model_key

CALTECH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "caltech101"


def images_per_second(embedder: Embedder, items: list[tuple[int, str]], settings: Settings) -> float:
    start = time.perf_counter()
    count = sum(len(batch.keys) for batch in embed_locations(embedder, items, settings, progress=False))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--folder", type=Path, default=CALTECH)
    args = parser.parse_args()

    paths = sorted(args.folder.rglob("*.jpg"))
    paths = paths[:: max(1, len(paths) // args.images)][: args.images]  # spread over all classes
    items = [(i, str(p)) for i, p in enumerate(paths)]
    with tempfile.TemporaryDirectory() as home:
        results = {}
        for runtime in ("torch", "onnx"):
            settings = Settings(home=Path(home), runtime=runtime)
            embedder = Embedder.load(model_key(args.backbone, "pool", settings), settings, settings.threads)
            images_per_second(embedder, items[:32], settings)  # warm-up
            results[runtime] = images_per_second(embedder, items, settings)
    print(f"{len(items)} images from {args.folder}, backbone {args.backbone}, batch {settings.batch_size}")
    print(f"{'runtime':<14} {'img/s':>8}")
    for runtime, speed in results.items():
        print(f"{runtime:<14} {speed:>8.1f}")
    print(f"ONNX Runtime / PyTorch eager: {results['onnx'] / results['torch']:.2f}x")


if __name__ == "__main__":
    main()
