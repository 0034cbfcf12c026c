"""evaluate(): KITTI object AP (2D, BEV, 3D, AOS; R11 and R40) of detections against ground truth."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.io.kitti import KittiObjects
from pointpillars_trt.evaluation import iou
from pointpillars_trt.evaluation.matching import average_precision, precision_curves, pr_statistics
from pointpillars_trt.evaluation.protocol import (DIFFICULTIES, METRICS, N_SAMPLE_PTS, NEIGHBOURS, PROTOCOLS, RECALL_SETS, dt_flags, gt_flags,
                       min_overlaps)
from pointpillars_trt.evaluation.result import EvalResult

DEFAULT_CLASSES = ("Car", "Pedestrian", "Cyclist")


class _Flat:
    """All frames' objects concatenated, with per-frame offsets (what the Numba loops iterate over)."""

    def __init__(self, frames: Sequence[KittiObjects], need_score: bool):
        counts = np.array([len(o) for o in frames], np.int64)
        self.off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        nonempty = [o for o in frames if len(o)]
        if need_score:
            for i, o in enumerate(frames):
                if len(o) and o.score is None:
                    raise UserError(f"detections of frame #{i} have no score column (16th); cannot rank them")

        def cat(get, shape):
            return np.concatenate([np.asarray(get(o), np.float64).reshape(shape) for o in nonempty]) if nonempty \
                else np.zeros((0,) + shape[1:])

        self.names = np.char.lower(np.concatenate([o.name.astype(str) for o in nonempty])) if nonempty \
            else np.zeros(0, "<U16")
        self.truncated = cat(lambda o: o.truncated, (-1,))
        self.occluded = cat(lambda o: o.occluded, (-1,))
        self.alpha = cat(lambda o: o.alpha, (-1,))
        self.bbox = np.ascontiguousarray(cat(lambda o: o.bbox, (-1, 4)))
        self.box = np.ascontiguousarray(cat(lambda o: o.camera_boxes(), (-1, 7)))  # x y z l h w ry
        self.score = cat(lambda o: o.score, (-1,)) if need_score else None
        self.height = np.abs(self.bbox[:, 3] - self.bbox[:, 1])  # the devkit takes abs(y2 - y1)


def evaluate(gt: Sequence[KittiObjects], dt: Sequence[KittiObjects],
             classes: Sequence[str] = DEFAULT_CLASSES, *, overlap_sets: Sequence[str] = ("strict", "loose"),
             protocol: str = "openpcdet") -> EvalResult:
    """KITTI AP of detections `dt` (with scores) against labels `gt`, frame by frame (same order and length).

    protocol "openpcdet" (default) discards detections in DontCare regions for the 2D bbox metric only, as
    OpenPCDet's kitti_object_eval_python does (the numbers OpenPCDet and mmdetection3d publish); "devkit"
    discards them for every metric, as the C++ evaluate_object reads it (BEV/3D AP can be higher).
    """
    if len(gt) != len(dt):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(dt)} detection frames")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    classes = tuple(classes)
    overlap_sets = tuple(overlap_sets)
    thr = np.array([[min_overlaps(s, c) for c in classes] for s in overlap_sets], np.float64).reshape(
        len(overlap_sets), len(classes), 3)

    g = _Flat(gt, need_score=False)
    d = _Flat(dt, need_score=True)
    wanted = {c.lower() for c in classes}
    gt_use = np.isin(g.names, list(wanted | {NEIGHBOURS[c] for c in wanted if c in NEIGHBOURS}))
    dt_use = np.isin(d.names, list(wanted))
    is_dc = g.names == "dontcare"
    dc_bbox = np.ascontiguousarray(g.bbox[is_dc])
    frame_of_gt = np.repeat(np.arange(len(gt)), np.diff(g.off))
    dc_counts = np.bincount(frame_of_gt[is_dc], minlength=len(gt)).astype(np.int64)
    dc_off = np.concatenate([[0], np.cumsum(dc_counts)]).astype(np.int64)
    pair_off = np.concatenate([[0], np.cumsum(np.diff(g.off) * np.diff(d.off))]).astype(np.int64)

    overlaps = [iou.dataset_overlaps(m, g.box, g.bbox, g.off, gt_use, d.box, d.bbox, d.off, dt_use, pair_off)
                for m in (iou.METRIC_BBOX, iou.METRIC_BEV, iou.METRIC_3D)]
    has_aos = not bool(np.any(d.alpha[dt_use] == -10.0))

    S, M, C, D = len(overlap_sets), len(METRICS), len(classes), len(DIFFICULTIES)
    ap = np.full((S, M, C, D, len(RECALL_SETS)), np.nan)
    prec = np.zeros((S, M, C, D, N_SAMPLE_PTS))
    rec = np.zeros((S, M, C, D, N_SAMPLE_PTS))
    nthr = np.zeros((S, M, C, D), np.int64)
    num_gt = np.zeros((C, D), np.int64)
    cache: dict = {}
    for c, cls in enumerate(classes):
        for di in range(D):
            gflag = gt_flags(g.names, g.truncated, g.occluded, g.height, cls, di)
            dflag = dt_flags(d.names, d.height, cls, di)
            for s in range(S):
                for m in range(3):  # bbox (with AOS), bev, 3d
                    min_ov = float(thr[s, c, m])
                    key = (c, di, m, min_ov)
                    if key not in cache:
                        use_dc = dc_bbox.shape[0] > 0 and (protocol == "devkit" or m == 0)
                        thresholds, pr, n_gt = pr_statistics(
                            overlaps[m], pair_off, g.off, d.off, dc_off, gflag, dflag, d.score, g.alpha, d.alpha,
                            d.bbox, dc_bbox, min_ov, m == 0 and has_aos, use_dc, N_SAMPLE_PTS)
                        cache[key] = (n_gt, len(thresholds), *precision_curves(pr, N_SAMPLE_PTS))
                    n_gt, nt, r, p, a = cache[key]
                    num_gt[c, di] = n_gt
                    targets = [(m, p)] + ([(3, a)] if m == 0 else [])
                    for mi, curve in targets:
                        rec[s, mi, c, di] = r
                        prec[s, mi, c, di] = curve
                        nthr[s, mi, c, di] = min(nt, N_SAMPLE_PTS)
                        if n_gt and (mi != 3 or has_aos):
                            ap[s, mi, c, di] = average_precision(curve)
    return EvalResult(classes=classes, overlap_sets=overlap_sets, min_overlaps=thr, ap=ap, precision=prec,
                      recall=rec, num_thresholds=nthr, num_gt=num_gt, num_frames=len(gt), protocol=protocol)
