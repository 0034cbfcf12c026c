"""The ground-truth database of OpenPCDet's gt_sampling: every usable labelled object's points cut out of its frame,
with its box, from the generator's training frames and from the real frames of the training split.

Usable as OpenPCDet's pointpillar.yaml PREPARE says: at least 5 points (filter_by_min_points) and a known KITTI
difficulty (filter_by_difficulty [-1]: 2D box >= 25 px high, occlusion <= 2), and not cut by the image's edge."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointpillars_trt.evaluation.scan_stats import points_in_box

MIN_POINTS = 5


@dataclass
class GtDatabase:
    """K objects: class names, lidar boxes, box bottom above the source frame's ground (kerbs), source ('synthetic'
    or the real frame id), and their points concatenated (object k: points[offsets[k]:offsets[k + 1]])."""

    names: np.ndarray
    boxes: np.ndarray
    bottom: np.ndarray
    source: np.ndarray
    offsets: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def object_points(self, k: int) -> np.ndarray:
        return self.points[self.offsets[k]:self.offsets[k + 1]]

    @property
    def is_real(self) -> np.ndarray:
        return self.source != "synthetic"

    @classmethod
    def empty(cls) -> "GtDatabase":
        return cls(np.zeros(0, "<U16"), np.zeros((0, 7)), np.zeros(0), np.zeros(0, "<U16"), np.zeros(1, np.int64),
                   np.zeros((0, 4), np.float32))

    def save(self, path: str | Path) -> None:
        np.savez(path, names=self.names, boxes=self.boxes, bottom=self.bottom, source=self.source,
                 offsets=self.offsets, points=self.points)

    @classmethod
    def load(cls, path: str | Path) -> "GtDatabase":
        with np.load(path) as z:
            return cls(*(z[k] for k in ("names", "boxes", "bottom", "source", "offsets", "points")))


def merge(dbs: list[GtDatabase]) -> GtDatabase:
    """One database holding all objects of dbs, in order."""
    dbs = [d for d in dbs if len(d)] or [GtDatabase.empty()]
    sizes = np.concatenate([np.diff(d.offsets) for d in dbs])
    return GtDatabase(np.concatenate([d.names for d in dbs]).astype("<U16"), np.concatenate([d.boxes for d in dbs]),
                      np.concatenate([d.bottom for d in dbs]), np.concatenate([d.source for d in dbs]).astype("<U16"),
                      np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                      np.concatenate([d.points for d in dbs]).astype(np.float32))


def cut_objects(points: np.ndarray, boxes: np.ndarray, names: np.ndarray, usable: np.ndarray, ground: np.ndarray,
                source: str) -> GtDatabase:
    """The usable objects of one frame with at least MIN_POINTS points in their box (as OpenPCDet cuts them: the
    points inside the box, coordinates unchanged). ground: (a, b, c) of the frame's ground z = a x + b y + c."""
    keep, pts = [], []
    for k, box in enumerate(boxes):
        if not usable[k]:
            continue
        inside = points[points_in_box(points, box)]
        if len(inside) >= MIN_POINTS:
            keep.append(k)
            pts.append(inside)
    if not keep:
        return GtDatabase.empty()
    b = boxes[keep]
    bottom = b[:, 2] - b[:, 5] / 2 - (ground[0] * b[:, 0] + ground[1] * b[:, 1] + ground[2])
    return GtDatabase(np.asarray(names)[keep].astype("<U16"), b.astype(np.float64), bottom, np.full(len(keep), source, "<U16"),
                      np.concatenate([[0], np.cumsum([len(p) for p in pts])]).astype(np.int64),
                      np.concatenate(pts).astype(np.float32))


def kitti_usable(truncated: np.ndarray, occluded: np.ndarray, bbox_height: np.ndarray,
                 max_truncation: float = 0.15) -> np.ndarray:
    """Objects of a known KITTI difficulty (OpenPCDet's filter_by_difficulty [-1]: 2D box >= 25 px, occlusion
    <= 2) that the image edge did not cut: pasting turns them to another bearing, where a cut would show (OpenPCDet
    keeps truncation up to 0.5, pasting in place)."""
    return (bbox_height >= 25) & (occluded <= 2) & (truncated <= max_truncation)
