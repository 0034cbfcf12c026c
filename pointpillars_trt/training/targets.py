"""Anchor target assignment (OpenPCDet's AxisAlignedTargetAssigner) and the ResidualCoder encode, in NumPy.

Per class, every anchor of that class is compared with every ground-truth box of that class by the
"nearest" axis-aligned BEV IoU (a box is turned to 0 or 90 degrees, whichever is nearer, as OpenPCDet's
boxes3d_nearest_bev_iou does). An anchor is positive when its best IoU >= the class's matched threshold,
and so is, for each box, every anchor that ties for that box's best IoU (when > 0); it is background
below the unmatched threshold and ignored (-1) in between. Positives regress to the box of their best
IoU. No sampling (POS_FRACTION -1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig


@dataclass
class Targets:
    """One frame's targets: labels [A] int8 (-1 ignore, 0 background, k = class k), positives' indices and targets."""

    labels: np.ndarray  # [A] int8
    pos_idx: np.ndarray  # [K] int64, ascending
    box_targets: np.ndarray  # [K, 7] float32, ResidualCoder encoding
    dir_targets: np.ndarray  # [K] int64 direction bin


def limit_period(v: np.ndarray, offset: float, period: float) -> np.ndarray:
    """OpenPCDet's limit_period: v - floor(v / period + offset) * period."""
    return v - np.floor(v / period + offset) * period


def nearest_bev(boxes: np.ndarray) -> np.ndarray:
    """[N, 7] boxes -> [N, 4] axis-aligned (x1, y1, x2, y2), dx/dy swapped when the yaw is nearer 90 degrees."""
    rot = np.abs(limit_period(boxes[:, 6], 0.5, np.pi))
    dims = np.where((rot < np.pi / 4)[:, None], boxes[:, [3, 4]], boxes[:, [4, 3]])
    return np.concatenate([boxes[:, :2] - dims / 2, boxes[:, :2] + dims / 2], axis=1)


def nearest_bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] IoU of the nearest axis-aligned BEV rectangles of boxes a [N, 7] and b [M, 7]."""
    ra, rb = nearest_bev(a)[:, None, :], nearest_bev(b)[None, :, :]
    w = np.clip(np.minimum(ra[..., 2], rb[..., 2]) - np.maximum(ra[..., 0], rb[..., 0]), 0, None)
    h = np.clip(np.minimum(ra[..., 3], rb[..., 3]) - np.maximum(ra[..., 1], rb[..., 1]), 0, None)
    inter = w * h
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(ra) + area(rb) - inter, 1e-6)


def encode(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """ResidualCoder encode (the inverse of postprocess.decode_boxes before the direction correction)."""
    a = anchors.astype(np.float64)
    g = boxes.astype(np.float64)
    a_dims = np.maximum(a[:, 3:6], 1e-5)
    g_dims = np.maximum(g[:, 3:6], 1e-5)
    diag = np.sqrt(a_dims[:, 0] ** 2 + a_dims[:, 1] ** 2)
    out = np.empty((len(a), 7), np.float64)
    out[:, 0] = (g[:, 0] - a[:, 0]) / diag
    out[:, 1] = (g[:, 1] - a[:, 1]) / diag
    out[:, 2] = (g[:, 2] - a[:, 2]) / a_dims[:, 2]
    out[:, 3:6] = np.log(g_dims / a_dims)
    out[:, 6] = g[:, 6] - a[:, 6]
    return out.astype(np.float32)


def direction_bins(yaw: np.ndarray, cfg: PointPillarsConfig) -> np.ndarray:
    """OpenPCDet's get_direction_target: the bin of limit_period(yaw - dir_offset, 0, 2 pi)."""
    period = 2 * np.pi / cfg.num_dir_bins
    off = limit_period(yaw.astype(np.float64) - cfg.dir_offset, 0.0, 2 * np.pi)
    return np.clip(np.floor(off / period).astype(np.int64), 0, cfg.num_dir_bins - 1)


def anchor_classes(cfg: PointPillarsConfig) -> np.ndarray:
    """[A] 0-based class of every anchor, in make_anchors' order (class is the second-fastest axis)."""
    nrot = len(cfg.anchors[0].rotations)
    per_cell = np.repeat(np.arange(cfg.num_classes), nrot)
    return np.tile(per_cell, cfg.num_anchors // len(per_cell))


@dataclass
class AnchorIndex:
    """Per anchor class: its anchors' indices (ascending), their positions sorted by x with those x and y, and the
    window (half of the largest anchor extent) within which a box can overlap one. Built once per anchor set."""

    classes: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]


def anchor_index(anchors: np.ndarray, anchor_cls: np.ndarray, num_classes: int) -> AnchorIndex:
    out = []
    for c in range(num_classes):
        a_idx = np.flatnonzero(anchor_cls == c)
        order = np.argsort(anchors[a_idx, 0], kind="stable")
        half = 0.5 * float(anchors[a_idx, 3:5].max()) if len(a_idx) else 0.0
        out.append((a_idx, order, anchors[a_idx[order], 0], anchors[a_idx[order], 1], half))
    return AnchorIndex(out)


def _near(index: tuple, box: np.ndarray) -> np.ndarray:
    """Positions (within the class's anchors) of the anchors whose nearest BEV rectangle can overlap box's."""
    _, order, xs, ys, half = index
    r = half + 0.5 * max(box[3], box[4])
    lo, hi = np.searchsorted(xs, box[0] - r, "left"), np.searchsorted(xs, box[0] + r, "right")
    return order[lo:hi][np.abs(ys[lo:hi] - box[1]) <= r]


def assign_targets(anchors: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray, cfg: PointPillarsConfig,
                   anchor_cls: np.ndarray | None = None, index: AnchorIndex | None = None) -> Targets:
    """Targets of one frame: anchors [A, 7], gt_boxes [G, 7] (lidar), gt_labels [G] 1-based class ids.

    A negative label -k marks an ignore region of class k (an object too faint to learn from): anchors of that class
    that would be background there (BEV IoU >= the class's unmatched threshold) are ignored instead. IoUs are only
    computed within each box's window of anchors (all others are 0); `index` (anchor_index) saves rebuilding it."""
    anchor_cls = anchor_classes(cfg) if anchor_cls is None else anchor_cls
    index = index or anchor_index(anchors, anchor_cls, cfg.num_classes)
    labels = np.full(len(anchors), -1, np.int8)
    match = np.full(len(anchors), -1, np.int64)  # gt index a positive regresses to
    for c in range(cfg.num_classes):
        a_idx = index.classes[c][0]
        g_idx = np.flatnonzero(gt_labels == c + 1)
        a_max, a_best = np.zeros(len(a_idx)), np.zeros(len(a_idx), np.int64)
        fg = np.zeros(len(a_idx), bool)
        for j, g in enumerate(g_idx):
            sel = _near(index.classes[c], gt_boxes[g])
            ov = nearest_bev_iou(anchors[a_idx[sel]], gt_boxes[g][None])[:, 0]
            better = ov > a_max[sel]
            a_max[sel[better]], a_best[sel[better]] = ov[better], j
            if len(ov) and ov.max() > 0:  # every anchor tying for the box's best IoU is forced positive
                fg[sel[ov == ov.max()]] = True
        fg |= a_max >= cfg.matched_thresholds[c]
        lab = np.full(len(a_idx), -1, np.int8)
        lab[a_max < cfg.unmatched_thresholds[c]] = 0
        lab[fg] = c + 1
        for g in np.flatnonzero(gt_labels == -(c + 1)):  # ignore regions
            sel = _near(index.classes[c], gt_boxes[g])
            ov = nearest_bev_iou(anchors[a_idx[sel]], gt_boxes[g][None])[:, 0]
            sel = sel[(ov >= cfg.unmatched_thresholds[c]) & (lab[sel] == 0)]
            lab[sel] = -1
        labels[a_idx] = lab
        match[a_idx[fg]] = g_idx[a_best[fg]] if len(g_idx) else -1  # as OpenPCDet: the anchor's own best box
    pos_idx = np.flatnonzero(labels > 0)
    boxes = encode(gt_boxes[match[pos_idx]], anchors[pos_idx]) if len(pos_idx) else np.zeros((0, 7), np.float32)
    dirs = direction_bins(gt_boxes[match[pos_idx], 6], cfg) if len(pos_idx) else np.zeros(0, np.int64)
    return Targets(labels, pos_idx, boxes, dirs)
