"""Text table of an EvalResult, laid out like OpenPCDet's KITTI printout (easy, moderate, hard per row)."""
from __future__ import annotations

import math

from pointpillars_trt.evaluation.protocol import DIFFICULTIES, METRICS, RECALL_SETS
from pointpillars_trt.evaluation.result import EvalResult

_LABELS = {"bbox": "bbox AP", "bev": "bev  AP", "3d": "3d   AP", "aos": "aos  AP"}


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4f}"


def format_table(result: EvalResult) -> str:
    """One block per class, overlap set and recall set: rows bbox/bev/3d/aos, columns easy, moderate, hard."""
    lines = [f"KITTI object evaluation: {result.num_frames} frames, protocol {result.protocol}; "
             f"columns: {', '.join(DIFFICULTIES)}"]
    for c, cls in enumerate(result.classes):
        counts = ", ".join(f"{d} {int(k)}" for d, k in zip(DIFFICULTIES, result.num_gt[c]))
        lines += ["", f"{cls}: ground truth {counts}"]
        for s, oset in enumerate(result.overlap_sets):
            ov = ", ".join(f"{v:.2f}" for v in result.min_overlaps[s, c])
            for r, rset in enumerate(RECALL_SETS):
                tag = "AP" if rset == "R11" else "AP_R40"
                lines.append(f"{cls} {tag}@{ov}:" + ("" if oset == "strict" else f"  ({oset})"))
                for m, metric in enumerate(METRICS):
                    vals = ", ".join(_fmt(result.ap[s, m, c, d, r]) for d in range(len(DIFFICULTIES)))
                    lines.append(f"{_LABELS[metric]}:{vals}")
    if "strict" in result.overlap_sets:
        lines.append("")
        for metric in ("bbox", "bev", "3d", "aos"):
            vals = ", ".join(_fmt(result.mean_ap(metric, d, "R40")) for d in DIFFICULTIES)
            lines.append(f"mAP_R40 {metric:<4} (strict, mean over classes with ground truth): {vals}")
    return "\n".join(lines) + "\n"
