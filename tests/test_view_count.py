"""`view` runs the detector and says how many boxes it draws at its --score-thresh, beside how many the model kept."""
from __future__ import annotations

import re

from conftest import ALL_SCANS
from test_cli_bad_input import cli


def test_view_prints_the_count_its_pictures_draw(tmp_path, onnx_dir):
    from pointpillars_trt.api import Detector
    from pointpillars_trt.io.points import read_bin

    with Detector.from_onnx(onnx_dir, device="cpu") as det:
        scores = det(read_bin(ALL_SCANS[0])).scores
    thresh = float(sorted(scores)[len(scores) // 2])  # half the boxes are drawn
    r = cli("view", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--bev", tmp_path / "b.png", "--score-thresh", str(thresh))
    assert r.returncode == 0, r.stderr
    kept, drawn = map(int, re.search(r": (\d+) detections \(score >= 0\.1\), (\d+) drawn", r.stdout).groups())
    assert kept == len(scores) and drawn == int((scores >= thresh).sum()) < kept
    r = cli("view", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--bev", tmp_path / "all.png")
    assert f": {len(scores)} detections\n" in r.stdout and "drawn" not in r.stdout  # threshold 0: every box drawn
