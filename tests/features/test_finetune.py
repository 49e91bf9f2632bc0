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
from viscover.errors import BadArgumentError, UnknownNameError, ViscoverError
from viscover.features import Embedder, model_key
from viscover.features.finetune import FinetuneConfig, finetune, split_catalog
from viscover.features.finetuned import held_out_keys
from viscover.features.network import create_backbone
from viscover.search import BytesQuery

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
    with pytest.raises(UnknownNameError):
        create_backbone("tiny", "pool")  # only known inside the home it was trained in
    images = [Image.open(caltech_image("pagoda", 20)).convert("RGB")]
    pretrained_features = Embedder.load(model_key("efficientnet_lite0", "pool", settings), settings, 1).embed(images)
    tuned_embedder = Embedder.load(model_key("tiny", "pool", settings), settings, 1)
    assert tuned_embedder.runtime == "onnx"  # exported like any other backbone
    assert not np.allclose(tuned_embedder.embed(images), pretrained_features, atol=1e-4)
    logits = Embedder.load(model_key("tiny", "logits", settings), settings, 1).embed(images)
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


def test_names_with_a_path_are_refused_before_anything_is_written(engine: Engine) -> None:
    for name in ("../../x", "a/b", ".hidden", ""):
        with pytest.raises(BadArgumentError, match="plain name"):
            finetune(engine.catalog, dataclasses.replace(TINY, name=name), engine.settings, progress=False)
    assert not (engine.settings.home / "backbones").exists() and not (engine.settings.home.parent / "x").exists()


def test_retraining_under_the_same_name_re_extracts_and_queries_use_the_new_weights(engine: Engine) -> None:
    """The feature space is named by the weights digest: new weights under an old name are a new space."""
    finetune(engine.catalog, TINY, engine.settings, progress=False)
    with Engine.open(engine.settings.home, backbone="tiny") as tuned:
        first = tuned.index(progress=False)
        assert first.extracted == 30 and first.rebuilt
        weights = engine.settings.home / "backbones" / "tiny" / "model.pt"
        state = torch.load(weights, weights_only=True)
        torch.manual_seed(1)
        state = {
            name: t * (1 + 0.02 * torch.randn_like(t)) if t.is_floating_point() else t for name, t in state.items()
        }
        torch.save(state, weights)  # as a new training run under the same name would
        second = tuned.index(progress=False)
        assert second.model != first.model and second.extracted == 30 and second.rebuilt
        pin = next(iter(tuned.catalog))
        top = tuned.search(BytesQuery(Path(pin.location).read_bytes()), k=3, metric="l2")[0]
        assert top.pin_id == pin.pin_id and top.distance == pytest.approx(0, abs=1e-3)
