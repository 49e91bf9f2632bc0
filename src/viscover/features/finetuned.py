"""Backbones fine-tuned into a home (`viscover finetune NAME`), found by name under HOME/backbones/NAME.

Kept apart from the training code so that naming or listing them never imports PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.features.registry import BackboneSpec, backbone_spec, check_name

if TYPE_CHECKING:
    from torch import nn

LEGACY_TEMPERATURE = 0.05  # backbones saved before the temperature was recorded used this one


def finetuned_dir(name: str, settings: Settings) -> Path:
    return settings.home / "backbones" / check_name("backbone", name)


def finetuned_spec(name: str, settings: Settings) -> BackboneSpec | None:
    """The registry entry of a backbone fine-tuned into this home, or None if there is none."""
    folder = finetuned_dir(name, settings)
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    base = backbone_spec(meta["base"], settings)
    config = meta["config"]

    def build(build_settings: Settings) -> nn.Module:
        import torch

        from viscover.features.finetune import with_new_classifier

        network = with_new_classifier(
            base.build(build_settings),
            base,
            len(meta["classes"]),
            config.get("head", "linear"),  # backbones made before the cosine head have none
            config.get("temperature", LEGACY_TEMPERATURE),
        )
        network.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        return network

    return BackboneSpec(
        name=name,
        build=build,
        weight_files=lambda _settings: [folder / "model.pt"],  # the whole state dict, base layers included
        preprocess=base.preprocess,
        layers=base.layers,
        classifier=base.classifier,
        description=f"{meta['base']} fine-tuned on {len(meta['classes'])} catalog classes",
        default_layer=base.default_layer,
    )


def held_out_keys(name: str, settings: Settings) -> set[int]:
    """Pin keys that the fine-tuned backbone `name` never trained on."""
    meta_path = finetuned_dir(name, settings) / "meta.json"
    if not meta_path.exists():
        raise ViscoverError(f"no fine-tuned backbone {name!r} under {settings.home / 'backbones'}")
    return set(json.loads(meta_path.read_text())["held_out"])
