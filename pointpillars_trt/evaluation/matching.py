"""Detection-to-ground-truth assignment and PR statistics of the KITTI protocol (Numba).

Follows the devkit's computeStatistics / getThresholds / eval_class: a first pass collects the
scores of true positives (each counted ground truth takes its best-scoring overlapping detection),
41 score thresholds are picked from them at evenly spaced recall positions, and a second pass
counts TP / FP / FN (and the orientation similarity) at each threshold, each ground truth taking
the free detection it overlaps most.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from pointpillars_trt.evaluation.iou import box2d_overlap

NO_DETECTION = -10000000.0


@njit(cache=True)
def get_thresholds(scores: np.ndarray, n_gt: int, n_sample_pts: int) -> np.ndarray:
    """Scores of true positives at which recall reaches each of n_sample_pts evenly spaced positions."""
    s = np.sort(scores)[::-1]
    out = np.empty(len(s))
    n = 0
    current = 0.0
    for i in range(len(s)):
        left = (i + 1) / n_gt
        right = (i + 2) / n_gt if i < len(s) - 1 else left
        if (right - current) < (current - left) and i < len(s) - 1:
            continue
        out[n] = s[i]
        n += 1
        current += 1.0 / (n_sample_pts - 1.0)
    return out[:n]


@njit(cache=True)
def _frame_stats(ov, base, nd_all, g0, d0, gidx, ng, didx, nd, gt_flag, dt_flag, dt_score, gt_alpha, dt_alpha,
                 dt_bbox, dc_bbox, dc0, dc1, min_overlap, thresh, compute_fp, compute_aos, use_dc, assigned,
                 scores_out, n_out):
    """TP, FP, FN, similarity sum of one frame; without compute_fp, appends TP scores to scores_out."""
    for k in range(nd):
        assigned[k] = False
    tp = 0
    fp = 0
    fn = 0
    sim = 0.0
    for a in range(ng):
        gi = gidx[a]
        row = base + (gi - g0) * nd_all - d0
        det_k = -1
        valid = NO_DETECTION
        max_ov = 0.0
        took_ignored = False
        for k in range(nd):
            dj = didx[k]
            if assigned[k]:
                continue
            if compute_fp and dt_score[dj] < thresh:
                continue
            o = ov[row + dj]
            if o <= min_overlap:
                continue
            if not compute_fp:
                if dt_score[dj] > valid:
                    det_k = k
                    valid = dt_score[dj]
            elif (o > max_ov or took_ignored) and dt_flag[dj] == 0:
                max_ov = o
                det_k = k
                valid = 1.0
                took_ignored = False
            elif valid == NO_DETECTION and dt_flag[dj] == 1:
                det_k = k
                valid = 1.0
                took_ignored = True
        if valid == NO_DETECTION:
            if gt_flag[gi] == 0:
                fn += 1
        elif gt_flag[gi] == 1 or dt_flag[didx[det_k]] == 1:
            assigned[det_k] = True
        else:
            tp += 1
            dj = didx[det_k]
            if not compute_fp:
                scores_out[n_out + tp - 1] = dt_score[dj]
            if compute_aos:
                sim += (1.0 + np.cos(gt_alpha[gi] - dt_alpha[dj])) / 2.0
            assigned[det_k] = True
    if compute_fp:
        for k in range(nd):
            dj = didx[k]
            if not (assigned[k] or dt_flag[dj] == 1 or dt_score[dj] < thresh):
                fp += 1
        if use_dc:
            for c in range(dc0, dc1):
                for k in range(nd):
                    dj = didx[k]
                    if assigned[k] or dt_flag[dj] == 1 or dt_score[dj] < thresh:
                        continue
                    if box2d_overlap(dt_bbox[dj], dc_bbox[c], 0) > min_overlap:
                        assigned[k] = True
                        fp -= 1
        if compute_aos and tp == 0 and fp == 0:
            sim = -1.0
    return tp, fp, fn, sim


@njit(cache=True)
def pr_statistics(ov, pair_off, gt_off, dt_off, dc_off, gt_flag, dt_flag, dt_score, gt_alpha, dt_alpha, dt_bbox,
                  dc_bbox, min_overlap, compute_aos, use_dc, n_sample_pts):
    """Thresholds [T] and summed (TP, FP, FN, similarity) [T, 4] over all frames for one class/difficulty/metric."""
    n_frames = len(gt_off) - 1
    # relevant (flag != -1) objects of each frame, in file order
    gsel = np.empty(len(gt_flag), np.int64)
    dsel = np.empty(len(dt_flag), np.int64)
    gs_off = np.zeros(n_frames + 1, np.int64)
    ds_off = np.zeros(n_frames + 1, np.int64)
    ng_tot = 0
    nd_tot = 0
    max_nd = 1
    n_gt = 0
    for f in range(n_frames):
        for i in range(gt_off[f], gt_off[f + 1]):
            if gt_flag[i] != -1:
                gsel[ng_tot] = i
                ng_tot += 1
            if gt_flag[i] == 0:
                n_gt += 1
        for j in range(dt_off[f], dt_off[f + 1]):
            if dt_flag[j] != -1:
                dsel[nd_tot] = j
                nd_tot += 1
        gs_off[f + 1] = ng_tot
        ds_off[f + 1] = nd_tot
        max_nd = max(max_nd, ds_off[f + 1] - ds_off[f])
    assigned = np.zeros(max_nd, np.bool_)
    scores = np.empty(max(ng_tot, 1))
    n_scores = 0
    for f in range(n_frames):
        g = gsel[gs_off[f]:gs_off[f + 1]]
        d = dsel[ds_off[f]:ds_off[f + 1]]
        nd_all = dt_off[f + 1] - dt_off[f]
        tp, fp, fn, sim = _frame_stats(ov, pair_off[f], nd_all, gt_off[f], dt_off[f], g, len(g), d, len(d), gt_flag,
                                       dt_flag, dt_score, gt_alpha, dt_alpha, dt_bbox, dc_bbox, dc_off[f],
                                       dc_off[f + 1], min_overlap, 0.0, False, False, use_dc, assigned, scores,
                                       n_scores)
        n_scores += tp
    if n_gt == 0:
        return np.zeros(0), np.zeros((0, 4)), n_gt
    thresholds = get_thresholds(scores[:n_scores], n_gt, n_sample_pts)
    pr = np.zeros((len(thresholds), 4))
    for f in range(n_frames):
        g = gsel[gs_off[f]:gs_off[f + 1]]
        d = dsel[ds_off[f]:ds_off[f + 1]]
        if len(d) == 0:  # nothing to match: every counted ground truth is missed at every threshold
            nfn = 0
            for i in g:
                if gt_flag[i] == 0:
                    nfn += 1
            for t in range(len(thresholds)):
                pr[t, 2] += nfn
            continue
        nd_all = dt_off[f + 1] - dt_off[f]
        for t in range(len(thresholds)):
            tp, fp, fn, sim = _frame_stats(ov, pair_off[f], nd_all, gt_off[f], dt_off[f], g, len(g), d, len(d),
                                           gt_flag, dt_flag, dt_score, gt_alpha, dt_alpha, dt_bbox, dc_bbox,
                                           dc_off[f], dc_off[f + 1], min_overlap, thresholds[t], True, compute_aos,
                                           use_dc, assigned, scores, 0)
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            if sim != -1.0:
                pr[t, 3] += sim
    return thresholds, pr, n_gt


def precision_curves(pr: np.ndarray, n_sample_pts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, interpolated precision and interpolated orientation similarity at the sampled thresholds.

    Arrays have n_sample_pts entries (zeros past the thresholds), precision[i] = max(precision[i:]).
    """
    t = min(len(pr), n_sample_pts)
    recall = np.zeros(n_sample_pts)
    prec = np.zeros(n_sample_pts)
    aos = np.zeros(n_sample_pts)
    if t:
        tp, fp, fn, sim = pr[:t, 0], pr[:t, 1], pr[:t, 2], pr[:t, 3]
        recall[:t] = tp / (tp + fn)
        with np.errstate(invalid="ignore", divide="ignore"):
            prec[:t] = np.nan_to_num(tp / (tp + fp))
            aos[:t] = np.nan_to_num(sim / (tp + fp))
        prec = np.maximum.accumulate(prec[::-1])[::-1]
        aos = np.maximum.accumulate(aos[::-1])[::-1]
    return recall, prec, aos


def average_precision(prec: np.ndarray) -> tuple[float, float]:
    """(R11, R40) AP in percent from a 41-point interpolated precision array, as the devkit averages it."""
    return float(prec[0:41:4].sum() / 11 * 100), float(prec[1:41].sum() / 40 * 100)
