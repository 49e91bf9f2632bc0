from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from tests.conftest import caltech_image
from viscover.config import Settings
from viscover.errors import UnknownNameError, WeightsUnavailableError
from viscover.features import Embedder, list_backbones, model_key
from viscover.features.network import create_backbone
from viscover.features.registry import Preprocess

IMAGENET_ACCORDION = 401


@pytest.fixture(scope="module")
def logits_net():
    return create_backbone("efficientnet_lite0", "logits")


def test_registry_lists_default_and_torchvision_nets() -> None:
    names = list_backbones()
    assert {"efficientnet_lite0", "resnet152", "vgg16", "alexnet", "googlenet"} <= set(names)


def test_pretrained_weights_recognise_an_accordion(logits_net) -> None:
    image = Image.open(caltech_image("accordion", 2)).convert("RGB")
    batch = torch.from_numpy(logits_net.spec.preprocess(image)[None])
    with torch.inference_mode():
        assert int(logits_net(batch).argmax()) == IMAGENET_ACCORDION


@pytest.mark.parametrize(("layer", "dim"), [("pool", 1280), ("logits", 1000), ("block5", 80)])
def test_layer_taps_have_the_layer_width(layer: str, dim: int) -> None:
    net = create_backbone("efficientnet_lite0", layer)
    with torch.inference_mode():
        assert net(torch.zeros(2, 3, 224, 224)).shape == (2, dim)


def test_unknown_names_are_clear() -> None:
    with pytest.raises(UnknownNameError, match="unknown backbone 'resnet9000'"):
        create_backbone("resnet9000")
    with pytest.raises(UnknownNameError, match="no layer 'fc42'"):
        create_backbone("efficientnet_lite0", "fc42")


def test_torchvision_weights_load_from_a_local_file(tmp_path: Path) -> None:
    url = torchvision.models.get_model_weights("resnet50").DEFAULT.url
    reference = torchvision.models.resnet50(weights=None)
    torch.save(reference.state_dict(), tmp_path / url.rsplit("/", 1)[-1])
    settings = Settings(home=tmp_path, models_dir=tmp_path, allow_download=False)
    net = create_backbone("resnet50", "pool5", settings)
    assert torch.equal(net.body.conv1.weight, reference.conv1.weight)
    with torch.inference_mode():
        assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 2048)


def test_missing_torchvision_weights_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    settings = Settings(home=tmp_path, allow_download=False)
    with pytest.raises(WeightsUnavailableError, match=r"vgg16-.*\.pth"):
        create_backbone("vgg16", "fc6", settings)


def test_onnx_runtime_matches_pytorch_on_real_images(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, cache_dir=tmp_path / "models")
    key = model_key("efficientnet_lite0", "pool", settings)
    onnx = Embedder.load(key, settings, threads=1)
    eager = Embedder.load(key, Settings(home=tmp_path, runtime="torch"), threads=1)
    assert (onnx.runtime, eager.runtime) == ("onnx", "torch")
    images = [Image.open(caltech_image(c, 3)).convert("RGB") for c in ("pagoda", "Leopards")]
    np.testing.assert_allclose(onnx.embed(images), eager.embed(images), rtol=1e-3, atol=1e-3)
    exported = list((tmp_path / "models").glob("*.onnx"))
    assert len(exported) == 1 and key.rpartition("@")[2] in exported[0].name
    mtime = exported[0].stat().st_mtime_ns
    again = Embedder.load(key, settings, threads=1)  # reuses the cached export, preprocessing included
    assert exported[0].stat().st_mtime_ns == mtime and again.preprocess == onnx.preprocess


def test_normalize_matches_torchvision_to_float_tolerance() -> None:
    """The one-pass normalisation gives torchvision's ToTensor + Normalize, in NCHW order."""
    from torchvision.transforms import functional

    preprocess = Preprocess(resize=256, crop=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pixels = np.random.default_rng(0).integers(0, 256, (3, 24, 20, 3), dtype=np.uint8)
    expected = torch.stack(
        [functional.normalize(functional.to_tensor(image), preprocess.mean, preprocess.std) for image in pixels]
    )
    got = preprocess.normalize(pixels)
    assert got.dtype == np.float32 and got.shape == (3, 3, 24, 20) and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
