"""Bad input through the real CLI (a subprocess): one-line errors, non-zero exit, no traceback, nothing overwritten."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ALL_SCANS, CHECKPOINT, REPO


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "pointpillars_trt", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd or REPO, timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def assert_one_line_error(r, *fragments):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_odd_sized_bin(tmp_path, onnx_dir):
    bad = tmp_path / "odd.bin"
    bad.write_bytes(np.zeros(10, np.float32).tobytes() + b"\x00\x01")  # 42 bytes
    assert_one_line_error(cli("infer", bad, "--onnx-dir", onnx_dir), "not a multiple of 16")


def test_empty_bin(tmp_path, onnx_dir):
    (tmp_path / "empty.bin").write_bytes(b"")
    assert_one_line_error(cli("infer", tmp_path / "empty.bin", "--onnx-dir", onnx_dir), "empty")


def test_missing_scan(tmp_path, onnx_dir):
    assert_one_line_error(cli("infer", tmp_path / "nope.bin", "--onnx-dir", onnx_dir), "not found")


def test_nan_inf_points_dropped_and_counted(tmp_path, onnx_dir):
    pts = np.fromfile(ALL_SCANS[0], np.float32).reshape(-1, 4).copy()
    pts[5, 0] = np.nan
    pts[7, 2] = np.inf
    pts[9, 3] = -np.inf
    f = tmp_path / "nan.bin"
    pts.tofile(f)
    r = cli("infer", f, "--onnx-dir", onnx_dir, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "dropped 3 point(s) with NaN/Inf" in r.stderr
    # the 3 rows are gone, the rest is processed: the result is that of the scan without them
    pts_ok = np.delete(pts, [5, 7, 9], axis=0)
    pts_ok.tofile(tmp_path / "nan_clean.bin")
    r2 = cli("infer", tmp_path / "nan_clean.bin", "--onnx-dir", onnx_dir, "--out", tmp_path / "out2")
    assert r2.returncode == 0, r2.stderr
    a = json.loads((tmp_path / "out/nan.json").read_text())["detections"]
    b = json.loads((tmp_path / "out2/nan_clean.json").read_text())["detections"]
    assert a == b and len(a) > 0


def test_no_point_in_range(tmp_path, onnx_dir):
    pts = np.array([[-5, 0, 0, 0.5], [100, 0, 0, 0.1], [10, 50, 0, 0.2], [10, 0, 5, 0.3]], np.float32)
    f = tmp_path / "far.bin"
    pts.tofile(f)
    r = cli("infer", f, "--onnx-dir", onnx_dir, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "0 pillars, 0 detections" in r.stdout
    assert "no point inside the point cloud range" in r.stderr
    assert json.loads((tmp_path / "o/far.json").read_text())["detections"] == []


def test_more_pillars_than_max(tmp_path, onnx_dir):
    """A config with max_pillars 500: the scan keeps the first 500 pillars and warns."""
    yaml_text = (REPO / "pointpillars_trt/model/configs/pointpillar.yaml").read_text().replace("test: 40000", "test: 500")
    (tmp_path / "small.yaml").write_text(yaml_text)
    r = cli("infer", ALL_SCANS[0], "--checkpoint", CHECKPOINT, "--config", tmp_path / "small.yaml",
            "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "more than max_pillars=500" in r.stderr
    assert " 500 pillars" in r.stdout


def test_checkpoint_missing_key(tmp_path):
    ck = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    del ck["model_state"]["backbone_2d.blocks.1.4.weight"]
    ck["model_state"]["dense_head.conv_cls.bias"] = torch.zeros(7)
    torch.save(ck, tmp_path / "broken.pth")
    r = cli("export", "--checkpoint", tmp_path / "broken.pth", "--out", tmp_path / "x")
    assert_one_line_error(r, "missing 1 key(s): backbone_2d.blocks.1.4.weight", "dense_head.conv_cls.bias (7,) != (18,)")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a zip file at all")
    assert_one_line_error(cli("export", "--checkpoint", tmp_path / "junk.pth", "--out", tmp_path / "x"),
                          "cannot be read as a PyTorch checkpoint")


def test_output_exists_needs_force(tmp_path, onnx_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "000000.json").write_text("mine")
    r = cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--out", out)
    assert_one_line_error(r, "exists", "--force")
    assert (out / "000000.json").read_text() == "mine"
    r = cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--out", out, "--force")
    assert r.returncode == 0 and json.loads((out / "000000.json").read_text())["detections"]


def test_export_refuses_to_overwrite(tmp_path, onnx_dir):
    r = cli("export", "--checkpoint", CHECKPOINT, "--out", onnx_dir)
    assert_one_line_error(r, "exists", "--force")


def test_cuda_without_gpu(onnx_dir):
    from pointpillars_trt.api import _cuda_available

    if _cuda_available():
        pytest.skip("this machine has a GPU")
    assert_one_line_error(cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--device", "cuda"), "no usable CUDA GPU")


def test_kitti_result_file_written_with_calib(tmp_path, onnx_dir):
    """A scan in KITTI's layout finds its calib: <id>.txt (camera frame) beside <id>.json."""
    from conftest import KITTI
    from pointpillars_trt.io.kitti import read_labels

    r = cli("infer", KITTI / "training/velodyne/000134.bin", "--onnx-dir", onnx_dir, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    objs = read_labels(tmp_path / "000134.txt")
    dets = json.loads((tmp_path / "000134.json").read_text())["detections"]
    assert len(objs) == len(dets) > 0 and objs.score is not None
    np.testing.assert_allclose(objs.score, [d["score"] for d in dets], atol=1e-5)


def test_help_on_every_command():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("infer", "eval", "view", "make-sample", "export", "config", "build", "bench", "tune"):
        assert cmd in r.stdout
        h = cli(cmd, "--help")
        assert h.returncode == 0 and "usage:" in h.stdout, cmd


def test_bad_calib_fails_before_any_output(tmp_path, onnx_dir):
    (tmp_path / "calib.txt").write_bytes(b"\xff\xfe\x00binary")
    out = tmp_path / "out"
    r = cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--calib", tmp_path / "calib.txt", "--out", out)
    assert_one_line_error(r, "calib")
    assert not out.exists() or not any(out.iterdir())


def test_out_is_a_file(tmp_path, onnx_dir):
    (tmp_path / "f").write_text("mine")
    assert_one_line_error(cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--out", tmp_path / "f"), "is a file")
    assert (tmp_path / "f").read_text() == "mine"


def test_bad_config_file(tmp_path, onnx_dir):
    (tmp_path / "c.yaml").write_text("MODEL: []\n")
    assert_one_line_error(cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--config", tmp_path / "c.yaml"), "MODEL")


def test_onnxruntime_on_cuda_is_refused(onnx_dir):
    r = cli("infer", ALL_SCANS[0], "--onnx-dir", onnx_dir, "--backend", "onnxruntime", "--device", "cuda")
    assert r.returncode == 2 and "error:" in r.stderr


def test_bench_refuses_bad_scans(tmp_path, onnx_dir):
    scans = tmp_path / "s"
    scans.mkdir()
    (scans / "x.bin").write_bytes(b"\x00" * 20)
    assert_one_line_error(cli("bench", scans, "--onnx-dir", onnx_dir, "--device", "cpu", "--iters", "1"), "multiple of 16")


def test_reader_going_away_is_no_traceback(tmp_path):
    """`... | head -1`: the command stops quietly (exit 141, as SIGPIPE) instead of a BrokenPipeError traceback."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for i in range(3000):  # more listing than a pipe's buffer holds
        (cache / f"pfn_fp16_{i:05d}.engine").write_bytes(b"")
    p = subprocess.Popen([sys.executable, "-m", "pointpillars_trt", "cache", "--cache-dir", str(cache)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert p.stdout.readline()  # read one line, then go away
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_gpu_options_on_the_cpu_name_the_flags(tmp_path):
    """GPU-pipeline flags on a CPU run: one line naming the flags given, before any model work."""
    scan = tmp_path / "a.bin"
    np.zeros((8, 4), np.float32).tofile(scan)
    r = cli("infer", scan, "--device", "cpu", "--compile", "now", "--strict-fp32")
    assert_one_line_error(r, "--compile/--no-compile, --strict-fp32", "this run is on the CPU", "--device cuda")
    assert r.returncode == 2
