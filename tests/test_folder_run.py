"""A folder with a bad scan in the middle: the good ones are written, the bad one reported, exit 1; --fail-fast stops."""
from __future__ import annotations

import json

import numpy as np

from conftest import ALL_SCANS
from test_cli_bad_input import assert_one_line_error, cli


def _folder(tmp_path):
    d = tmp_path / "scans"
    d.mkdir()
    (d / "a.bin").write_bytes(ALL_SCANS[0].read_bytes())
    (d / "b.bin").write_bytes(ALL_SCANS[1].read_bytes()[:1000])  # truncated mid-point
    (d / "c.bin").write_bytes(ALL_SCANS[2].read_bytes())
    return d


def test_bad_scan_in_the_middle_is_skipped_and_reported(tmp_path, onnx_dir):
    d = _folder(tmp_path)
    r = cli("infer", d, "--onnx-dir", onnx_dir, "--out", tmp_path / "out", "--show", "0", "--score-thresh", "0.3", "-v")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "c.json"]
    assert "2 of 3 scans done; 1 failed:" in r.stderr and "b.bin: 1000 bytes is not a multiple of 16" in r.stderr
    assert r.stderr.index("b.bin") < r.stderr.index("backend onnxruntime")  # found before the model loaded
    dets = json.loads((tmp_path / "out/a.json").read_text())["detections"]
    assert dets and min(x["score"] for x in dets) >= 0.3
    assert "includes warm-up" in r.stdout.splitlines()[0] and "includes warm-up" not in r.stdout.splitlines()[1]
    assert len(r.stdout.splitlines()) == 2  # -v: a line for each scan done


def test_fail_fast_stops_at_the_bad_scan(tmp_path, onnx_dir):
    r = cli("infer", _folder(tmp_path), "--onnx-dir", onnx_dir, "--out", tmp_path / "out", "--fail-fast")
    assert_one_line_error(r, "b.bin", "not a multiple of 16")
    assert r.returncode == 2 and not (tmp_path / "out" / "c.json").exists()


def test_what_only_a_full_read_finds_is_reported_in_turn(tmp_path, onnx_dir):
    """Files after the first get only the size and header checks before the model loads (a KITTI folder is not read
    twice); a scan whose points are all NaN is then reported when its turn comes, and --fail-fast names it."""
    d = _folder(tmp_path)
    np.full((100, 4), np.nan, np.float32).tofile(d / "b.bin")  # a whole number of points: passes the pre-check
    r = cli("infer", d, "--onnx-dir", onnx_dir, "--out", tmp_path / "out", "--show", "0")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "c.json"]
    assert "2 of 3 scans done; 1 failed:" in r.stderr and "b.bin: all 100 points hold NaN or Inf" in r.stderr
    assert r.stderr.index("backend onnxruntime") < r.stderr.index("b.bin")  # found in its turn, after the model
    assert r.stdout == ""  # a folder with --out: no line per scan without -v, the summary on stderr
    r = cli("infer", d, "--onnx-dir", onnx_dir, "--out", tmp_path / "out2", "--fail-fast")
    assert_one_line_error(r, "b.bin", "all 100 points hold NaN or Inf")
    assert r.returncode == 2 and not (tmp_path / "out2" / "c.json").exists()
