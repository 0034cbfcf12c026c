"""Text table of an EvalResult, laid out like OpenPCDet's KITTI printout (easy, moderate, hard per row)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from pointpillars_trt.evaluation.matching import average_precision, get_thresholds
from pointpillars_trt.evaluation.protocol import DIFFICULTIES, METRICS, N_SAMPLE_PTS, RECALL_SETS
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
    notes = [cap_note(cls, result.num_gt[c]) for c, cls in enumerate(result.classes)]
    return "\n".join(lines + [""] * any(notes) + [n for n in notes if n]) + "\n"


@lru_cache(maxsize=None)
def ap_cap(n_gt: int) -> tuple[float, float]:
    """(R11, R40) AP of perfect detections of n_gt boxes, by the evaluator's own arithmetic: it picks at most one
    score threshold per true positive, so with fewer than 41 boxes the precision curve ends early (R40: (n-1)/40)."""
    t = len(get_thresholds(np.arange(n_gt, 0, -1, dtype=np.float64), n_gt, N_SAMPLE_PTS))
    prec = np.zeros(N_SAMPLE_PTS)
    prec[:t] = 1.0
    return average_precision(prec)


def cap_note(cls: str, num_gt) -> str | None:
    """A line saying how far AP can reach for a class with too few ground-truth boxes, or None when nothing caps it."""
    caps = [ap_cap(int(n)) if n else (math.nan, math.nan) for n in num_gt]
    if all(math.isnan(r40) or r40 >= 100.0 for _, r40 in caps):
        return None
    counts = "/".join(str(int(n)) for n in num_gt)
    r40 = " / ".join("n/a" if math.isnan(c[1]) else f"{c[1]:.2f}" for c in caps)
    r11 = " / ".join("n/a" if math.isnan(c[0]) else f"{c[0]:.2f}" for c in caps)
    return (f"note: {cls} has {counts} ground-truth boxes ({'/'.join(DIFFICULTIES)}); with fewer than 41 the evaluator "
            f"samples fewer recall points, so even perfect detections score at most {r40} (AP_R40), {r11} (AP R11): "
            "evaluate on more frames")
