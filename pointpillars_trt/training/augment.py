"""Global augmentation of a frame (OpenPCDet's DATA_AUGMENTOR for pointpillar.yaml): flip along x,
rotation about z, scaling; points and boxes move together, so every point stays in its box."""
from __future__ import annotations

import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig


def flip_x(points: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror across the x axis (y -> -y, yaw -> -yaw)."""
    points, boxes = points.copy(), boxes.copy()
    points[:, 1] = -points[:, 1]
    boxes[:, 1] = -boxes[:, 1]
    boxes[:, 6] = -boxes[:, 6]
    return points, boxes


def rotate_z(points: np.ndarray, boxes: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate everything about the z axis by angle (counter-clockwise seen from above)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    points, boxes = points.copy(), boxes.copy()
    points[:, :2] = (points[:, :2].astype(np.float64) @ rot.T).astype(points.dtype)
    boxes[:, :2] = boxes[:, :2] @ rot.T
    boxes[:, 6] += angle
    return points, boxes


def scale(points: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale coordinates and box sizes about the sensor origin."""
    points, boxes = points.copy(), boxes.copy()
    points[:, :3] *= factor
    boxes[:, :6] *= factor
    return points, boxes


def augment(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
            cfg: PointPillarsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random flip (p = 0.5), rotation in cfg.aug_rotation and scaling in cfg.aug_scaling, in OpenPCDet's order."""
    boxes = boxes.astype(np.float64)
    if cfg.aug_flip_x and rng.random() < 0.5:
        points, boxes = flip_x(points, boxes)
    points, boxes = rotate_z(points, boxes, float(rng.uniform(*cfg.aug_rotation)))
    points, boxes = scale(points, boxes, float(rng.uniform(*cfg.aug_scaling)))
    return points, boxes


def boxes_in_range(boxes: np.ndarray, cfg: PointPillarsConfig) -> np.ndarray:
    """Boxes with at least one BEV corner inside the point-cloud range (OpenPCDet's mask_boxes_outside_range)."""
    r = cfg.point_cloud_range
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    keep = np.zeros(len(boxes), bool)
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        ox, oy = sx * boxes[:, 3] / 2, sy * boxes[:, 4] / 2
        x, y = boxes[:, 0] + ox * c - oy * s, boxes[:, 1] + ox * s + oy * c
        keep |= (x >= r[0]) & (x <= r[3]) & (y >= r[1]) & (y <= r[4])
    return keep
