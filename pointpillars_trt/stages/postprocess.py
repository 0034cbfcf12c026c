"""Head outputs -> detections on the CPU: scores, top-K, ResidualCoder decode, direction bins, rotated NMS.

Semantics (DESIGN.md, OpenPCDet's class-agnostic post-processing): score = max over
classes of sigmoid(logit), label = argmax + 1; candidates score >= score_thresh;
the top nms_pre by score (ties: lower anchor index first); decode; greedy NMS
that suppresses a box whose BEV IoU with a kept box is > nms_thresh; keep the
first max_det. All box arithmetic in float32 as OpenPCDet does on the GPU.
"""
from __future__ import annotations

import numba
import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.stages.rotated_iou import bev_iou

F32 = np.float32


def scores_and_labels(cls_logits: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """[A] float32 scores (sigmoid of the max logit) and [A] int32 1-based labels from NHWC logits."""
    logits = cls_logits.reshape(-1, num_classes)
    best = logits.argmax(axis=1)
    top = np.take_along_axis(logits, best[:, None], axis=1)[:, 0].astype(F32)
    with np.errstate(over="ignore"):  # exp(-logit) is inf below -88: the score is 0, as it should be (no warning)
        scores = (F32(1.0) / (F32(1.0) + np.exp(-top))).astype(F32)
    return scores, (best + 1).astype(np.int32)


def top_candidates(scores: np.ndarray, thresh: float, k: int) -> np.ndarray:
    """Indices of the k best scores >= thresh, descending; ties by ascending index (a stable sort)."""
    idx = np.flatnonzero(scores >= F32(thresh))
    s = scores[idx]
    if len(idx) > k:
        kth = np.partition(s, len(s) - k)[len(s) - k]  # k-th largest
        above = s > kth
        ties = np.flatnonzero(s == kth)[: k - int(above.sum())]
        keep = np.sort(np.concatenate([np.flatnonzero(above), ties]))
        idx, s = idx[keep], s[keep]
    order = np.lexsort((idx, -s))
    return idx[order]


def limit_period(v: np.ndarray, offset: float, period: float) -> np.ndarray:
    """v - floor(v / period + offset) * period, in float32."""
    p = F32(period)
    return v - np.floor(v / p + F32(offset)) * p


def decode_boxes(box_deltas: np.ndarray, anchors: np.ndarray, dir_logits: np.ndarray, cfg: PointPillarsConfig) -> np.ndarray:
    """ResidualCoder decode of [K,7] deltas against [K,7] anchors + direction-bin yaw correction -> [K,7] float32."""
    t = box_deltas.astype(F32)
    a = anchors.astype(F32)
    diag = np.sqrt(a[:, 3] * a[:, 3] + a[:, 4] * a[:, 4])
    out = np.empty_like(t)
    out[:, 0] = t[:, 0] * diag + a[:, 0]
    out[:, 1] = t[:, 1] * diag + a[:, 1]
    out[:, 2] = t[:, 2] * a[:, 5] + a[:, 2]
    with np.errstate(over="ignore"):  # a delta past 88 (from junk input) is an inf size, as expf gives on the GPU
        out[:, 3:6] = np.exp(t[:, 3:6]) * a[:, 3:6]
    yaw = t[:, 6] + a[:, 6]
    bins = dir_logits.argmax(axis=1).astype(F32)
    period = 2 * np.pi / cfg.num_dir_bins
    rot = limit_period(yaw - F32(cfg.dir_offset), cfg.dir_limit_offset, period)
    out[:, 6] = rot + F32(cfg.dir_offset) + F32(period) * bins
    return out


@numba.njit(cache=True, nogil=True)
def nms_rotated(boxes, thresh, max_keep):
    """Greedy NMS over boxes sorted by descending score: drop a box whose BEV IoU with a kept one is > thresh."""
    keep = np.empty(min(boxes.shape[0], max_keep), np.int64)
    b64 = boxes.astype(np.float64)
    n = 0
    for i in range(boxes.shape[0]):
        if n >= max_keep:
            break
        ok = True
        for j in range(n):
            if bev_iou(b64[keep[j]], b64[i]) > thresh:
                ok = False
                break
        if ok:
            keep[n] = i
            n += 1
    return keep[:n]


def postprocess(cls: np.ndarray, box: np.ndarray, dir_cls: np.ndarray, anchors: np.ndarray,
                cfg: PointPillarsConfig) -> Detections:
    """One batch item's NHWC head outputs ([fy,fx,C] each) -> Detections."""
    scores, labels = scores_and_labels(cls, cfg.num_classes)
    idx = top_candidates(scores, cfg.score_thresh, cfg.nms_pre)
    if len(idx) == 0:
        return Detections.empty()
    boxes = decode_boxes(box.reshape(-1, 7)[idx], anchors[idx], dir_cls.reshape(-1, cfg.num_dir_bins)[idx], cfg)
    keep = nms_rotated(boxes, cfg.nms_thresh, cfg.max_det)
    sel = idx[keep]
    return Detections(boxes[keep], scores[sel], labels[sel])
