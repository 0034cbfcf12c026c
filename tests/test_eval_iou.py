"""Overlap measures of the evaluation against shapely (independent polygon code)."""
import numpy as np
import pytest
from shapely.geometry import Polygon

from pointpillars_trt.evaluation.iou import bev_iou, box2d_overlap, iou3d


def footprint(b):
    """BEV corners of a camera box (x, y, z, l, h, w, ry) in the x-z plane: length along (cos ry, -sin ry)."""
    x, _, z, l, _, w, ry = b
    u = np.array([np.cos(ry), -np.sin(ry)])
    v = np.array([np.sin(ry), np.cos(ry)])
    c = np.array([x, z])
    return Polygon([c + su * l / 2 * u + sv * w / 2 * v for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1))])


def shapely_bev_iou(a, b):
    pa, pb = footprint(a), footprint(b)
    inter = pa.intersection(pb).area
    return inter / (pa.area + pb.area - inter)


def shapely_iou3d(a, b):
    inter = footprint(a).intersection(footprint(b)).area
    dy = min(a[1], b[1]) - max(a[1] - a[4], b[1] - b[4])
    inter *= max(dy, 0.0)
    return inter / (a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter)


def random_pairs(n, seed):
    rng = np.random.default_rng(seed)
    a = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(0, 2, n), rng.uniform(-3, 3, n), rng.uniform(0.5, 5, n),
                         rng.uniform(0.5, 2, n), rng.uniform(0.3, 2.5, n), rng.uniform(-np.pi, np.pi, n)])
    b = a + np.column_stack([rng.normal(0, 1, (n, 3)), rng.normal(0, 0.5, (n, 3)), rng.normal(0, 1, n)])
    b[:, 3:6] = np.abs(b[:, 3:6]) + 0.2
    return a, b


def test_bev_and_3d_iou_match_shapely_on_random_boxes():
    a, b = random_pairs(2000, 0)
    got_bev = np.array([bev_iou(x, y) for x, y in zip(a, b)])
    got_3d = np.array([iou3d(x, y) for x, y in zip(a, b)])
    want_bev = np.array([shapely_bev_iou(x, y) for x, y in zip(a, b)])
    want_3d = np.array([shapely_iou3d(x, y) for x, y in zip(a, b)])
    assert (want_bev > 0.3).sum() > 200  # the sample exercises real overlaps
    np.testing.assert_allclose(got_bev, want_bev, atol=1e-9)
    np.testing.assert_allclose(got_3d, want_3d, atol=1e-9)


@pytest.mark.parametrize("dry", [0.0, np.pi, np.pi / 2, 1e-12, -np.pi])
def test_identical_and_symmetric_boxes(dry):
    a = np.array([1.0, 1.6, 10.0, 4.0, 1.5, 1.6, 0.3])
    b = a.copy()
    b[6] += dry
    want = 1.0 if dry != np.pi / 2 else shapely_bev_iou(a, b)
    assert bev_iou(a, b) == pytest.approx(want, abs=1e-9)
    assert iou3d(a, b) == pytest.approx(want, abs=1e-9)


def test_hand_computed_overlaps():
    # axis-aligned: 4 x 2 footprints shifted by 1 m along length -> inter 3*2=6, union 8+8-6=10
    a = np.array([0.0, 1.0, 0.0, 4.0, 1.0, 2.0, 0.0])
    b = a.copy()
    b[0] = 1.0
    assert bev_iou(a, b) == pytest.approx(0.6)
    # and half the height overlapping: inter 6*0.5=3, union 8+8-3=13
    b[1] = 1.5
    assert iou3d(a, b) == pytest.approx(3 / 13)
    # boxes not touching in height
    b[1] = 3.0
    assert iou3d(a, b) == 0.0
    # a 2x2 square and the same square turned 45 deg: inter = octagon 8(sqrt2-1), union 8 - that
    s = np.array([0.0, 1.0, 0.0, 2.0, 1.0, 2.0, 0.0])
    t = s.copy()
    t[6] = np.pi / 4
    inter = 8 * (np.sqrt(2) - 1)
    assert bev_iou(s, t) == pytest.approx(inter / (8 - inter))


def test_box2d_overlap_criteria():
    d = np.array([0.0, 0.0, 10.0, 10.0])
    big = np.array([5.0, 0.0, 105.0, 100.0])
    assert box2d_overlap(d, big, -1) == pytest.approx(50 / (100 + 10000 - 50))
    assert box2d_overlap(d, big, 0) == pytest.approx(0.5)  # area of detection (first box)
    assert box2d_overlap(d, np.array([10.0, 0.0, 20.0, 10.0]), -1) == 0.0  # touching edges
