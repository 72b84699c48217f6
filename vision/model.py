"""Core types of the vision pipeline: ``Detections`` flows from the detector through geolocation and tracking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, eq=False)
class Detections:
    """The objects found in one frame.

    ``boxes_xyxy`` is N×4 float pixel corners (x1, y1, x2, y2) in the frame's full image; ``scores`` N floats in
    0–1; ``class_ids`` N ints indexing ``class_names``.
    """

    frame_id: str
    boxes_xyxy: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        count = len(self.scores)
        if self.boxes_xyxy.shape != (count, 4) or self.class_ids.shape != (count,):
            raise ValueError(
                f"frame {self.frame_id}: boxes {self.boxes_xyxy.shape}, scores {self.scores.shape} and "
                f"classes {self.class_ids.shape} disagree"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, frame_id: str, class_names: tuple[str, ...]) -> Detections:
        return cls(
            frame_id,
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            class_names,
        )

    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[int(i)] for i in self.class_ids]

    def at_edge(self, width_px: int, height_px: int, margin_px: float = 2.0) -> npt.NDArray[np.bool_]:
        """Whether each box touches the border of its ``width_px`` × ``height_px`` image (is cut by it)."""
        x1, y1, x2, y2 = self.boxes_xyxy.T
        near: npt.NDArray[np.bool_] = (x1 <= margin_px) | (y1 <= margin_px)
        near |= (x2 >= width_px - margin_px) | (y2 >= height_px - margin_px)
        return near

    def filter(self, keep: npt.NDArray[np.bool_]) -> Detections:
        """The detections where ``keep`` is true."""
        return Detections(
            self.frame_id, self.boxes_xyxy[keep], self.scores[keep], self.class_ids[keep], self.class_names
        )


class Detector(Protocol):
    """Anything that turns BGR images (H×W×3 uint8) into detections: ONNX Runtime, OpenCV DNN, ultralytics."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def detect(
        self, images: Sequence[npt.NDArray[np.uint8]], frame_ids: Sequence[str]
    ) -> list[Detections]: ...
