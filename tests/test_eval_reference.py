"""evaluate() against a slow, independent re-implementation of the KITTI protocol on random scenes.

The reference works object by object in plain Python, with shapely for the rotated footprints and a
fresh per-threshold matching loop; it shares no code with pointpillars_trt.evaluation (the scenes
come from evaluation.synthetic, which only generates data).
"""
import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from pointpillars_trt.evaluation import evaluate
from pointpillars_trt.evaluation.synthetic import noisy_detections, random_labels

MIN_H = {0: 40, 1: 25, 2: 25}
MAX_OCC = {0: 0, 1: 1, 2: 2}
MAX_TRUNC = {0: 0.15, 1: 0.3, 2: 0.5}
OVERLAP = {"strict": {"Car": (0.7, 0.7, 0.7), "Pedestrian": (0.5, 0.5, 0.5), "Cyclist": (0.5, 0.5, 0.5)},
           "loose": {"Car": (0.7, 0.5, 0.5), "Pedestrian": (0.5, 0.25, 0.25), "Cyclist": (0.5, 0.25, 0.25)}}
NEIGHBOUR = {"Car": "Van", "Pedestrian": "Person_sitting"}


def to_dicts(o):
    return [dict(name=str(o.name[i]), trunc=float(o.truncated[i]), occ=int(o.occluded[i]), alpha=float(o.alpha[i]),
                 bbox=[float(v) for v in o.bbox[i]], h=float(o.dimensions[i, 0]), w=float(o.dimensions[i, 1]),
                 l=float(o.dimensions[i, 2]), x=float(o.location[i, 0]), y=float(o.location[i, 1]),
                 z=float(o.location[i, 2]), ry=float(o.rotation_y[i]),
                 score=None if o.score is None else float(o.score[i])) for i in range(len(o))]


def rect_area(b):
    return max(b[2] - b[0], 0) * max(b[3] - b[1], 0)


def inter_area(a, b):
    return max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)


def poly(o):
    # camera rotation about y: the length axis points along (cos ry, -sin ry) in (x, z)
    c, s = math.cos(o["ry"]), math.sin(o["ry"])
    pts = []
    for du, dv in ((0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5)):
        u, v = du * o["l"], dv * o["w"]
        pts.append((o["x"] + u * c + v * s, o["z"] - u * s + v * c))
    return Polygon(pts)


def overlap(metric, g, d):
    if metric == 0:
        i = inter_area(g["bbox"], d["bbox"])
        return i / (rect_area(g["bbox"]) + rect_area(d["bbox"]) - i) if i > 0 else 0.0
    i = poly(g).intersection(poly(d)).area
    if metric == 1:
        return i / (g["l"] * g["w"] + d["l"] * d["w"] - i) if i > 0 else 0.0
    dy = min(g["y"], d["y"]) - max(g["y"] - g["h"], d["y"] - d["h"])
    if dy <= 0 or i <= 0:
        return 0.0
    i *= dy
    return i / (g["l"] * g["w"] * g["h"] + d["l"] * d["w"] * d["h"] - i)


def gt_state(o, cls, diff):
    """'count', 'ignore' or None (not part of this class's evaluation)."""
    if o["name"] == cls:
        height = o["bbox"][3] - o["bbox"][1]
        hard = o["occ"] > MAX_OCC[diff] or o["trunc"] > MAX_TRUNC[diff] or height <= MIN_H[diff]
        return "ignore" if hard else "count"
    if NEIGHBOUR.get(cls) == o["name"]:
        return "ignore"
    return None


def dt_state(o, cls, diff):
    if o["bbox"][3] - o["bbox"][1] < MIN_H[diff]:
        return "ignore"
    return "count" if o["name"] == cls else None


def match_frame(frame, thresh, final, min_ov, aos, use_dc):
    """(tp, fp, fn, similarity or None, TP scores) of one frame; final=False is the score-collecting pass."""
    gts, dets, ov, dcs = frame
    live = [k for k, (st, d) in enumerate(dets) if st is not None and (not final or d["score"] >= thresh)]
    taken = set()
    tp = fn = 0
    sim = 0.0
    tp_scores = []
    for gi, (gst, g) in enumerate(gts):
        if gst is None:
            continue
        cands = [k for k in live if k not in taken and ov[gi][k] > min_ov]
        pick = None
        if not final:
            if cands:
                pick = max(cands, key=lambda k: (dets[k][1]["score"], -k))
        else:
            counted = [k for k in cands if dets[k][0] == "count"]
            if counted:
                best = max(ov[gi][k] for k in counted)
                pick = min(k for k in counted if ov[gi][k] == best)
            elif cands:
                pick = cands[0]
        if pick is None:
            fn += gst == "count"
            continue
        taken.add(pick)
        if gst == "count" and dets[pick][0] == "count":
            tp += 1
            tp_scores.append(dets[pick][1]["score"])
            sim += (1 + math.cos(g["alpha"] - dets[pick][1]["alpha"])) / 2
    fp = sum(1 for k in live if k not in taken and dets[k][0] == "count")
    if final and use_dc:
        for dc in dcs:
            for k in live:
                d = dets[k][1]
                if k in taken or dets[k][0] != "count":
                    continue
                if inter_area(d["bbox"], dc) / rect_area(d["bbox"]) > min_ov:
                    taken.add(k)
                    fp -= 1
    return tp, fp, fn, (sim if tp + fp > 0 else None), tp_scores


def sample_thresholds(scores, n_gt):
    scores = sorted(scores, reverse=True)
    picked, target = [], 0.0
    for i, s in enumerate(scores):
        last = i == len(scores) - 1
        here, nxt = (i + 1) / n_gt, (i + 2) / n_gt
        if last or not (nxt - target < target - here):
            picked.append(s)
            target += 1 / 40
    return picked


def reference_ap(gt_frames, dt_frames, cls, diff, metric, min_ov, aos, use_dc):
    frames = []
    for g, d in zip(gt_frames, dt_frames):
        gts = [(gt_state(o, cls, diff), o) for o in g]
        dets = [(dt_state(o, cls, diff), o) for o in d]
        ov = [[overlap(metric, o, p) if st is not None and dst is not None else 0.0 for dst, p in dets]
              for st, o in gts]
        dcs = [o["bbox"] for o in g if o["name"] == "DontCare"]
        frames.append((gts, dets, ov, dcs))
    n_gt = sum(st == "count" for f in frames for st, _ in f[0])
    if n_gt == 0:
        return None
    scores = [s for f in frames for s in match_frame(f, 0.0, False, min_ov, aos, use_dc)[4]]
    prec, sims = [0.0] * 41, [0.0] * 41
    for t, thr in enumerate(sample_thresholds(scores, n_gt)[:41]):
        tp = fp = 0
        sim = 0.0
        for f in frames:
            a, b, _, s, _ = match_frame(f, thr, True, min_ov, aos, use_dc)
            tp, fp = tp + a, fp + b
            sim += s or 0.0
        prec[t] = tp / (tp + fp) if tp + fp else 0.0
        sims[t] = sim / (tp + fp) if tp + fp else 0.0
    curve = sims if aos else prec
    curve = [max(curve[i:]) for i in range(41)]
    return sum(curve[::4]) / 11 * 100, sum(curve[1:]) / 40 * 100


def scenes(seed, n_frames):
    rng = np.random.default_rng(seed)
    gt = [random_labels(rng, int(rng.integers(0, 20))) for _ in range(n_frames)]
    dt = [noisy_detections(rng, g, p_detect=0.85, n_false=2.0, noise=0.12) for g in gt]
    return gt, dt


@pytest.mark.parametrize("seed,protocol,overlap_set", [(0, "devkit", "strict"), (1, "devkit", "loose"),
                                                       (2, "openpcdet", "strict")])
def test_matches_brute_force_reference(seed, protocol, overlap_set):
    gt, dt = scenes(seed, 60)
    res = evaluate(gt, dt, overlap_sets=(overlap_set,), protocol=protocol)
    gd, dd = [to_dicts(o) for o in gt], [to_dicts(o) for o in dt]
    checked = 0
    for c, cls in enumerate(res.classes):
        for diff in range(3):
            for m, metric in enumerate(("bbox", "bev", "3d", "aos")):
                mo = OVERLAP[overlap_set][cls][min(m, 2) if metric != "aos" else 0]
                use_dc = protocol == "devkit" or metric in ("bbox", "aos")
                want = reference_ap(gd, dd, cls, diff, 0 if metric == "aos" else m, mo, metric == "aos", use_dc)
                got = res.ap[0, m, c, diff]
                if want is None:
                    assert np.isnan(got).all()
                    continue
                np.testing.assert_allclose(got, want, atol=0.01, err_msg=f"{cls} {diff} {metric}")
                checked += want[1] > 0
    assert checked >= 20  # most entries are non-trivial
