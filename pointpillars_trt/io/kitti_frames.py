"""Labelled KITTI frames (training/{velodyne,calib,label_2}) read whole: the scan with its lidar-frame boxes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import Calib, KittiObjects, read_labels
from pointpillars_trt.io.points import read_bin


@dataclass
class LabelledFrame:
    """One frame: points [N, 4], and its labelled objects (DontCare left out) as KITTI objects and lidar boxes."""

    frame_id: str
    points: np.ndarray
    objects: KittiObjects
    boxes: np.ndarray  # [M, 7] lidar (x, y, z_centre, dx, dy, dz, yaw)
    calib: Calib

    @property
    def names(self) -> np.ndarray:
        return self.objects.name


def read_labelled_frame(root: str | Path, frame_id: str) -> LabelledFrame:
    """root/training/{velodyne,calib,label_2}/<id>.* as one frame; a missing file is a UserError naming it."""
    tr = Path(root) / "training"
    paths = [tr / "velodyne" / f"{frame_id}.bin", tr / "calib" / f"{frame_id}.txt", tr / "label_2" / f"{frame_id}.txt"]
    for p in paths:
        if not p.is_file():
            raise UserError(f"KITTI frame {frame_id}: {p} not found")
    calib = Calib.read(paths[1])
    objs = read_labels(paths[2])
    objs = objs.select(objs.name != "DontCare")
    boxes = objs.lidar_boxes(calib) if len(objs) else np.zeros((0, 7))
    return LabelledFrame(frame_id, read_bin(paths[0]), objs, boxes, calib)
