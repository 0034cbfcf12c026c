"""Shared look of every view: class colours, point colouring and the caption text."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

# Saturated class colours, far from the blue point palette below so boxes stay readable (and testable).
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "Car": (255, 50, 50),
    "Pedestrian": (60, 255, 60),
    "Cyclist": (255, 215, 0),
}
_SPARE_COLORS = [(255, 0, 255), (255, 140, 0), (160, 90, 255), (255, 120, 160)]
GT_COLOR = (255, 255, 255)
# Points: dark blue (low / weak) -> pale cyan (high / strong); never white, red, green or yellow.
_PALETTE = np.array([[30, 50, 140], [40, 110, 210], [60, 180, 230], [150, 220, 240], [205, 235, 245]], np.float64)
HEIGHT_RANGE = (-2.5, 1.0)  # metres, lidar frame: ground ... roof tops


def class_color(name: str, class_names: Sequence[str] = ()) -> tuple[int, int, int]:
    """RGB of a class; classes outside the KITTI three get a stable spare colour."""
    if name in CLASS_COLORS:
        return CLASS_COLORS[name]
    extra = [n for n in class_names if n not in CLASS_COLORS]
    i = extra.index(name) if name in extra else sum(map(ord, name))
    return _SPARE_COLORS[i % len(_SPARE_COLORS)]


def point_colors(points: np.ndarray, color_by: str = "height") -> np.ndarray:
    """[N,3] uint8 colours of scan points by height (z) or intensity (4th column)."""
    if color_by == "height":
        v = (points[:, 2] - HEIGHT_RANGE[0]) / (HEIGHT_RANGE[1] - HEIGHT_RANGE[0])
    elif color_by == "intensity":
        v = points[:, 3] if points.shape[1] > 3 else np.zeros(len(points))
    else:
        raise ValueError(f"color_by must be 'height' or 'intensity', got {color_by!r}")
    v = np.clip(np.nan_to_num(v), 0.0, 1.0) * (len(_PALETTE) - 1)
    stops = np.arange(len(_PALETTE))
    return np.stack([np.interp(v, stops, _PALETTE[:, c]) for c in range(3)], axis=1).astype(np.uint8)


def caption(title: str, num_points: int, det_names: Sequence[str] | None, score_thresh: float,
            gt_names: Sequence[str] | None) -> str:
    """One line: scan name, point count, detections per class above the threshold, ground-truth count."""
    parts = [title, f"{num_points} points"]
    if det_names is not None:
        counts = Counter(det_names)
        per = ", ".join(f"{n} {c}" for n, c in sorted(counts.items())) or "none"
        parts.append(f"detections (score >= {score_thresh:.2f}): {per}")
    if gt_names is not None:
        counts = Counter(gt_names)
        parts.append("ground truth: " + (", ".join(f"{n} {c}" for n, c in sorted(counts.items())) or "none"))
    return " | ".join(p for p in parts if p)
