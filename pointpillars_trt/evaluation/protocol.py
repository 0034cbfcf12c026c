"""Constants and object filtering of the KITTI object benchmark (devkit evaluate_object.cpp).

For one evaluated class and difficulty, every ground-truth object gets a flag
  0 counted (same class, within the difficulty's limits),
  1 ignored: may absorb a detection but is neither TP nor FN (neighbouring class, or too hard),
 -1 not part of this evaluation,
and every detection 0 (counted), 1 (ignored: 2D box lower than the difficulty's minimum) or -1.
"""
from __future__ import annotations

import numpy as np

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)  # px, 2D box height
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)

METRICS = ("bbox", "bev", "3d", "aos")
RECALL_SETS = ("R11", "R40")
N_SAMPLE_PTS = 41
# Where DontCare regions remove false positives. "openpcdet": the 2D bbox metric only (OpenPCDet's and
# mmdetection3d's kitti_object_eval_python, behind their published tables); "devkit": every metric (the C++
# evaluate_object's reading). The first is the default.
PROTOCOLS = ("openpcdet", "devkit")

#: Classes KITTI labels use; names outside this set in result files are reported as unknown.
KITTI_NAMES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")

#: Ground-truth class that is ignored (not a false negative, absorbs detections) when evaluating a class.
NEIGHBOURS = {"car": "van", "pedestrian": "person_sitting"}

#: Minimum overlap (bbox, bev, 3d) per class; "strict" is the official benchmark, "loose" the
#: second set OpenPCDet also prints.
MIN_OVERLAPS = {
    "strict": {"car": (0.7, 0.7, 0.7), "pedestrian": (0.5, 0.5, 0.5), "cyclist": (0.5, 0.5, 0.5),
               "van": (0.7, 0.7, 0.7), "person_sitting": (0.5, 0.5, 0.5), "truck": (0.7, 0.7, 0.7)},
    "loose": {"car": (0.7, 0.5, 0.5), "pedestrian": (0.5, 0.25, 0.25), "cyclist": (0.5, 0.25, 0.25),
              "van": (0.7, 0.5, 0.5), "person_sitting": (0.5, 0.25, 0.25), "truck": (0.7, 0.5, 0.5)},
}


def min_overlaps(overlap_set: str, cls: str) -> tuple[float, float, float]:
    """(bbox, bev, 3d) minimum overlaps of a class; ValueError for a class the benchmark has no threshold for."""
    try:
        return MIN_OVERLAPS[overlap_set][cls.lower()]
    except KeyError:
        raise ValueError(f"no KITTI overlap threshold for class {cls!r} in set {overlap_set!r}; "
                         f"known: {', '.join(sorted(MIN_OVERLAPS['strict']))}") from None


def gt_flags(names_lower: np.ndarray, truncated: np.ndarray, occluded: np.ndarray, height: np.ndarray,
             cls: str, difficulty: int) -> np.ndarray:
    """Flags (0 / 1 / -1, see module doc) of ground-truth objects for one class and difficulty."""
    cls = cls.lower()
    same = names_lower == cls
    neighbour = names_lower == NEIGHBOURS[cls] if cls in NEIGHBOURS else np.zeros(len(names_lower), bool)
    too_hard = ((occluded > MAX_OCCLUSION[difficulty]) | (truncated > MAX_TRUNCATION[difficulty])
                | (height <= MIN_HEIGHT[difficulty]))
    flags = np.full(len(names_lower), -1, np.int8)
    flags[neighbour | (same & too_hard)] = 1
    flags[same & ~too_hard] = 0
    return flags


def dt_flags(names_lower: np.ndarray, height: np.ndarray, cls: str, difficulty: int) -> np.ndarray:
    """Flags (0 / 1 / -1) of detections for one class and difficulty: too-low 2D boxes are ignored."""
    flags = np.full(len(names_lower), -1, np.int8)
    same = names_lower == cls.lower()
    flags[same] = 0
    flags[height < MIN_HEIGHT[difficulty]] = 1  # as the devkit: any low box is ignored, whatever its class
    return flags
