"""Small newcomer traps: each answered with one line before any model work."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ALL_SCANS, REPO
from test_cli_bad_input import assert_one_line_error, cli


def test_view_window_without_display_fails_before_the_model(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", "view", str(ALL_SCANS[0]), "--random-init",
                        "--cache-dir", str(tmp_path / "c")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert_one_line_error(r, "no display")
    assert not (tmp_path / "c").exists()  # no export, no random-init model made


def test_eval_over_json_only_results_says_what_to_do(tmp_path):
    (tmp_path / "res").mkdir()
    (tmp_path / "res/000000.json").write_text('{"frame": "lidar", "detections": []}')
    (tmp_path / "labels").mkdir()
    assert_one_line_error(cli("eval", "--results", tmp_path / "res", "--labels", tmp_path / "labels"),
                          "only .json results", "--calib")


def test_build_error_does_not_suggest_an_option_build_lacks(tmp_path):
    r = cli("build", "--onnx-dir", tmp_path)
    if r.returncode == 0:  # a machine with TensorRT's builder and a GPU
        return
    assert_one_line_error(r)  # no builder: "build needs TensorRT's builder..."; TensorRT-RTX: "ONNX files missing"
    assert "use --backend" not in r.stderr
