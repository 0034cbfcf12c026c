"""The ONNX/onnxruntime CPU pipeline against the independent torch reference (tests/reference.py) on every shared scan."""
from __future__ import annotations

import numpy as np
import pytest

import reference
from conftest import ALL_SCANS, assert_same_detections, make_cpu_pipeline
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.kitti import read_bin


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
    # same detections, same order (up to near-tied scores)
    assert_same_detections(res.detections, Detections(ref["boxes"], ref["scores"], ref["labels"]))


def test_same_scan_twice_is_bit_identical(cfg, pipeline):
    a = read_bin(ALL_SCANS[0])
    first = pipeline.run(a).detections.as_array()
    pipeline.run(read_bin(ALL_SCANS[1]))  # another scan in between must not leak into the next
    second = pipeline.run(a).detections.as_array()
    assert first.tobytes() == second.tobytes()
