from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import caltech_image
from viscover import Engine
from viscover.config import Settings
from viscover.errors import UnknownNameError, ViscoverError
from viscover.features import Embedder, create_backbone
from viscover.features.finetune import FinetuneConfig, finetune, held_out_keys, split_catalog

TINY = FinetuneConfig(name="tiny", epochs=1, batch_size=4, max_steps=2, train_fraction=0.5, val_fraction=0.2)


def test_split_is_seeded_and_shares_no_pin(engine: Engine) -> None:
    split = split_catalog(engine.catalog, TINY)
    train, val = {k for k, _ in split.train}, {k for k, _ in split.val}
    assert not (train & val) and not (train & set(split.held_out)) and not (val & set(split.held_out))
    assert len(train) + len(val) + len(split.held_out) == 30
    assert (len(train), len(val)) == (15, 5) and len(split.classes) == 5
    assert split_catalog(engine.catalog, TINY) == split


def test_unsplittable_catalogs_are_refused(engine: Engine) -> None:
    with pytest.raises(ViscoverError, match="at least two classes"):
        split_catalog(
            engine.catalog, dataclasses.replace(TINY, exclude=("accordion", "airplanes", "Leopards", "Motorbikes"))
        )


def test_one_epoch_gives_a_loadable_backbone_with_new_features(engine: Engine) -> None:
    settings = engine.settings
    report = finetune(engine.catalog, TINY, settings, progress=False)
    assert report.epochs_run == 1 and len(report.history) == 1
    tuned = create_backbone("tiny", "pool", settings)
    with pytest.raises(UnknownNameError):
        create_backbone("tiny", "pool")  # only known inside the home it was trained in
    images = [Image.open(caltech_image("pagoda", 20)).convert("RGB")]
    pretrained_features = Embedder(create_backbone("efficientnet_lite0"), settings).embed(images)
    tuned_embedder = Embedder(tuned, settings)
    assert tuned_embedder.runtime == "onnx"  # exported like any other backbone
    assert not np.allclose(tuned_embedder.embed(images), pretrained_features, atol=1e-4)
    logits = Embedder(create_backbone("tiny", "logits", settings), settings).embed(images)
    assert logits.shape == (1, 5) and np.abs(logits).max() <= 1 / TINY.temperature + 1e-4  # cosine head
    held = held_out_keys("tiny", settings)
    assert held and not held & {k for k, _ in split_catalog(engine.catalog, TINY).train}

    again = finetune(engine.catalog, TINY, settings, progress=False)  # resumes: nothing left to do
    assert again.epochs_run == 1 and again.history == report.history
    with pytest.raises(ViscoverError, match="other settings"):
        finetune(engine.catalog, dataclasses.replace(TINY, lr=0.5), settings, progress=False)
    with pytest.raises(ViscoverError, match="built-in backbone"):
        finetune(engine.catalog, dataclasses.replace(TINY, name="resnet50"), settings, progress=False)


def test_held_out_of_unknown_backbone(tmp_path: Path) -> None:
    with pytest.raises(ViscoverError, match="no fine-tuned backbone 'nope'"):
        held_out_keys("nope", Settings(home=tmp_path))


def test_linear_head_loads_back_and_unknown_heads_are_refused(engine: Engine) -> None:
    config = dataclasses.replace(TINY, name="tiny_linear", head="linear")
    finetune(engine.catalog, config, engine.settings, progress=False)
    network = create_backbone("tiny_linear", "logits", engine.settings)
    assert network(torch.zeros(1, 3, 224, 224)).shape == (1, 5)
    with pytest.raises(ViscoverError, match="unknown classifier head 'arcface'"):
        finetune(engine.catalog, dataclasses.replace(config, name="bad", head="arcface"), engine.settings)
    assert not (engine.settings.home / "backbones" / "bad").exists()
