"""A tiny YOLO-shaped ONNX model built with the ``onnx`` package, for detector tests without shared weights.

Its output is a fixed (4 + classes, anchors) table scaled by the brightest pixel of each input image: a white
image yields the table as is, a black one yields zeros (no detections). That makes the decoded boxes known
in advance and shows whether each image of a batch got its own output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_PX = 64


def build_tiny_yolo(
    path: Path,
    table: npt.NDArray[np.float32],
    *,
    names: dict[int, str] | None,
    dynamic_batch: bool = True,
    half: bool = False,
) -> Path:
    """Writes the model to ``path``: ``table`` is (4 + classes, anchors); ``names`` goes into the metadata.

    ``half`` makes the input and output float16, as ultralytics' ``half=True`` export does.
    """
    batch: int | str = "batch" if dynamic_batch else 1
    element = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    images = helper.make_tensor_value_info("images", element, [batch, 3, INPUT_PX, INPUT_PX])
    output = helper.make_tensor_value_info("output0", element, [batch, *table.shape])
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["brightest"], keepdims=1, axes=[1, 2, 3]),
        helper.make_node("Squeeze", ["brightest", "squeeze_axes"], ["per_image"]),
        helper.make_node("Unsqueeze", ["per_image", "unsqueeze_axes"], ["scale"]),
        helper.make_node("Mul", ["scale", "table"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(table[None].astype(np.float16 if half else np.float32), "table"),
        numpy_helper.from_array(np.asarray([2, 3], np.int64), "squeeze_axes"),
        numpy_helper.from_array(np.asarray([2], np.int64), "unsqueeze_axes"),
    ]
    graph = helper.make_graph(nodes, "tiny_yolo", [images], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": repr(names), "imgsz": f"[{INPUT_PX}, {INPUT_PX}]"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def anchor_table(
    rows: list[tuple[float, float, float, float, int, float]], classes: int
) -> npt.NDArray[np.float32]:
    """A (4 + classes, anchors) table from rows of (cx, cy, w, h, class, score) in input pixels."""
    table = np.zeros((4 + classes, len(rows)), np.float32)
    for anchor, (cx, cy, w, h, class_id, score) in enumerate(rows):
        table[:4, anchor] = (cx, cy, w, h)
        table[4 + class_id, anchor] = score
    return table
