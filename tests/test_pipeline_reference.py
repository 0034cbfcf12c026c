"""The ONNX/onnxruntime CPU pipeline against the independent torch reference (tests/reference.py) on every shared scan."""
from __future__ import annotations

import numpy as np
import pytest

import reference
from conftest import ALL_SCANS, make_cpu_pipeline
from pointpillars_trt.kitti_io import read_bin


@pytest.fixture(scope="module")
def pipeline(cfg, onnx_dir):
    with make_cpu_pipeline(cfg, onnx_dir) as p:
        yield p


@pytest.mark.parametrize("scan", ALL_SCANS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_cpu_pipeline_matches_reference(scan, cfg, pipeline, state_dict):
    points = read_bin(scan)
    ref = reference.forward(points, state_dict, cfg)
    res = pipeline.run(points)
    vox = pipeline.voxelizer
    P = res.stats.num_pillars
    # same pillars, same kept points, same features
    assert P == len(ref["coords"])
    np.testing.assert_array_equal(vox.coords[:P], ref["coords"])
    np.testing.assert_array_equal(vox.npoints[:P], ref["npoints"])
    np.testing.assert_allclose(vox.features[:P], ref["features"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(pipeline.pillar_features[:P], ref["pillar_features"], atol=1e-4, rtol=0)
    # head outputs within 1e-4
    for name, key in zip(("cls_preds", "box_preds", "dir_cls_preds"), ("cls", "box", "dir")):
        diff = np.abs(pipeline.heads[name][0] - ref[key]).max()
        assert diff < 1e-4, f"{name}: max |diff| {diff}"
    # same detections, same order (up to near-ties: scores within 1e-5 of each other)
    assert_same_detections(res.detections, ref)


def assert_same_detections(d, ref, box_tol=1e-3, score_tol=1e-5):
    """Same count; row i matches reference row i, or (near-tie in score) a row whose score is within score_tol."""
    assert len(d) == len(ref["scores"]) > 0
    np.testing.assert_allclose(d.scores, ref["scores"], atol=score_tol, rtol=0)
    used = np.zeros(len(d), bool)
    swapped = 0
    for i in range(len(d)):
        cands = np.flatnonzero((np.abs(ref["scores"] - d.scores[i]) <= score_tol) & ~used)
        cands = cands[np.argsort(np.abs(cands - i))]  # prefer the same position
        ok = [j for j in cands if ref["labels"][j] == d.labels[i] and np.abs(ref["boxes"][j] - d.boxes[i]).max() <= box_tol]
        assert ok, f"detection {i} ({d.labels[i]}, {d.scores[i]:.6f}, {d.boxes[i]}) has no reference match"
        used[ok[0]] = True
        swapped += ok[0] != i
    assert swapped <= 2 * max(1, len(d) // 100), f"{swapped} near-tie swaps"


def test_same_scan_twice_is_bit_identical(cfg, pipeline):
    a = read_bin(ALL_SCANS[0])
    first = pipeline.run(a).detections.as_array()
    pipeline.run(read_bin(ALL_SCANS[1]))  # another scan in between must not leak into the next
    second = pipeline.run(a).detections.as_array()
    assert first.tobytes() == second.tobytes()
