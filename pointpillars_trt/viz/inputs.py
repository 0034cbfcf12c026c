"""What the viewer reads besides the scan: detections JSON (io.kitti.detections_to_json) and KITTI ground truth."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pointpillars_trt.io.detections import Detections
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import Calib, read_labels

_BOX_KEYS = ("x", "y", "z", "dx", "dy", "dz", "yaw")


def load_detections_json(path: str | os.PathLike, class_names: Sequence[str]) -> Detections:
    """Read detections written by io.kitti.detections_to_json; labels come from label_id (or the label name)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"detections file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a detections JSON file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("detections"), list):
        raise UserError(f"{path}: expected an object with a 'detections' list (as written by `infer --out`)")
    if doc.get("frame", "lidar") != "lidar":
        raise UserError(f"{path}: boxes are in frame {doc.get('frame')!r}; the viewer needs lidar-frame boxes")
    boxes, scores, labels = [], [], []
    for i, det in enumerate(doc["detections"]):
        try:
            boxes.append([float(det[k]) for k in _BOX_KEYS])
            scores.append(float(det["score"]))
            if "label_id" in det:
                labels.append(int(det["label_id"]))
            elif det.get("label") in class_names:
                labels.append(list(class_names).index(det["label"]) + 1)
            else:
                raise KeyError("label_id")
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: detection {i} is missing or has a bad field ({e})") from None
    if not np.isfinite(np.array(boxes, np.float64)).all():
        raise UserError(f"{path}: NaN or Inf in a detection box")
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.array(scores, np.float32), np.array(labels, np.int32))


def load_ground_truth(labels: str | os.PathLike, calib: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """KITTI label_2 + calib -> lidar boxes [M,7] and names, DontCare skipped."""
    objs = read_labels(labels)
    objs = objs.select(objs.name != "DontCare")
    if len(objs) == 0:
        return np.zeros((0, 7)), []
    return objs.lidar_boxes(Calib.read(calib)), [str(n) for n in objs.name]
