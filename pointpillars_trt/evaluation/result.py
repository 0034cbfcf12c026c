"""The outcome of a KITTI evaluation: AP tables and PR curves, with JSON export."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pointpillars_trt.evaluation.protocol import DIFFICULTIES, METRICS, RECALL_SETS


@dataclass
class EvalResult:
    """AP (percent) and PR curves of a KITTI evaluation.

    Axes: S overlap sets ("strict" = official thresholds, "loose"), M = 4 metrics (bbox, bev, 3d, aos),
    C classes, D = 3 difficulties, R = 2 recall sets (R11, R40), P = 41 sampled score thresholds.
    AP is NaN where a class has no counted ground truth at that difficulty (AOS: NaN when the
    detections carry no orientation, alpha = -10).
    """

    classes: tuple[str, ...]
    overlap_sets: tuple[str, ...]
    min_overlaps: np.ndarray  # [S, C, 3] minimum overlap for bbox, bev, 3d
    ap: np.ndarray  # [S, M, C, D, R]
    precision: np.ndarray  # [S, M, C, D, P] interpolated precision (aos: orientation similarity)
    recall: np.ndarray  # [S, M, C, D, P] recall at the sampled thresholds (0 past the last one)
    num_thresholds: np.ndarray  # [S, M, C, D] how many of the P samples are used
    num_gt: np.ndarray  # [C, D] counted ground-truth objects
    num_frames: int
    protocol: str = "openpcdet"

    def get(self, metric: str, cls: str, difficulty: str = "moderate", recall: str = "R40",
            overlap: str = "strict") -> float:
        """One AP value, e.g. result.get("3d", "Car", "moderate", "R40")."""
        return float(self.ap[self.overlap_sets.index(overlap), METRICS.index(metric), self.classes.index(cls),
                             DIFFICULTIES.index(difficulty), RECALL_SETS.index(recall)])

    def mean_ap(self, metric: str = "3d", difficulty: str = "moderate", recall: str = "R40",
                overlap: str = "strict") -> float:
        """Mean over classes with ground truth (NaN if none)."""
        vals = [self.get(metric, c, difficulty, recall, overlap) for c in self.classes]
        vals = [v for v in vals if not math.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def to_json(self) -> dict:
        """Plain-JSON dict: ap[overlap][class][metric][recall] = [easy, moderate, hard] (null where undefined)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 4)

        ap: dict = {}
        curves: dict = {}
        for s, oset in enumerate(self.overlap_sets):
            ap[oset] = {}
            curves[oset] = {}
            for c, cls in enumerate(self.classes):
                ap[oset][cls] = {
                    "min_overlap": {"bbox": float(self.min_overlaps[s, c, 0]), "bev": float(self.min_overlaps[s, c, 1]),
                                    "3d": float(self.min_overlaps[s, c, 2])},
                    **{m: {r: [num(self.ap[s, mi, c, d, ri]) for d in range(len(DIFFICULTIES))]
                           for ri, r in enumerate(RECALL_SETS)} for mi, m in enumerate(METRICS)},
                }
                curves[oset][cls] = {
                    m: {dname: {"recall": [round(float(v), 6) for v in self.recall[s, mi, c, d, :n]],
                                "precision": [round(float(v), 6) for v in self.precision[s, mi, c, d, :n]]}
                        for d, dname in enumerate(DIFFICULTIES)
                        for n in [int(self.num_thresholds[s, mi, c, d])]}
                    for mi, m in enumerate(METRICS)}
        return {
            "protocol": self.protocol,
            "num_frames": int(self.num_frames),
            "classes": list(self.classes),
            "difficulties": list(DIFFICULTIES),
            "num_gt": {cls: [int(v) for v in self.num_gt[c]] for c, cls in enumerate(self.classes)},
            "ap": ap,
            "pr_curves": curves,
        }
