"""OpenPCDet's gt_sampling (DataBaseSampler) for a training frame: paste objects from the ground-truth database
until each class reaches its group size, rejecting any whose BEV box overlaps a box already there (rotated IoU > 0,
OpenPCDet's test) or that lands on the scene's own points (a wall, a hedge, a van: more than a few points above the
ground inside it) or where the lidar sees no ground around it (behind a wall); the scene's points inside pasted
boxes are removed and the objects' points added.

Unlike OpenPCDet, a pasted object is first turned about the sensor's vertical axis to a random bearing in the
camera's view, so its scan pattern (range, the side facing the sensor) stays what the lidar saw, and stood on the
target frame's ground; a real object may also move farther away, its points thinned as 1 / distance^2."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointpillars_trt.evaluation.scan_stats import points_in_box
from pointpillars_trt.stages.rotated_iou import bev_iou_matrix
from pointpillars_trt.training.gt_database import MIN_POINTS, GtDatabase


@dataclass(frozen=True)
class SamplingOptions:
    """Group sizes (objects per class a frame is filled up to) and the pasting limits."""

    groups: tuple[tuple[str, int], ...] = (("Car", 15), ("Pedestrian", 10), ("Cyclist", 10))
    real_share: float = 0.25  # chance that a pasted object comes from a real frame, when the database holds any
    max_bearing: float = 0.61  # rad (35 deg) either side of straight ahead: inside the camera's view
    min_range: float = 3.0
    max_range: float = 66.0
    scene_points: int = 5  # scene points > 0.3 m above the ground inside a candidate box that block it
    seen_ground: int = 3  # ground points needed within 1 m of a candidate box nearer than 40 m (not behind a wall)
    farther: float = 1.6  # a real object moves up to this factor farther (half of them stay where they were)


def _turn(box: np.ndarray, pts: np.ndarray, angle: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an object about the sensor's z axis by angle, then shift it along its bearing to factor times its
    distance (the object keeps its shape)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    box, pts = box.copy(), pts.copy()
    centre = rot @ box[:2]
    shift = (factor - 1.0) * centre
    box[:2] = centre + shift
    box[6] += angle
    pts[:, :2] = (pts[:, :2].astype(np.float64) @ rot.T + shift).astype(np.float32)
    return box, pts


def _candidate(db: GtDatabase, k: int, ground: np.ndarray, rng: np.random.Generator,
               opts: SamplingOptions) -> tuple[np.ndarray, np.ndarray] | None:
    """Database object k turned to a random bearing (and for a real one maybe farther), stood on the ground."""
    box, pts = db.boxes[k], db.object_points(k)
    factor = 1.0
    if db.is_real[k] and rng.random() < 0.5:
        factor = float(rng.uniform(1.0, opts.farther))
        pts = pts[rng.random(len(pts)) < 1.0 / factor ** 2]
        if len(pts) < MIN_POINTS:
            return None
    bearing = float(rng.uniform(-opts.max_bearing, opts.max_bearing))
    box, pts = _turn(box, pts, bearing - float(np.arctan2(box[1], box[0])), factor)
    dist = float(np.hypot(box[0], box[1]))
    if not opts.min_range <= dist <= opts.max_range:
        return None
    dz = ground[0] * box[0] + ground[1] * box[1] + ground[2] + db.bottom[k] - (box[2] - box[5] / 2)
    box[2] += dz
    pts[:, 2] += np.float32(dz)
    return box, pts


def sample_into(frame: dict[str, np.ndarray], db: GtDatabase, class_names: tuple[str, ...], rng: np.random.Generator,
                opts: SamplingOptions = SamplingOptions()) -> dict[str, np.ndarray]:
    """The frame with database objects pasted in (points, boxes, labels, usable updated; pasted objects first)."""
    if len(db) == 0:
        return frame
    points, ground = frame["points"], frame["ground"]
    height = points[:, 2] - (ground[0] * points[:, 0] + ground[1] * points[:, 1] + ground[2])
    raised = points[height > 0.3]
    flat = points[np.abs(height) < 0.2]
    placed = np.concatenate([frame["boxes"], frame["other"]]).reshape(-1, 7)
    new_boxes, new_pts, new_labels = [], [], []
    real = db.is_real
    for name, group in opts.groups:
        if name not in class_names:
            continue
        label = class_names.index(name) + 1
        need = group - int(np.sum(np.abs(frame["labels"]) == label))
        pool = [np.flatnonzero((db.names == name) & src) for src in (real, ~real)]
        for _ in range(max(need, 0)):
            use = pool[0] if len(pool[0]) and (rng.random() < opts.real_share or not len(pool[1])) else pool[1]
            if not len(use):
                break
            cand = _candidate(db, int(rng.choice(use)), ground, rng, opts)
            if cand is None:
                continue
            box, pts = cand
            if len(placed) and bev_iou_matrix(box[None], placed).max() > 0:
                continue
            if points_in_box(raised, box, 0.1).sum() > opts.scene_points:
                continue
            if np.hypot(box[0], box[1]) < 40 and points_in_box(flat, box, 1.0).sum() < opts.seen_ground:
                continue
            placed = np.concatenate([placed, box[None]])
            new_boxes.append(box)
            new_pts.append(pts)
            new_labels.append(label)
    if not new_boxes:
        return frame
    keep = np.ones(len(points), bool)
    for box in new_boxes:
        keep &= ~points_in_box(points, box)
    return {**frame, "points": np.concatenate([*new_pts, points[keep]]).astype(np.float32),
            "boxes": np.concatenate([np.array(new_boxes), frame["boxes"]]).reshape(-1, 7),
            "labels": np.concatenate([np.array(new_labels, np.int64), frame["labels"]]),
            "usable": np.concatenate([np.ones(len(new_boxes), bool), frame["usable"]])}
