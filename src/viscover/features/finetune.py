"""Fine-tuning a backbone on the catalog's own labels (section 4: "VGG16 (Pin.)").

The classifier is replaced by one for the catalog's classes and the last part of the network is trained
on a seeded per-class split; the held-out pins (never trained on) are recorded for evaluation. Runs on
the CPU: early layers frozen, augmentation, a checkpoint per epoch (resumable), early stopping on
validation accuracy. The result is a named backbone under HOME/backbones/NAME.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.features.finetuned import finetuned_dir
from viscover.features.registry import BACKBONES, BackboneSpec, Preprocess, backbone_spec
from viscover.ingest import CatalogView
from viscover.storage import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """What to train and how; a checkpoint resumes only with the same config."""

    name: str
    base: str = "efficientnet_lite0"
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3  # of the new classifier; the trainable pretrained layers get a tenth
    trainable_fraction: float = 0.6  # of parameter tensors, counted from the output end
    train_fraction: float = 0.4
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0
    exclude: tuple[str, ...] = ()  # labels never trained on (kept in the held-out set as distractors)
    head: str = "cosine"  # normalized softmax (see CosineClassifier), or "linear": plain softmax
    temperature: float = 0.05  # of the cosine head
    max_steps: int | None = None  # per epoch; for smoke runs


@dataclass
class Split:
    """Pin keys by role; `held_out` shares no image with `train` or `val`."""

    classes: list[str]
    train: list[tuple[int, int]]  # (pin key, class index)
    val: list[tuple[int, int]]
    held_out: list[int]


@dataclass
class FinetuneReport:
    name: str
    epochs_run: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)


def split_catalog(catalog: CatalogView, config: FinetuneConfig) -> Split:
    """A seeded per-class split; classes with fewer than 3 images cannot be split and are refused."""
    by_class: dict[str, list[int]] = defaultdict(list)
    held_out: list[int] = []
    for key, category in catalog.categories().items():
        if category and category not in config.exclude:
            by_class[category].append(key)
        else:
            held_out.append(key)
    if len(by_class) < 2:
        raise ViscoverError("fine-tuning needs a labelled catalog with at least two classes (category column)")
    small = sorted(c for c, keys in by_class.items() if len(keys) < 3)
    if small:
        raise ViscoverError(f"classes with fewer than 3 images cannot be split: {', '.join(small[:10])}")
    rng = np.random.default_rng(config.seed)
    classes = sorted(by_class)
    train, val = [], []
    for index, category in enumerate(classes):
        keys = rng.permutation(by_class[category]).tolist()
        n_train = max(1, int(config.train_fraction * len(keys)))
        n_val = max(1, int(config.val_fraction * len(keys)))
        train += [(k, index) for k in keys[:n_train]]
        val += [(k, index) for k in keys[n_train : n_train + n_val]]
        held_out += keys[n_train + n_val :]
    return Split(classes, train, val, sorted(held_out))


class _Images(Dataset):
    def __init__(self, items: list[tuple[str, int]], transform: v2.Transform) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        location, label = self.items[i]
        with Image.open(location) as image:
            return self.transform(image.convert("RGB")), label


def _transforms(preprocess: Preprocess, train: bool) -> v2.Transform:
    steps = (
        [
            v2.RandomResizedCrop(preprocess.crop, scale=(0.6, 1.0)),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.2, 0.2, 0.2),
        ]
        if train
        else [v2.Resize(preprocess.resize), v2.CenterCrop(preprocess.crop)]
    )
    return v2.Compose(
        [
            *steps,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(preprocess.mean), list(preprocess.std)),
        ]
    )


class CosineClassifier(nn.Module):
    """Normalized softmax (Zhai & Wu, "Classification is a strong baseline for deep metric learning",
    Pinterest 2019): logits are cosines over a temperature, so features cluster by direction, which is
    what nearest-neighbour search on L2 or binary codes rewards."""

    def __init__(self, in_features: int, classes: int, temperature: float) -> None:
        super().__init__()
        self.in_features, self.temperature = in_features, temperature  # in_features as nn.Linear: a tuned net re-tunes
        self.weight = nn.Parameter(torch.randn(classes, in_features) * 0.01)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1)) / self.temperature


HEADS: dict[str, Callable[[int, int, float], nn.Module]] = {
    "linear": lambda in_features, classes, _temperature: nn.Linear(in_features, classes),
    "cosine": CosineClassifier,
}


def with_new_classifier(
    network: nn.Module, spec: BackboneSpec, classes: int, head: str, temperature: float
) -> nn.Module:
    """Replace the final Linear layer (the paper's "softmax classification layer") by a fresh `head`."""
    if head not in HEADS:
        raise ViscoverError(f"unknown classifier head {head!r}; choose one of {', '.join(HEADS)}")
    parent_path, _, leaf = spec.classifier.rpartition(".")
    parent = network.get_submodule(parent_path) if parent_path else network
    old = getattr(parent, leaf) if not leaf.isdigit() else parent[int(leaf)]
    new = HEADS[head](old.in_features, classes, temperature)
    if leaf.isdigit():
        parent[int(leaf)] = new
    else:
        setattr(parent, leaf, new)
    return network


def finetune(catalog: CatalogView, config: FinetuneConfig, settings: Settings, progress: bool = True) -> FinetuneReport:
    """Train, checkpointing each epoch under HOME/backbones/NAME; an existing checkpoint resumes."""
    if config.name in BACKBONES:
        raise ViscoverError(f"{config.name!r} is a built-in backbone; choose another --name")
    folder = finetuned_dir(config.name, settings)
    base = backbone_spec(config.base, settings)
    split = split_catalog(catalog, config)
    torch.manual_seed(config.seed)
    network = with_new_classifier(base.build(settings), base, len(split.classes), config.head, config.temperature)
    folder.mkdir(parents=True, exist_ok=True)
    params = list(network.parameters())
    cutoff = int(len(params) * (1 - config.trainable_fraction))
    for i, param in enumerate(params):
        param.requires_grad = i >= cutoff
    head = {id(p) for p in network.get_submodule(base.classifier).parameters()}
    tail = [p for p in params if p.requires_grad and id(p) not in head]
    optimizer = torch.optim.AdamW(  # the new classifier starts from scratch; pretrained layers move 10x slower
        [{"params": tail, "lr": config.lr / 10}, {"params": [p for p in params if id(p) in head], "lr": config.lr}],
        weight_decay=1e-4,
    )
    state = {"epoch": 0, "best": -1.0, "stale": 0, "history": []}
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved["config"] != asdict(config):
            raise ViscoverError(f"{checkpoint} was made with other settings; remove it or use another --name")
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        log.warning("resuming %s from epoch %d", config.name, state["epoch"])

    location = {pin.key: pin.location for pin in catalog}
    loader = DataLoader(
        _Images([(location[k], y) for k, y in split.train], _transforms(base.preprocess, True)),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=1,
        generator=torch.Generator().manual_seed(config.seed + state["epoch"]),
    )
    val_loader = DataLoader(
        _Images([(location[k], y) for k, y in split.val], _transforms(base.preprocess, False)),
        batch_size=config.batch_size,
        num_workers=1,
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    network.eval()  # BatchNorm keeps its ImageNet statistics; only gradients flow into the trainable tail
    while state["epoch"] < config.epochs and state["stale"] < config.patience:
        epoch = state["epoch"] + 1
        seen = correct = 0
        total_loss = 0.0
        bar = tqdm(
            loader, desc=f"finetune {config.name} epoch {epoch}/{config.epochs}", unit="batch", disable=not progress
        )
        for step, (images, labels) in enumerate(bar):
            if config.max_steps is not None and step >= config.max_steps:
                break
            logits = network(images)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            total_loss += loss.item() * len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
        val_accuracy = _accuracy(network, val_loader, config.max_steps)
        state["history"].append(
            {
                "epoch": epoch,
                "train_loss": total_loss / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "val_accuracy": val_accuracy,
            }
        )
        log.warning("epoch %d: val accuracy %.3f", epoch, val_accuracy)
        if val_accuracy > state["best"]:
            state["best"], state["stale"] = val_accuracy, 0
            _atomic_save(network.state_dict(), folder / "model.pt")
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        _atomic_save(
            {
                "config": asdict(config),
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state": state,
            },
            checkpoint,
        )
    meta = {
        "base": config.base,
        "classes": split.classes,
        "held_out": split.held_out,
        "config": asdict(config),
        "history": state["history"],
        "best_val_accuracy": state["best"],
    }
    with atomic_path(folder / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return FinetuneReport(config.name, state["epoch"], state["best"], state["history"])


def _accuracy(network: nn.Module, loader: DataLoader, max_steps: int | None) -> float:
    seen = correct = 0
    with torch.inference_mode():
        for step, (images, labels) in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            correct += int((network(images).argmax(1) == labels).sum())
            seen += len(labels)
    return correct / max(seen, 1)


def _atomic_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
