"""A small anchor-free YOLO-style detector in plain torch, trained from scratch and exported as a YOLOv8 ONNX.

This is how the project grows its demo-world model without ultralytics or pretrained weights: a compact CSP
backbone, a PAN-lite neck and a decoupled anchor-free head at strides 8/16/32; task-aligned assignment
(score × IoU⁶ over anchors near each box, top-k per box) with a GIoU box loss and a BCE class loss; a YOLO
dataset (``data.yaml``) read with flips, 90° turns, scale and HSV jitter on crops at the frames' own pixel
scale. The ONNX export has exactly the YOLOv8 layout, ``(batch, 4 + classes, anchors)`` with box centre and
size in input pixels then sigmoid class scores, and the class names in its ``names`` metadata, so
:class:`vision.detector.OnnxDetector` runs it unchanged. Only training imports this module (and torch).

Example:
    >>> result = train_scratch(Path("ds/data.yaml"), Path("model.onnx"), ScratchParams(epochs=30))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import Tensor, nn

from vision.detector import LETTERBOX_FILL, FloatArray, IntArray, OnnxDetector
from vision.train import YoloSplit, label_truth, read_image, read_split

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
ONNX_OPSET = 17
_TOPK = 10  # anchors per labelled box
_ALPHA, _BETA = 1.0, 6.0  # task alignment = score^α × IoU^β
_BOX_GAIN, _CLS_GAIN = 5.0, 1.0
_MIN_VISIBLE = 0.35  # share of a box that must stay inside a crop for it to stay labelled
_MIN_SIDE_PX = 2.0


class ScratchError(ValueError):
    """A setting or output file the scratch trainer cannot use; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class ScratchParams:
    """Training settings.

    Args:
        epochs: passes over the training images.
        batch: images per step.
        crop_px: side of the square training crops, cut at the images' own pixel scale.
        export_px: side of the exported model's input (the detector's tile size).
        lr: peak AdamW learning rate (cosine decay after a one-epoch warm-up).
        width: channel multiplier of the network (1.0: 1.2 M parameters).
        threads: torch CPU threads.
        seed: drives weights, crops and augmentation.
    """

    epochs: int = 30
    batch: int = 16
    crop_px: int = 320
    export_px: int = 640
    lr: float = 2e-3
    width: float = 1.0
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch", "threads"):
            if getattr(self, name) < 1:
                raise ScratchError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("crop_px", "export_px"):
            value = getattr(self, name)
            if value < 64 or value % max(STRIDES):
                raise ScratchError(f"{name} must be a multiple of {max(STRIDES)} of at least 64, got {value}")
        if not 0 < self.lr < 1 or not 0.1 <= self.width <= 4:
            raise ScratchError(f"lr must lie in (0, 1) and width in 0.1–4, got {self.lr} and {self.width}")


# ---------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    """One labelled image: BGR pixels, xyxy pixel boxes and class ids."""

    image: npt.NDArray[np.uint8]
    boxes_xyxy: FloatArray
    class_ids: IntArray


def load_sample(image_path: Path, labels: Path, class_names: tuple[str, ...]) -> Sample:
    """An image and its boxes; a missing label file is an image without objects (a hard negative)."""
    image = read_image(image_path)
    height, width = image.shape[:2]
    truth = label_truth(labels, image_path.stem, width, height, class_names)
    return Sample(image, truth.boxes_xyxy, truth.class_ids)


def augment(sample: Sample, crop_px: int, rng: np.random.Generator) -> Sample:
    """A training view: scale jitter, a crop (mostly around an object), flips, a 90° turn and HSV jitter."""
    scale = float(rng.uniform(0.8, 1.25))
    image = np.asarray(cv2.resize(sample.image, None, fx=scale, fy=scale), np.uint8)
    boxes = sample.boxes_xyxy * scale
    image, boxes, classes = _crop(image, boxes, sample.class_ids, crop_px, rng)
    image, boxes = _flip_turn(image, boxes, rng)
    return Sample(_hsv_jitter(image, rng), boxes, classes)


def _crop(
    image: npt.NDArray[np.uint8], boxes: FloatArray, classes: IntArray, crop_px: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], FloatArray, IntArray]:
    height, width = image.shape[:2]
    if len(boxes) and rng.random() < 0.8:
        cx, cy = boxes[int(rng.integers(len(boxes)))].reshape(2, 2).mean(axis=0)
        x0 = int(cx - crop_px / 2 + rng.uniform(-0.35, 0.35) * crop_px)
        y0 = int(cy - crop_px / 2 + rng.uniform(-0.35, 0.35) * crop_px)
    else:
        x0 = int(rng.integers(0, max(1, width - crop_px + 1)))
        y0 = int(rng.integers(0, max(1, height - crop_px + 1)))
    x0 = min(max(x0, 0), max(0, width - crop_px))
    y0 = min(max(y0, 0), max(0, height - crop_px))
    canvas = np.full((crop_px, crop_px, 3), LETTERBOX_FILL, np.uint8)
    part = image[y0 : y0 + crop_px, x0 : x0 + crop_px]
    canvas[: part.shape[0], : part.shape[1]] = part
    shifted = boxes - np.asarray([x0, y0, x0, y0], np.float32)
    limit = np.asarray([part.shape[1], part.shape[0]] * 2, np.float32)
    clipped = shifted.clip(0, limit)
    keep = _visible(shifted, clipped)
    return canvas, clipped[keep].astype(np.float32), classes[keep]


def _visible(boxes: FloatArray, clipped: FloatArray) -> npt.NDArray[np.bool_]:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    sides = clipped[:, 2:] - clipped[:, :2]
    kept: npt.NDArray[np.bool_] = (sides.prod(axis=1) >= _MIN_VISIBLE * area) & (
        sides.min(axis=1) >= _MIN_SIDE_PX
    )
    return kept


def _flip_turn(
    image: npt.NDArray[np.uint8], boxes: FloatArray, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], FloatArray]:
    """Aerial views have no up: random horizontal flip and a random number of quarter turns."""
    size = image.shape[0]
    if rng.random() < 0.5:
        image = image[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
    for _ in range(int(rng.integers(4))):  # each turn is 90° counter-clockwise: (x, y) → (y, size − x)
        image = np.rot90(image)
        boxes = np.stack([boxes[:, 1], size - boxes[:, 2], boxes[:, 3], size - boxes[:, 0]], axis=1)
    return np.ascontiguousarray(image), boxes.astype(np.float32).reshape(-1, 4)


def _hsv_jitter(image: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    gains = rng.uniform([-0.015, 0.6, 0.6], [0.015, 1.4, 1.4])
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + gains[0] * 180) % 180
    hsv[..., 1:] = (hsv[..., 1:] * gains[1:]).clip(0, 255)
    return np.asarray(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR), np.uint8)


def to_tensor_batch(samples: Sequence[Sample]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Images (B, 3, H, W) RGB 0–1 as the detector feeds them, and padded boxes, classes and a box mask."""
    images = np.stack([sample.image[:, :, ::-1].transpose(2, 0, 1) for sample in samples])
    most = max(1, max(len(sample.class_ids) for sample in samples))
    boxes = np.zeros((len(samples), most, 4), np.float32)
    classes = np.zeros((len(samples), most), np.int64)
    mask = np.zeros((len(samples), most), bool)
    for index, sample in enumerate(samples):
        count = len(sample.class_ids)
        boxes[index, :count], classes[index, :count], mask[index, :count] = (
            sample.boxes_xyxy,
            sample.class_ids,
            True,
        )
    tensor = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    return tensor, torch.from_numpy(boxes), torch.from_numpy(classes), torch.from_numpy(mask)


# --------------------------------------------------------------------------------------------------- model


class ConvBnAct(nn.Module):
    """Convolution, batch norm, SiLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2 if kernel % 2 else 0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act(self.bn(self.conv(x)))
        return out


class Bottleneck(nn.Module):
    """Two 3×3 convolutions with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBnAct(channels, channels, 3), ConvBnAct(channels, channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(x)
        return out


class CspBlock(nn.Module):
    """Cross-stage partial block (C2f style): half the channels pass through, the rest through bottlenecks."""

    def __init__(self, c_in: int, c_out: int, depth: int = 1) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.split = ConvBnAct(c_in, 2 * self.hidden)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden) for _ in range(depth))
        self.merge = ConvBnAct((2 + depth) * self.hidden, c_out)

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        out: Tensor = self.merge(torch.cat(parts, dim=1))
        return out


class Sppf(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5×5 max pools widen the receptive field cheaply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBnAct(channels, channels // 2)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.merge = ConvBnAct(channels * 2, channels)

    def forward(self, x: Tensor) -> Tensor:
        parts = [self.reduce(x)]
        for _ in range(3):
            parts.append(self.pool(parts[-1]))
        out: Tensor = self.merge(torch.cat(parts, dim=1))
        return out


class Backbone(nn.Module):
    """A patchify stem (4×4, stride 4: cheap on a CPU) then strided convolutions and CSP blocks.

    Features come out at strides 8, 16 and 32.
    """

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        c2, c3, c4, c5 = widths
        self.stem = ConvBnAct(3, c2, 4, 4)
        self.stage3 = nn.Sequential(ConvBnAct(c2, c3, 3, 2), CspBlock(c3, c3, 1))
        self.stage4 = nn.Sequential(ConvBnAct(c3, c4, 3, 2), CspBlock(c4, c4, 1))
        self.stage5 = nn.Sequential(ConvBnAct(c4, c5, 3, 2), CspBlock(c5, c5, 1), Sppf(c5))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p3 = self.stage3(self.stem(x))
        p4 = self.stage4(p3)
        return p3, p4, self.stage5(p4)


class PanNeck(nn.Module):
    """Top-down then bottom-up fusion of the three feature levels (FPN + PAN, one CSP block per merge)."""

    def __init__(self, c3: int, c4: int, c5: int) -> None:
        super().__init__()
        self.top4 = CspBlock(c5 + c4, c4)
        self.top3 = CspBlock(c4 + c3, c3)
        self.down3 = ConvBnAct(c3, c3, 3, 2)
        self.out4 = CspBlock(c3 + c4, c4)
        self.down4 = ConvBnAct(c4, c4, 3, 2)
        self.out5 = CspBlock(c4 + c5, c5)

    def forward(self, p3: Tensor, p4: Tensor, p5: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t4 = self.top4(torch.cat([F.interpolate(p5, scale_factor=2.0, mode="nearest"), p4], dim=1))
        n3 = self.top3(torch.cat([F.interpolate(t4, scale_factor=2.0, mode="nearest"), p3], dim=1))
        n4 = self.out4(torch.cat([self.down3(n3), t4], dim=1))
        n5 = self.out5(torch.cat([self.down4(n4), p5], dim=1))
        return n3, n4, n5


class DecoupledHead(nn.Module):
    """Per level: separate class and box branches; boxes as distances to the four sides, in strides."""

    def __init__(self, c_in: int, hidden: int, classes: int) -> None:
        super().__init__()
        cls_out, box_out = nn.Conv2d(hidden, classes, 1), nn.Conv2d(hidden, 4, 1)
        prior = 0.01  # start every class score near 1 %: few boxes are objects
        nn.init.constant_(cls_out.get_parameter("bias"), -math.log((1 - prior) / prior))
        nn.init.zeros_(box_out.get_parameter("bias"))
        self.cls = nn.Sequential(ConvBnAct(c_in, hidden, 3), cls_out)
        self.box = nn.Sequential(ConvBnAct(c_in, hidden, 3), box_out)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls(x), self.box(x)


class ScratchDetector(nn.Module):
    """Backbone, neck and heads.

    ``forward`` gives class logits (B, A, C) and each anchor's distances to the box sides in input pixels
    (B, A, 4: left, top, right, bottom); :func:`decode_boxes` turns those into boxes around the anchor centres.
    """

    def __init__(self, classes: int, width: float = 1.0) -> None:
        super().__init__()
        c2, c3, c4, c5 = (max(8, round(base * width / 8) * 8) for base in (32, 64, 96, 128))
        self.classes = classes
        self.backbone = Backbone((c2, c3, c4, c5))
        self.neck = PanNeck(c3, c4, c5)
        hidden = max(32, c3)
        self.heads = nn.ModuleList(DecoupledHead(c, hidden, classes) for c in (c3, c4, c5))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        levels = self.neck(*self.backbone(x))
        logits, distances = [], []
        for feature, head, stride in zip(levels, self.heads, STRIDES, strict=True):
            cls, reg = head(feature)
            distances.append(F.softplus(reg.flatten(2).transpose(1, 2)) * stride)
            logits.append(cls.flatten(2).transpose(1, 2))
        return torch.cat(logits, dim=1), torch.cat(distances, dim=1)


def decode_boxes(distances: Tensor, centres: Tensor) -> Tensor:
    """xyxy boxes (B, A, 4) from distances to the sides (B, A, 4) around anchor centres (A, 2)."""
    return torch.cat([centres - distances[..., :2], centres + distances[..., 2:]], dim=-1)


def _grid_centres(size: int, stride: int) -> Tensor:
    """(size², 2) pixel centres of a square feature map's cells, row by row."""
    steps = (torch.arange(size, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)


def anchor_centres(image_px: int) -> Tensor:
    """(A, 2) pixel centres of every anchor, in the order the model emits them, for a square ``image_px`` input."""
    grids = [_grid_centres(image_px // s, s) for s in STRIDES]
    return torch.cat(grids, dim=0)


def anchor_strides(image_px: int) -> Tensor:
    """The stride of each anchor, in the order the model emits them, for a square ``image_px`` input."""
    return torch.cat([torch.full(((image_px // s) ** 2,), float(s)) for s in STRIDES])


# ---------------------------------------------------------------------------------------- assignment, loss


def box_giou(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """IoU and generalised IoU of paired xyxy boxes (broadcast over leading dimensions)."""
    inter_wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter + 1e-9
    iou = inter / union
    hull_wh = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1] + 1e-9
    return iou, iou - (hull - union) / hull


@dataclass(frozen=True)
class Assignment:
    """Per anchor: is it an object (B, A), the box it learns (B, A, 4) and soft class targets (B, A, C)."""

    foreground: Tensor
    boxes: Tensor
    scores: Tensor


@torch.no_grad()
def assign(
    scores: Tensor, boxes: Tensor, centres: Tensor, strides: Tensor, targets: tuple[Tensor, Tensor, Tensor]
) -> Assignment:
    """Task-aligned assignment: anchors near a box compete on score^α × IoU^β; the top k learn that box.

    Candidates are anchors whose centre lies in the box or within one stride of its centre (so a 3-pixel box
    still gets some). An anchor claimed by two boxes keeps the one it overlaps most. The class target is the
    alignment scaled so each box's best anchor gets its best IoU (TOOD).
    """
    gt_boxes, gt_classes, gt_mask = targets
    batch, anchors = scores.shape[:2]
    candidate = _candidates(centres, strides, gt_boxes) & gt_mask[..., None]
    iou = box_giou(gt_boxes[:, :, None], boxes[:, None])[0].clamp(min=0)  # (B, M, A)
    class_scores = scores.gather(2, gt_classes[:, None, :].expand(batch, anchors, -1)).transpose(1, 2)
    align = class_scores.pow(_ALPHA) * iou.pow(_BETA)
    ranked = torch.where(candidate, align, torch.full_like(align, -1.0))
    top = ranked.topk(min(_TOPK, anchors), dim=2).indices
    chosen = torch.zeros_like(candidate).scatter_(2, top, True) & candidate
    owner_iou = torch.where(chosen, iou, torch.full_like(iou, -1.0))
    owner = owner_iou.argmax(dim=1)  # (B, A): the box each anchor learns
    chosen &= F.one_hot(owner, gt_boxes.shape[1]).transpose(1, 2).bool()
    foreground = chosen.any(dim=1)
    align = align * chosen
    norm = align / align.amax(dim=2, keepdim=True).clamp(min=1e-9) * (iou * chosen).amax(dim=2, keepdim=True)
    quality = norm.amax(dim=1)  # (B, A)
    picked = owner[..., None].expand(-1, -1, 4)
    target_boxes = gt_boxes.gather(1, picked)
    target_scores = (
        F.one_hot(gt_classes.gather(1, owner), scores.shape[2]).float() * (quality * foreground)[..., None]
    )
    return Assignment(foreground, target_boxes, target_scores)


def _candidates(centres: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
    x, y = centres[:, 0], centres[:, 1]
    box = gt_boxes[..., None]  # (B, M, 4, 1)
    inside = (x > box[:, :, 0]) & (x < box[:, :, 2]) & (y > box[:, :, 1]) & (y < box[:, :, 3])
    middle = (box[:, :, :2] + box[:, :, 2:]) / 2
    near = ((centres.T[None, None] - middle).abs().amax(dim=2)) < strides
    return inside | near


def detection_loss(
    logits: Tensor, boxes: Tensor, centres: Tensor, strides: Tensor, targets: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Total loss, box loss (1 − GIoU) and class loss (BCE), each normalised by the summed target scores."""
    assignment = assign(logits.detach().sigmoid(), boxes.detach(), centres, strides, targets)
    norm = assignment.scores.sum().clamp(min=1.0)
    cls_loss = F.binary_cross_entropy_with_logits(logits, assignment.scores, reduction="sum") / norm
    foreground = assignment.foreground
    weight = assignment.scores.sum(dim=-1)[foreground]
    giou = box_giou(boxes[foreground], assignment.boxes[foreground])[1]
    box_loss = ((1.0 - giou) * weight).sum() / norm
    return _BOX_GAIN * box_loss + _CLS_GAIN * cls_loss, box_loss.detach(), cls_loss.detach()


# ----------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class EpochStats:
    """Mean losses and time of one epoch."""

    epoch: int
    loss: float
    box_loss: float
    cls_loss: float
    seconds: float


@dataclass(frozen=True)
class ScratchResult:
    """What training produced: the ONNX file, the class names, parameter count and per-epoch figures."""

    model_path: Path
    class_names: tuple[str, ...]
    parameters: int
    epochs: tuple[EpochStats, ...]


class WeightAverage:
    """Exponential moving average of the weights (what gets exported): steadier than the last step's."""

    def __init__(self, model: ScratchDetector, decay: float = 0.999, warmup_steps: int = 300) -> None:
        self.model = copy.deepcopy(model).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.decay, self.warmup_steps, self.steps = decay, warmup_steps, 0

    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = self.decay * (1 - math.exp(-self.steps / self.warmup_steps))
        with torch.no_grad():
            source = model.state_dict()
            for name, value in self.model.state_dict().items():
                if value.dtype.is_floating_point:
                    value.mul_(decay).add_(source[name].detach(), alpha=1 - decay)
                else:
                    value.copy_(source[name])


def train_scratch(
    data_yaml: Path,
    output: Path,
    params: ScratchParams | None = None,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> ScratchResult:
    """Trains a :class:`ScratchDetector` on the dataset's train split and exports it to ``output`` (ONNX).

    The ONNX file is rewritten (atomically) after every epoch, so it always holds the latest whole epoch.
    """
    params = params or ScratchParams()
    _check_output(output)
    split = read_split(data_yaml, "train")
    torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    trainer = _Trainer(ScratchDetector(len(split.class_names), params.width), split, params)
    stats: list[EpochStats] = []
    for epoch in range(params.epochs):
        stats.append(trainer.run_epoch(epoch))
        export_onnx(trainer.average.model, output, split.class_names, params.export_px)
        if on_epoch is not None:
            on_epoch(stats[-1])
    return ScratchResult(output, split.class_names, count_parameters(trainer.model), tuple(stats))


def _check_output(output: Path) -> None:
    if output.suffix != ".onnx":
        raise ScratchError(f"{output}: the model file must end in .onnx")
    if output.is_dir():
        raise ScratchError(f"{output}: is a folder; give the .onnx file to write")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights."""
    return sum(param.numel() for param in model.parameters() if param.requires_grad)


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on convolution weights only, not on biases or batch norm."""
    decayed = [p for name, p in model.named_parameters() if p.ndim > 1 and name.endswith("weight")]
    ids = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": decayed, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}]


def _cosine_schedule(peak: float, steps_per_epoch: int, epochs: int) -> Callable[[int], float]:
    total = steps_per_epoch * epochs
    warmup = min(steps_per_epoch, max(1, total // 10))

    def rate(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    return rate


def _batches(split: YoloSplit, params: ScratchParams, rng: np.random.Generator) -> Iterator[list[Sample]]:
    order = rng.permutation(len(split.images))
    for start in range(0, len(order), params.batch):
        picked = order[start : start + params.batch]
        yield [
            augment(load_sample(split.images[i], split.labels[i], split.class_names), params.crop_px, rng)
            for i in picked
        ]


class _Trainer:
    """One training run's state: the model, its weight average, the optimiser, the data and the schedule."""

    def __init__(self, model: ScratchDetector, split: YoloSplit, params: ScratchParams) -> None:
        self.model, self.split, self.params = model, split, params
        self.average = WeightAverage(model)
        self.optimiser = torch.optim.AdamW(_param_groups(model), lr=params.lr)
        self.rng = np.random.default_rng(params.seed)
        self.steps_per_epoch = math.ceil(len(split.images) / params.batch)
        self.schedule = _cosine_schedule(params.lr, self.steps_per_epoch, params.epochs)
        self.centres, self.strides = anchor_centres(params.crop_px), anchor_strides(params.crop_px)

    def run_epoch(self, epoch: int) -> EpochStats:
        started = time.perf_counter()
        self.model.train()
        totals = np.zeros(3)
        steps = 0
        for steps, samples in enumerate(_batches(self.split, self.params, self.rng), start=1):
            self._set_rate(self.schedule(epoch * self.steps_per_epoch + steps - 1))
            totals += self._step(samples)
            if steps % 20 == 0:
                log.info("epoch %d step %d: mean loss %.3f", epoch + 1, steps, totals[0] / steps)
        mean = totals / max(steps, 1)
        loss, box_loss, cls_loss = (float(value) for value in mean)
        stats = EpochStats(epoch + 1, loss, box_loss, cls_loss, time.perf_counter() - started)
        log.info("epoch %d: loss %.3f (box %.3f, cls %.3f), %.0f s", *vars(stats).values())
        return stats

    def _set_rate(self, rate: float) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = rate

    def _step(self, samples: list[Sample]) -> tuple[float, float, float]:
        images, boxes, classes, mask = to_tensor_batch(samples)
        logits, distances = self.model(images)
        predicted = decode_boxes(distances, self.centres)
        loss, box_loss, cls_loss = detection_loss(
            logits, predicted, self.centres, self.strides, (boxes, classes, mask)
        )
        self.optimiser.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimiser.step()
        self.average.update(self.model)
        return float(loss.detach()), float(box_loss), float(cls_loss)


# ------------------------------------------------------------------------------------------------- export


class YoloExport(nn.Module):
    """The detector with the YOLOv8 output: (B, 4 + C, A), box centre and size in input pixels, then scores.

    The anchor centres are a constant of the graph for the one input size, so OpenCV DNN reads it too.
    """

    def __init__(self, model: ScratchDetector, image_px: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("centres", anchor_centres(image_px))

    def forward(self, images: Tensor) -> Tensor:
        logits, distances = self.model(images)
        boxes = decode_boxes(distances, self.get_buffer("centres"))
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        size = boxes[..., 2:] - boxes[..., :2]
        return torch.cat([centre, size, logits.sigmoid()], dim=-1).transpose(1, 2)


def export_onnx(model: ScratchDetector, output: Path, class_names: tuple[str, ...], image_px: int) -> Path:
    """Writes ``model`` as a YOLOv8-layout ONNX with ``names`` metadata, checked by loading it; atomic."""
    import onnx

    if len(class_names) != model.classes:
        raise ScratchError(f"{len(class_names)} class names for a model of {model.classes} classes")
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, staged_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".onnx", dir=output.parent)
    os.close(handle)
    staged = Path(staged_name)
    try:
        _torch_export(YoloExport(model, image_px).eval(), staged, image_px)
        graph = onnx.load(str(staged))
        metadata = {
            "names": repr(dict(enumerate(class_names))),
            "imgsz": repr([image_px, image_px]),
            "stride": str(max(STRIDES)),
            "task": "detect",
            "description": "SkyGrid scratch detector (vision/scratch.py), trained from scratch",
        }
        onnx.helper.set_model_props(graph, metadata)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(staged))
        OnnxDetector(staged)  # refuses a file the runtime detector could not use
        staged.chmod(0o644)  # mkstemp makes it private; a model is meant to be shared
        os.replace(staged, output)
    finally:
        staged.unlink(missing_ok=True)
    return output


def _torch_export(module: nn.Module, path: Path, image_px: int) -> None:
    dummy = torch.zeros(1, 3, image_px, image_px)
    # The TorchScript exporter: torch's newer torch.export-based one needs onnxscript, not installed here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
            dynamo=False,
        )
