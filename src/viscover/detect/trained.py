"""Detectors trained into a home (`viscover detect train --name NAME`), found by name under
HOME/detectors/NAME. Kept apart from the training code so that listing them never imports PyTorch."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from viscover.config import Settings
from viscover.detect.detectors.torchvision_detectors import TorchDetector
from viscover.errors import WeightsUnavailableError
from viscover.features import check_name


def detector_dir(name: str, settings: Settings) -> Path:
    return settings.home / "detectors" / check_name("detector", name)


def load_trained_detector(name: str, settings: Settings, threads: int = 1) -> TorchDetector | None:
    """A detector made by `train_detector`, or None when the home has none by that name."""
    folder = detector_dir(name, settings)
    if not (folder / "meta.json").is_file() or not (folder / "model.pt").is_file():
        return None
    import torch

    from viscover.detect.train import DetectTrainConfig, build_model

    try:
        meta = json.loads((folder / "meta.json").read_text())
        config = DetectTrainConfig(**meta["config"])
        model = build_model(config, len(meta["classes"]) + 1, pretrained=False)
        model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    except (ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise WeightsUnavailableError(f"{folder} does not hold a loadable trained detector: {exc}") from exc
    return TorchDetector(name, model, ["__background__", *meta["classes"]], threads)


def trained_detectors(settings: Settings) -> list[str]:
    root = settings.home / "detectors"
    return sorted(p.parent.name for p in root.glob("*/meta.json")) if root.is_dir() else []
