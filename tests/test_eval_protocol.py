"""Hand-checked cases of the KITTI protocol (values derived in the comments).

Reminder of how the devkit turns matches into AP: the TP scores are sorted and 41 score thresholds
are sampled, the k-th (k = 0..40) where recall is closest to k/40; precision is taken at each
threshold, replaced by the max to its right, and averaged over samples 1..40 (R40) or 0,4,..,40
(R11). With fewer than 41 counted ground truths there are fewer than 41 samples (the rest count as
precision 0), so the cases below use 50 frames of one object each.
"""
import math

import numpy as np
import pytest

from pointpillars_trt.evaluation import evaluate
from pointpillars_trt.evaluation.protocol import METRICS
from pointpillars_trt.io.kitti import KittiObjects

N = 50
SCORES = 0.9 - 0.01 * np.arange(N)  # distinct TP scores, 0.90 .. 0.41


def objs(rows, scores=None):
    """KittiObjects from dicts with keys name, bbox, x, z, ry and optional trunc, occ, alpha, y, h, w, l."""
    if not rows:
        return KittiObjects.empty(with_score=scores is not None)
    f = lambda k, d: np.array([r.get(k, d) for r in rows], dtype=float)  # noqa: E731
    return KittiObjects(
        name=np.array([r["name"] for r in rows]), truncated=f("trunc", 0.0), occluded=f("occ", 0).astype(int),
        alpha=np.array([r.get("alpha", r.get("ry", 0.0)) for r in rows], float),
        bbox=np.array([r["bbox"] for r in rows], float),
        dimensions=np.column_stack([f("h", 1.5), f("w", 1.6), f("l", 3.9)]),
        location=np.column_stack([f("x", 0.0), f("y", 1.6), f("z", 10.0)]), rotation_y=f("ry", 0.0),
        score=None if scores is None else np.asarray(scores, float))


CAR = dict(name="Car", bbox=(100, 100, 200, 160), x=-5.0, z=12.0, ry=0.3)
PED = dict(name="Pedestrian", bbox=(300, 100, 330, 170), x=0.0, z=12.0, ry=1.0, h=1.7, w=0.6, l=0.8)
CYC = dict(name="Cyclist", bbox=(500, 100, 540, 170), x=5.0, z=12.0, ry=-2.0, h=1.7, w=0.6, l=1.8)
FAR_FP = dict(name="Car", bbox=(700, 100, 800, 160), x=20.0, z=30.0, ry=0.0)  # overlaps nothing


def car_frames(extra_gt=None, extra_dt=None, extra_score=None, frame=0, dt_change=None):
    """N frames with one easy Car each, detected exactly with SCORES; extras added to `frame`."""
    gt, dt = [], []
    for i in range(N):
        g_rows, d_rows, s = [CAR], [dict(CAR, **(dt_change or {}))], [SCORES[i]]
        if i == frame:
            g_rows = g_rows + (extra_gt or [])
            d_rows = d_rows + (extra_dt or [])
            s = s + (extra_score or [])
        gt.append(objs(g_rows))
        dt.append(objs(d_rows, s))
    return gt, dt


def ap(res, metric, cls="Car", diff="easy", recall="R40", overlap="strict"):
    return res.get(metric, cls, diff, recall, overlap)


def assert_all(res, value, cls="Car", metrics=METRICS, diffs=("easy", "moderate", "hard"), overlaps=("strict", "loose")):
    for o in overlaps:
        for m in metrics:
            for d in diffs:
                for r in ("R11", "R40"):
                    assert ap(res, m, cls, d, r, o) == pytest.approx(value, abs=1e-9), (o, m, d, r)


def test_perfect_detections_give_100_everywhere():
    gt = [objs([CAR, PED, CYC]) for _ in range(N)]
    dt = [objs([CAR, PED, CYC], [SCORES[i], 0.8, 0.7]) for i in range(N)]
    res = evaluate(gt, dt)
    for cls in ("Car", "Pedestrian", "Cyclist"):
        assert_all(res, 100.0, cls)
    assert res.num_gt.tolist() == [[N, N, N]] * 3


def test_false_positive_above_all_true_positives():
    # At every sampled threshold (all >= 0.41) the FP (0.99) is in: precision r/(r+1) for r TPs,
    # increasing in r, so the max-to-the-right makes every sample 50/51; AOS: the FP has similarity 0.
    gt, dt = car_frames(extra_dt=[FAR_FP], extra_score=[0.99])
    assert_all(evaluate(gt, dt), 100 * 50 / 51)  # 98.0392


def test_false_positive_below_all_true_positives():
    # The lowest sampled threshold is the lowest TP score 0.41 > 0.05: the FP never counts.
    gt, dt = car_frames(extra_dt=[FAR_FP], extra_score=[0.05])
    assert_all(evaluate(gt, dt), 100.0)


def test_false_positive_in_the_middle():
    # FP score 0.655 lies between the 25th (0.66) and 26th (0.65) TP. The k-th sample is at rank
    # round(1.25 k) (recall closest to k/40 with 50 GT), so samples k = 0..20 (ranks 1..25) have
    # precision 1 and k = 21..40 (ranks 26..50) have r/(r+1), raised to 50/51 by the max to the right.
    # R40 = (20 * 1 + 20 * 50/51) / 40 = 99.0196; R11 = (6 * 1 + 5 * 50/51) / 11 = 99.1087.
    gt, dt = car_frames(extra_dt=[FAR_FP], extra_score=[0.655])
    res = evaluate(gt, dt)
    for m in METRICS:
        assert ap(res, m, recall="R40") == pytest.approx(100 * (20 + 20 * 50 / 51) / 40)
        assert ap(res, m, recall="R11") == pytest.approx(100 * (6 + 5 * 50 / 51) / 11)
    assert ap(res, "3d", recall="R40") == pytest.approx(99.0196, abs=1e-4)
    assert ap(res, "3d", recall="R11") == pytest.approx(99.1087, abs=1e-4)


def test_missed_objects_cap_recall():
    # 45 of 50 detected: recall reaches 0.9 = 36/40, so samples k = 0..36 have precision 1, the rest 0:
    # R40 = 36/40 = 90; R11 = samples 0,4,..,36 = 10 of 11 -> 90.909.
    gt, dt = car_frames()
    for i in range(45, N):
        dt[i] = KittiObjects.empty(with_score=True)
    res = evaluate(gt, dt)
    for m in METRICS:
        assert ap(res, m, recall="R40") == pytest.approx(90.0)
        assert ap(res, m, recall="R11") == pytest.approx(1000 / 11)


def test_box_turned_by_pi_keeps_3d_ap_but_loses_orientation():
    # Same footprint and volume, heading reversed: IoU 1; alpha differs by pi -> (1 + cos pi)/2 = 0.
    gt, dt = car_frames(dt_change=dict(ry=CAR["ry"] + np.pi, alpha=CAR["ry"] + np.pi))
    res = evaluate(gt, dt)
    assert_all(res, 100.0, metrics=("bbox", "bev", "3d"))
    assert_all(res, 0.0, metrics=("aos",))


DONTCARE = dict(name="DontCare", bbox=(620, 0, 1200, 300), x=-1000.0, z=-1000.0, ry=-10.0, h=-1, w=-1, l=-1)


def test_false_positive_in_dontcare_region_differs_between_protocols():
    # A 100x60 px detection with 80 % of its area inside a large DontCare box (IoU ~0.03, so only the
    # devkit's "area of detection" criterion catches it; 0.8 > Car's 0.7).
    fp = dict(FAR_FP, bbox=(600, 100, 700, 160))
    gt, dt = car_frames(extra_gt=[DONTCARE], extra_dt=[fp], extra_score=[0.99])
    # the C++ devkit's reading: the DontCare region removes the FP for every metric
    assert_all(evaluate(gt, dt, protocol="devkit"), 100.0)
    # OpenPCDet's python evaluation (the default) applies DontCare to the 2D metric only: BEV/3D see the FP
    for res in (evaluate(gt, dt, protocol="openpcdet"), evaluate(gt, dt)):
        assert res.protocol == "openpcdet"
        assert_all(res, 100.0, metrics=("bbox", "aos"))
        assert_all(res, 100 * 50 / 51, metrics=("bev", "3d"))
    assert evaluate(gt, dt, protocol="devkit").to_json()["protocol"] == "devkit"
    with pytest.raises(ValueError):
        evaluate(gt, dt, protocol="cpp")


def test_dontcare_uses_each_metrics_own_minimum_overlap():
    # 60 % inside: below Car's 0.7 -> a false positive, but above Pedestrian's 0.5 -> ignored. The
    # devkit compares with the metric's own minimum overlap, so with the loose set (Car BEV/3D 0.5)
    # the Car FP is ignored there too.
    fp60 = dict(FAR_FP, bbox=(580, 100, 680, 160))
    gt = [objs([CAR, PED] + ([DONTCARE] if i == 0 else [])) for i in range(N)]
    dt = [objs([CAR, PED] + ([fp60, dict(fp60, name="Pedestrian")] if i == 0 else []),
               [SCORES[i], 0.8] + ([0.99, 0.99] if i == 0 else [])) for i in range(N)]
    res = evaluate(gt, dt, protocol="devkit")
    assert_all(res, 100 * 50 / 51, "Car", overlaps=("strict",))
    assert_all(res, 100 * 50 / 51, "Car", metrics=("bbox", "aos"), overlaps=("loose",))
    assert_all(res, 100.0, "Car", metrics=("bev", "3d"), overlaps=("loose",))
    assert_all(res, 100.0, "Pedestrian")
    # openpcdet: the Pedestrian FP is removed for 2D only
    res = evaluate(gt, dt, protocol="openpcdet")
    assert_all(res, 100.0, "Pedestrian", metrics=("bbox", "aos"))
    assert_all(res, 100 * 50 / 51, "Pedestrian", metrics=("bev", "3d"))


def test_neighbouring_classes_are_ignored():
    # A Car detection on a Van (or a Pedestrian on a Person_sitting) is neither TP nor FP.
    van = dict(CAR, name="Van", bbox=(700, 100, 800, 160), x=20.0, z=30.0)
    gt, dt = car_frames(extra_gt=[van], extra_dt=[dict(van, name="Car")], extra_score=[0.99])
    assert_all(evaluate(gt, dt), 100.0)
    # ... but on a Truck it is a false positive
    truck = dict(van, name="Truck")
    gt, dt = car_frames(extra_gt=[truck], extra_dt=[dict(truck, name="Car")], extra_score=[0.99])
    assert_all(evaluate(gt, dt), 100 * 50 / 51)
    # a detection named Van is not a Car detection at all
    gt, dt = car_frames(extra_dt=[dict(FAR_FP, name="Van")], extra_score=[0.99])
    assert_all(evaluate(gt, dt), 100.0)
    # Person_sitting for Pedestrian
    sit = dict(PED, name="Person_sitting")
    gt = [objs([PED, dict(sit, x=3.0, bbox=(400, 100, 430, 170))]) for _ in range(N)]
    dt = [objs([PED, dict(PED, x=3.0, bbox=(400, 100, 430, 170))], [SCORES[i], 0.99]) for i in range(N)]
    assert_all(evaluate(gt, dt), 100.0, "Pedestrian")


def test_difficulty_filtering_by_height_occlusion_truncation():
    # Per frame: an easy Car (detected), a moderate-only Car (height 30 px, occlusion 1 or truncation 0.2),
    # a hard-only Car (occlusion 2 or truncation 0.4) and one never counted (height 20, occlusion 3 or
    # truncation 0.6); only the easy one is detected.
    moderate = [dict(px=30), dict(occ=1), dict(trunc=0.2)]
    hard = [dict(occ=2), dict(trunc=0.4)]
    never = [dict(px=20), dict(occ=3), dict(trunc=0.6)]
    gt, dt, dt_all = [], [], []
    for i in range(N):
        rows = [CAR]
        for k, group in enumerate((moderate, hard, never)):
            spec = dict(group[i % len(group)])
            px = spec.pop("px", 60)
            rows.append(dict(CAR, x=-5.0 + 6 * (k + 1), bbox=(300 + 200 * k, 100, 400 + 200 * k, 100 + px), **spec))
        gt.append(objs(rows))
        dt.append(objs([CAR], [SCORES[i]]))
        dt_all.append(objs(rows, [SCORES[i], 0.5, 0.4, 0.3]))
    res = evaluate(gt, dt)
    assert res.num_gt[0].tolist() == [N, 2 * N, 3 * N]
    assert_all(res, 100.0, diffs=("easy",))
    # moderate: 50 of 100 found, recall 0.5 = 20/40 -> R40 20/40, R11 samples 0..20 step 4 = 6/11
    assert ap(res, "3d", diff="moderate", recall="R40") == pytest.approx(50.0)
    assert ap(res, "3d", diff="moderate", recall="R11") == pytest.approx(600 / 11)
    # hard: 50 of 150, recall 1/3: samples k = 0..13 (13/40 = 0.325) plus the last TP (k = 14)
    # -> R40 14/40 = 35, R11 samples 0,4,8,12 = 4/11
    assert ap(res, "3d", diff="hard", recall="R40") == pytest.approx(35.0)
    assert ap(res, "3d", diff="hard", recall="R11") == pytest.approx(400 / 11)
    # detecting the harder ones too: they are TPs where counted and ignored (not FP) where too hard
    assert_all(evaluate(gt, dt_all), 100.0)


def test_low_detections_ignored_below_the_difficulty_height():
    # A 30 px high FP (top score): below easy's 40 px it is ignored, for moderate/hard it is an FP.
    gt, dt = car_frames(extra_dt=[dict(FAR_FP, bbox=(700, 100, 800, 130))], extra_score=[0.99])
    res = evaluate(gt, dt)
    assert_all(res, 100.0, diffs=("easy",))
    assert_all(res, 100 * 50 / 51, diffs=("moderate", "hard"))


def test_class_without_ground_truth_is_nan_and_null_in_json():
    gt, dt = car_frames()
    res = evaluate(gt, dt)
    assert math.isnan(ap(res, "3d", "Pedestrian"))
    js = res.to_json()
    assert js["ap"]["strict"]["Pedestrian"]["3d"]["R40"] == [None, None, None]
    assert js["ap"]["strict"]["Car"]["3d"]["R40"] == [100.0, 100.0, 100.0]
    assert js["num_gt"]["Car"] == [N, N, N]


def test_single_frame_self_evaluation_follows_the_devkit_sampling():
    # One GT: one sampled threshold -> precision [1, 0, 0, ...]: R11 = 1/11, R40 = 0 (as the devkit).
    g = objs([CAR])
    res = evaluate([g], [objs([CAR], [0.9])])
    assert ap(res, "3d", recall="R11") == pytest.approx(100 / 11)
    assert ap(res, "3d", recall="R40") == 0.0


def test_mismatched_inputs():
    with pytest.raises(ValueError):
        evaluate([objs([CAR])], [])
    with pytest.raises(ValueError):
        evaluate([objs([CAR])], [objs([CAR], [0.5])], classes=("Tram",))
