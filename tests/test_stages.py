"""CPU stages against brute-force NumPy/Python versions and shapely: voxelize edge cases, IoU, top-K ties, NMS, anchors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from conftest import ALL_SCANS
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.kitti import read_bin
from pointpillars_trt.stages.postprocess import nms_rotated, top_candidates
from pointpillars_trt.stages.rotated_iou import bev_iou_matrix
from pointpillars_trt.stages.voxelize import Voxelizer


def brute_voxelize(points, cfg):
    """Point-by-point Python loop with dicts (the DESIGN.md wording, literally)."""
    r = np.float32(cfg.point_cloud_range)
    v = np.float32(cfg.voxel_size)
    nx, ny, nz = cfg.grid_size
    pillars: dict[tuple, list] = {}
    order = []
    for p in points.astype(np.float32):
        if not (r[0] <= p[0] <= r[3] and r[1] <= p[1] <= r[4]):
            continue
        c = [math.floor(np.float32((p[i] - r[i]) / v[i])) for i in range(3)]
        if not (0 <= c[0] < nx and 0 <= c[1] < ny and 0 <= c[2] < nz):
            continue
        key = (c[2], c[1], c[0])
        if key not in pillars:
            if len(order) >= cfg.max_pillars:
                continue
            pillars[key] = []
            order.append(key)
        if len(pillars[key]) < cfg.max_points_per_pillar:
            pillars[key].append(p)
    return [(k, np.array(pillars[k])) for k in order]


@pytest.mark.parametrize("max_pillars", [40000, 700])
def test_voxelize_matches_brute_force(max_pillars):
    cfg = PointPillarsConfig(max_pillars=max_pillars)
    pts = read_bin(ALL_SCANS[2])
    vox = Voxelizer(cfg)
    st = vox(pts)
    ref = brute_voxelize(pts, cfg)
    assert st.num_pillars == len(ref) == min(max_pillars, st.num_pillars)
    if max_pillars == 700:
        assert st.dropped_max_pillars > 0
    for p, (key, raw) in enumerate(ref):
        assert tuple(vox.coords[p]) == (0, *key)
        n = len(raw)
        assert vox.npoints[p] == n
        np.testing.assert_array_equal(vox.features[p, :n, :4], raw)
        mean = raw[:, :3].astype(np.float64).mean(0)
        np.testing.assert_allclose(vox.features[p, :n, 4:7], raw[:, :3] - mean, atol=2e-5)
        centre = (np.array(key[::-1], np.float64) + 0.5) * np.array(cfg.voxel_size) + np.array(cfg.point_cloud_range[:3])
        np.testing.assert_allclose(vox.features[p, :n, 7:10], raw[:, :3] - centre, atol=2e-5)
        assert not vox.features[p, n:].any()


def test_voxelize_boundaries():
    """Range is inclusive in x/y (then the grid drops x == max); z outside [-3, 1) is dropped."""
    cfg = PointPillarsConfig()
    pts = np.array([[0.0, 0.0, 0.0, 1], [69.12, 0, 0, 1], [10, -39.68, 0, 1], [10, 39.68, 0, 1],
                    [10, 0, -3.0, 1], [10, 0, 1.0, 1], [10, 0, 0.999, 1], [10, 0, 1e30, 1], [-0.001, 0, 0, 1]], np.float32)
    vox = Voxelizer(cfg)
    st = vox(pts)
    kept = {tuple(np.round(vox.features[p, k, :3], 3)) for p in range(st.num_pillars) for k in range(vox.npoints[p])}
    for x, y, z in [(0, 0, 0), (10, -39.68, 0), (10, 0, -3), (10, 0, 0.999)]:
        assert (np.float32(x), np.float32(y), np.float32(z)) in kept, (x, y, z)
    for x, y, z in [(69.12, 0, 0), (10, 0, 1), (10, 0, 1e30), (-0.001, 0, 0)]:
        assert (np.float32(x), np.float32(y), np.float32(z)) not in kept, (x, y, z)
    expect = brute_voxelize(pts, cfg)
    assert st.num_pillars == len(expect)
    assert st.points_kept == sum(len(r) for _, r in expect)
    assert np.float32(1e30) not in vox.features[: st.num_pillars, :, 2]
    assert not any(np.isclose(vox.features[p, :vox.npoints[p], 2], 1.0).any() for p in range(st.num_pillars))
    assert vox(np.zeros((0, 4), np.float32)).num_pillars == 0


def test_voxelizer_state_does_not_leak_between_scans():
    cfg = PointPillarsConfig()
    a, b = read_bin(ALL_SCANS[0]), read_bin(ALL_SCANS[1])
    v1, v2 = Voxelizer(cfg), Voxelizer(cfg)
    v1(a)
    s1 = v1(b)
    s2 = v2(b)
    assert s1 == s2
    np.testing.assert_array_equal(v1.features[: s1.num_pillars], v2.features[: s2.num_pillars])


def _poly(b):
    c, s = math.cos(b[6]), math.sin(b[6])
    return shapely.Polygon([(b[0] + x * c - y * s, b[1] + x * s + y * c)
                            for x, y in ((b[3] / 2, b[4] / 2), (-b[3] / 2, b[4] / 2), (-b[3] / 2, -b[4] / 2), (b[3] / 2, -b[4] / 2))])


def random_boxes(rng, n, spread=4.0):
    b = np.zeros((n, 7))
    b[:, :2] = rng.uniform(-spread, spread, (n, 2))
    b[:, 3:5] = rng.uniform(0.3, 4.5, (n, 2))
    b[:, 5] = 1.5
    b[:, 6] = rng.uniform(-np.pi, 2 * np.pi, n)
    return b


def test_rotated_iou_matches_shapely():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 60), random_boxes(rng, 50)
    b[:5] = a[:5]  # identical boxes
    b[5:8] = a[5:8] + [0, 0, 0, 0, 0, 0, np.pi / 2]  # rotated copies
    got = bev_iou_matrix(a, b)
    pa, pb = [_poly(x) for x in a], [_poly(x) for x in b]
    want = np.array([[pa[i].intersection(pb[j]).area / pa[i].union(pb[j]).area for j in range(len(b))] for i in range(len(a))])
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert (want > 0).sum() > 200  # the sample really overlaps


def test_top_candidates_ties_and_threshold():
    s = np.array([0.5, 0.9, 0.05, 0.9, 0.5, 0.5, 0.7, 0.1], np.float32)
    assert top_candidates(s, 0.1, 100).tolist() == [1, 3, 6, 0, 4, 5, 7]
    assert top_candidates(s, 0.1, 4).tolist() == [1, 3, 6, 0]
    assert top_candidates(s, 0.1, 5).tolist() == [1, 3, 6, 0, 4]
    rng = np.random.default_rng(1)
    big = rng.integers(0, 50, 20000).astype(np.float32) / 50
    want = sorted(np.flatnonzero(big >= 0.1), key=lambda i: (-big[i], i))[:4096]
    assert top_candidates(big, 0.1, 4096).tolist() == want


def test_nms_matches_brute_force():
    rng = np.random.default_rng(2)
    boxes = random_boxes(rng, 300, spread=15).astype(np.float32)
    polys = [_poly(b.astype(np.float64)) for b in boxes]
    for thresh in (0.01, 0.3):
        keep = []
        for i in range(len(boxes)):
            if all(polys[i].intersection(polys[j]).area / polys[i].union(polys[j]).area <= thresh for j in keep):
                keep.append(i)
        assert nms_rotated(boxes, thresh, 500).tolist() == keep
        assert nms_rotated(boxes, thresh, 7).tolist() == keep[:7]


def test_anchor_layout():
    cfg = PointPillarsConfig()
    a = make_anchors(cfg).reshape(248, 216, 3, 2, 7)
    assert a.shape[0] * a.shape[1] * 6 == cfg.num_anchors
    np.testing.assert_allclose(a[0, :, 0, 0, 0], np.arange(216) * 69.12 / 215, atol=1e-5)
    np.testing.assert_allclose(a[:, 0, 0, 0, 1], -39.68 + np.arange(248) * 79.36 / 247, atol=1e-5)
    np.testing.assert_allclose(a[5, 7, 1, 1], [7 * 69.12 / 215, -39.68 + 5 * 79.36 / 247, -0.6 + 1.73 / 2, 0.8, 0.6, 1.73, 1.57], atol=1e-5)
    np.testing.assert_allclose(a[0, 0, 0, 0, 2], -1.78 + 1.56 / 2, atol=1e-6)
