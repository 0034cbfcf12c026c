"""The pipeline's result for one scan: lidar-frame boxes, scores, 1-based labels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """At most max_det boxes, sorted by descending score.

    boxes: [D, 7] float32 (x, y, z_centre, dx, dy, dz, yaw) in the lidar frame;
    scores: [D] float32; labels: [D] int32, 1 = first class (Car) ...
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def above(self, score_thresh: float) -> "Detections":
        """The detections scoring at least score_thresh (order kept), for a stricter cut than the model's."""
        keep = self.scores >= score_thresh
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def as_array(self) -> np.ndarray:
        """[D, 9] float32: box, score, label (DESIGN.md's download layout)."""
        return np.column_stack([self.boxes, self.scores, self.labels.astype(np.float32)]).astype(np.float32)

    @classmethod
    def from_array(cls, a: np.ndarray) -> "Detections":
        a = np.asarray(a, np.float32).reshape(-1, 9)
        return cls(a[:, :7].copy(), a[:, 7].copy(), a[:, 8].astype(np.int32))
