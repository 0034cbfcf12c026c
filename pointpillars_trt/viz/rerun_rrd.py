"""A Rerun recording (.rrd) of scans and detections: Points3D coloured by height and Boxes3D labelled by class and
score, on a timeline of message time (bags) or of the scan index (folders of scans)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.viz.style import GT_COLOR, class_color, point_colors

RERUN_HINT = 'pip install "pointpillars_trt[rerun]" (rerun-sdk)'
MESSAGE_TIME, SCAN_INDEX = "message_time", "scan"


def import_rerun() -> Any:
    """rerun-sdk, or a UserError naming the extra."""
    try:
        import rerun
    except ImportError:
        raise UserError(f"writing a Rerun recording (--rerun) needs rerun-sdk: {RERUN_HINT}") from None
    return rerun


class RerunWriter:
    """Log scans to an .rrd file; `timeline` is MESSAGE_TIME (a stamp in ns) or SCAN_INDEX (a sequence number)."""

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str], timeline: str = MESSAGE_TIME) -> None:
        rr = self._rr = import_rerun()
        self.path, self._names, self._timeline = Path(path), tuple(class_names), timeline
        self._rec = rr.RecordingStream("pointpillars_trt")
        self._rec.save(str(self.path))
        self.count = 0

    def write(self, time: int, frame_id: str, points: np.ndarray | None, dets: Detections,
              gt_boxes: np.ndarray | None = None) -> None:
        """One scan at `time` (ns on MESSAGE_TIME, the index on SCAN_INDEX), under the entity path of its frame_id."""
        rr, rec = self._rr, self._rec
        if self._timeline == MESSAGE_TIME:
            rec.set_time(MESSAGE_TIME, timestamp=np.datetime64(int(time), "ns"))
        else:
            rec.set_time(SCAN_INDEX, sequence=int(time))
        root = "/".join(p for p in frame_id.split("/") if p) or "lidar"
        if points is not None:
            rec.log(f"{root}/points", rr.Points3D(points[:, :3], colors=point_colors(points), radii=0.03))
        names = dets.labels_named(self._names)
        rec.log(f"{root}/detections", rr.Boxes3D(
            centers=dets.boxes[:, :3], sizes=dets.boxes[:, 3:6],
            rotation_axis_angles=[rr.RotationAxisAngle(axis=[0, 0, 1], radians=float(y)) for y in dets.boxes[:, 6]],
            colors=[class_color(n, self._names) for n in names], class_ids=dets.labels.astype(np.uint16),
            labels=[f"{n} {s:.2f}" for n, s in zip(names, dets.scores)]))
        if gt_boxes is not None and len(gt_boxes):
            rec.log(f"{root}/ground_truth", rr.Boxes3D(
                centers=gt_boxes[:, :3], sizes=gt_boxes[:, 3:6], colors=[GT_COLOR] * len(gt_boxes),
                rotation_axis_angles=[rr.RotationAxisAngle(axis=[0, 0, 1], radians=float(y)) for y in gt_boxes[:, 6]]))
        self.count += 1

    def close(self) -> None:
        """Flush and close the file."""
        if self._rec is not None:
            self._rec.flush()
            self._rec.disconnect()
            self._rec = None
