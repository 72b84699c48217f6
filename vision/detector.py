"""YOLO detectors behind one protocol: ONNX Runtime (default), OpenCV DNN (fallback), ultralytics ``.pt`` (extra).

Any YOLOv8/YOLO11 detection model exported to ONNX works: the input is a letterboxed RGB image scaled to
0–1, the output is (batch, 4 + classes, anchors) with box centre/size in input pixels followed by one score
per class, and the class names come from the model's ``names`` metadata as ultralytics writes it. Boxes are
decoded, filtered by confidence, reduced by per-class non-maximum suppression and mapped back to the
original image's pixels.

Example:
    >>> detector = load_detector(Path("model.onnx"))  # doctest: +SKIP
    >>> [detections] = detector.detect([image_bgr], ["frame-0001"])  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from vision.model import Detections, Detector

Backend = Literal["auto", "onnxruntime", "opencv", "ultralytics"]
MatchMetric = Literal["iou", "ios"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

LETTERBOX_FILL = 114  # grey padding, as ultralytics pads
DEFAULT_INPUT_PX = 640
# A GPU where ONNX Runtime has one (the onnxruntime-gpu build), else the CPU of any municipal PC.
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class ModelError(ValueError):
    """A model file that cannot be used as a YOLO detector; the message names the file and what was wrong."""


@dataclass(frozen=True, kw_only=True)
class DetectionParams:
    """Thresholds applied after the network: minimum score, NMS overlap and the most boxes kept per image."""

    confidence: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300

    def __post_init__(self) -> None:
        for name in ("confidence", "iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in 0–1, got {value}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be at least 1, got {self.max_detections}")


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: ``input_px = image_px * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes_xyxy: FloatArray, width: int, height: int) -> FloatArray:
        """Boxes in network-input pixels mapped back to the original image, clipped to it."""
        boxes = boxes_xyxy.copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return boxes


def letterbox(image_bgr: npt.NDArray[np.uint8], size_px: tuple[int, int]) -> tuple[FloatArray, Letterbox]:
    """The network input for one BGR image: resized keeping its aspect, padded grey, RGB, CHW, 0–1 float.

    ``size_px`` is the input's (height, width).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 BGR image, got shape {image_bgr.shape} {image_bgr.dtype}")
    height, width = image_bgr.shape[:2]
    scale = min(size_px[0] / height, size_px[1] / width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = image_bgr if (new_w, new_h) == (width, height) else cv2.resize(image_bgr, (new_w, new_h))
    pad_x, pad_y = (size_px[1] - new_w) / 2, (size_px[0] - new_h) / 2
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas = np.full((size_px[0], size_px[1], 3), LETTERBOX_FILL, np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    tensor = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(tensor), Letterbox(scale, float(left), float(top))


def box_iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one xyxy box with each of ``boxes`` (N×4)."""
    inter = _intersection(box, boxes)
    union = _area(box[None])[0] + _area(boxes) - inter
    iou: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return iou


def box_ios(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """Intersection over the smaller area of one xyxy box and each of ``boxes``: 1 when one holds the other."""
    inter = _intersection(box, boxes)
    smaller = np.minimum(_area(box[None])[0], _area(boxes))
    ios: FloatArray = np.where(smaller > 0, inter / np.maximum(smaller, 1e-9), 0.0).astype(np.float32)
    return ios


def _area(boxes: FloatArray) -> FloatArray:
    area: FloatArray = ((boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)).astype(
        np.float32
    )
    return area


def _intersection(box: FloatArray, boxes: FloatArray) -> FloatArray:
    width = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    height = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    inter: FloatArray = (width * height).astype(np.float32)
    return inter


def greedy_groups(
    boxes_xyxy: FloatArray,
    scores: FloatArray,
    class_ids: IntArray,
    threshold: float,
    metric: MatchMetric = "iou",
) -> list[IntArray]:
    """Boxes grouped greedily per class: the best remaining box takes every same-class box it overlaps.

    Overlap is IoU, or ``"ios"`` (intersection over the smaller box), which also catches a box cut at a tile
    edge inside the whole one. Each group starts with its leader; groups come best score first.
    """
    if len(scores) == 0:
        return []
    overlap = box_ios if metric == "ios" else box_iou
    # Offsetting each class far apart makes boxes of different classes never overlap: one pass does all classes.
    offsets = class_ids.astype(np.float32)[:, None] * (float(np.abs(boxes_xyxy).max()) * 2 + 1.0)
    shifted = boxes_xyxy + offsets
    order = np.argsort(-scores, kind="stable")
    groups: list[IntArray] = []
    while len(order):
        best, order = order[0], order[1:]
        matched = overlap(shifted[best], shifted[order]) > threshold
        groups.append(np.concatenate([[best], order[matched]]).astype(np.int64))
        order = order[~matched]
    return groups


def nms(
    boxes_xyxy: FloatArray,
    scores: FloatArray,
    class_ids: IntArray,
    iou_threshold: float,
    metric: MatchMetric = "iou",
) -> IntArray:
    """Indices kept by greedy per-class non-maximum suppression, best score first."""
    groups = greedy_groups(boxes_xyxy, scores, class_ids, iou_threshold, metric)
    return np.asarray([group[0] for group in groups], np.int64)


def decode_yolo(
    output: npt.NDArray[np.float32], params: DetectionParams
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Boxes (xyxy, input pixels), scores and classes from one image's raw (4 + classes, anchors) output."""
    class_scores = output[4:]
    class_ids = class_scores.argmax(axis=0)
    scores = class_scores[class_ids, np.arange(output.shape[1])]
    keep = scores >= params.confidence
    cx, cy, w, h = output[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    scores, class_ids = scores[keep].astype(np.float32), class_ids[keep].astype(np.int64)
    kept = nms(boxes, scores, class_ids, params.iou_threshold)[: params.max_detections]
    return boxes[kept], scores[kept], class_ids[kept]


def parse_class_names(names: str, source: str) -> tuple[str, ...]:
    """Class names from ultralytics' ``names`` metadata, a dict literal such as ``{0: 'car', 1: 'bus'}``."""
    try:
        parsed = ast.literal_eval(names)
    except (ValueError, SyntaxError) as error:
        raise ModelError(f"{source}: metadata 'names' is not a dict literal: {names[:80]!r}") from error
    if isinstance(parsed, list | tuple):
        parsed = dict(enumerate(parsed))
    if not isinstance(parsed, dict) or sorted(parsed) != list(range(len(parsed))):
        raise ModelError(f"{source}: metadata 'names' must map 0..n-1 to class names, got {names[:80]!r}")
    return tuple(str(parsed[index]) for index in range(len(parsed)))


def _decode_batch(
    outputs: npt.NDArray[np.float32],
    boxes: Sequence[Letterbox],
    images: Sequence[npt.NDArray[np.uint8]],
    frame_ids: Sequence[str],
    class_names: tuple[str, ...],
    params: DetectionParams,
) -> list[Detections]:
    results = []
    for output, box, image, frame_id in zip(outputs, boxes, images, frame_ids, strict=True):
        xyxy, scores, class_ids = decode_yolo(output, params)
        mapped = box.to_image(xyxy, image.shape[1], image.shape[0])
        results.append(Detections(frame_id, mapped, scores, class_ids, class_names))
    return results


def _check_frames(images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> None:
    if len(images) != len(frame_ids):
        raise ValueError(f"{len(images)} images but {len(frame_ids)} frame ids")


def _check_output(path: Path, output_shape: Sequence[Any], class_names: tuple[str, ...]) -> None:
    channels = output_shape[1] if len(output_shape) == 3 else None
    if isinstance(channels, int) and channels != 4 + len(class_names):
        raise ModelError(
            f"{path}: output has {channels} channels, expected 4 boxes + {len(class_names)} classes; "
            "only YOLOv8/YOLO11 detection heads without embedded NMS are supported"
        )
    if len(output_shape) != 3:
        raise ModelError(f"{path}: output shape {list(output_shape)} is not (batch, 4 + classes, anchors)")


class OnnxDetector:
    """A YOLO detection ONNX on ONNX Runtime; images go through in batches when the model's batch is dynamic."""

    def __init__(
        self,
        path: Path,
        *,
        params: DetectionParams | None = None,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int | None = None,
        batch_size: int = 8,
    ) -> None:
        self.params = params or DetectionParams()
        self.batch_size = batch_size
        self._session = _open_session(path, providers, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise ModelError(f"{path}: no 'names' in the model metadata; export it with ultralytics")
        self._class_names = parse_class_names(meta["names"], str(path))
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self.input_px = _input_size(model_input.shape, meta)
        self.dynamic_batch = not isinstance(model_input.shape[0], int)
        self._input_dtype = (
            np.float16 if model_input.type == "tensor(float16)" else np.float32
        )  # half exports
        _check_output(path, self._session.get_outputs()[0].shape, self._class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        """Detections for each image, in order."""
        _check_frames(images, frame_ids)
        step = self.batch_size if self.dynamic_batch else 1
        results: list[Detections] = []
        for start in range(0, len(images), step):
            chunk, ids = images[start : start + step], frame_ids[start : start + step]
            prepared = [letterbox(image, self.input_px) for image in chunk]
            batch = np.stack([tensor for tensor, _ in prepared]).astype(self._input_dtype)
            outputs = np.asarray(self._session.run(None, {self._input_name: batch})[0], np.float32)
            boxes = [box for _, box in prepared]
            results += _decode_batch(outputs, boxes, chunk, ids, self._class_names, self.params)
        return results


def _open_session(path: Path, providers: Sequence[str], threads: int | None) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    available = set(ort.get_available_providers())
    chosen = [provider for provider in providers if provider in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as error:  # onnxruntime raises its own untyped errors for unreadable models
        raise ModelError(f"{path}: ONNX Runtime cannot load it: {error}") from error


def _input_size(shape: Sequence[Any], meta: Mapping[str, str]) -> tuple[int, int]:
    """(height, width) of the network input: fixed in the graph, else ultralytics' ``imgsz`` metadata, else 640."""
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return shape[2], shape[3]
    if "imgsz" in meta:
        size = ast.literal_eval(meta["imgsz"])
        return (int(size[0]), int(size[1])) if isinstance(size, list | tuple) else (int(size), int(size))
    return DEFAULT_INPUT_PX, DEFAULT_INPUT_PX


class OpenCvDetector:
    """The same model on OpenCV DNN, the fallback backend; one image per forward pass.

    OpenCV does not expose ONNX metadata, so unless ``class_names`` and ``input_px`` are given they are read
    once from the file's metadata with ONNX Runtime.
    """

    def __init__(
        self,
        path: Path,
        *,
        params: DetectionParams | None = None,
        class_names: tuple[str, ...] | None = None,
        input_px: tuple[int, int] | None = None,
    ) -> None:
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        self.params = params or DetectionParams()
        if class_names is None or input_px is None:
            probe = OnnxDetector(path)
            class_names, input_px = class_names or probe.class_names, input_px or probe.input_px
        self._class_names, self.input_px = class_names, input_px
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as error:
            raise ModelError(f"{path}: OpenCV DNN cannot load it: {error}") from error

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        """Detections for each image, in order."""
        _check_frames(images, frame_ids)
        results: list[Detections] = []
        for image, frame_id in zip(images, frame_ids, strict=True):
            tensor, box = letterbox(image, self.input_px)
            self._net.setInput(tensor[None])
            output = np.asarray(self._net.forward(), np.float32)
            results += _decode_batch(output, [box], [image], [frame_id], self._class_names, self.params)
        return results


class UltralyticsDetector:
    """An ultralytics ``.pt`` model; needs the optional training extra (torch + ultralytics), imported lazily."""

    def __init__(self, path: Path, *, params: DetectionParams | None = None, device: str = "cpu") -> None:
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        self.params = params or DetectionParams()
        self.device = device
        ultralytics = require_ultralytics()
        self._model = ultralytics.YOLO(str(path))
        names = self._model.names
        self._class_names = tuple(str(names[index]) for index in range(len(names)))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    def detect(self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]) -> list[Detections]:
        """Detections for each image, in order."""
        _check_frames(images, frame_ids)
        if not images:
            return []
        results = self._model.predict(
            list(images),
            conf=self.params.confidence,
            iou=self.params.iou_threshold,
            max_det=self.params.max_detections,
            device=self.device,
            verbose=False,
        )
        return [
            self._to_detections(result, frame_id) for result, frame_id in zip(results, frame_ids, strict=True)
        ]

    def _to_detections(self, result: Any, frame_id: str) -> Detections:
        boxes = result.boxes
        return Detections(
            frame_id,
            boxes.xyxy.cpu().numpy().astype(np.float32),
            boxes.conf.cpu().numpy().astype(np.float32),
            boxes.cls.cpu().numpy().astype(np.int64),
            self._class_names,
        )


def require_ultralytics() -> Any:
    """The ``ultralytics`` module, or a :class:`ModelError` saying how to install the optional extra."""
    try:
        return importlib.import_module("ultralytics")
    except ImportError as error:
        raise ModelError(
            f"ultralytics cannot be imported ({error}): .pt models, training and export need the optional "
            "extra: torch and torchvision (CPU builds: pip install torch torchvision --index-url "
            "https://download.pytorch.org/whl/cpu), then pip install ultralytics; detection itself only needs "
            "an exported .onnx model"
        ) from error


def load_detector(
    path: Path, *, backend: Backend = "auto", params: DetectionParams | None = None
) -> Detector:
    """A detector for ``path``: ``.pt`` files on ultralytics, ``.onnx`` on ONNX Runtime (or OpenCV DNN)."""
    if backend == "auto":
        backend = "ultralytics" if path.suffix == ".pt" else "onnxruntime"
    if backend == "ultralytics":
        return UltralyticsDetector(path, params=params)
    if path.suffix != ".onnx":
        raise ModelError(f"{path}: the {backend} backend needs an .onnx model")
    if backend == "opencv":
        return OpenCvDetector(path, params=params)
    return OnnxDetector(path, params=params)


def iou_matrix(boxes_a: FloatArray, boxes_b: FloatArray) -> FloatArray:
    """Pairwise IoU (len(a) × len(b)) of two sets of xyxy boxes."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros((len(boxes_a), len(boxes_b)), np.float32)
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.prod((bottom_right - top_left).clip(0), axis=2)
    union = _area(boxes_a)[:, None] + _area(boxes_b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
