"""The detector-driven modes end to end through the CLI: eval --data on generated frames, view with a model, bench on the CPU."""
from __future__ import annotations

import json

import numpy as np

from conftest import ALL_SCANS, KITTI
from test_cli_bad_input import assert_one_line_error, cli


def test_eval_data_runs_detector_then_evaluates(tmp_path, onnx_dir):
    """Two generated frames: results are written for each, FOV-cropped, and evaluated (an untrained model: AP ~ 0)."""
    root = tmp_path / "kitti"
    assert cli("make-sample", "--out", root, "--frames", "2", "--seed", "3").returncode == 0
    out = tmp_path / "eval"
    r = cli("eval", "--data", root, "--onnx-dir", onnx_dir, "--out", out, "--protocol", "devkit")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "results").iterdir()) == ["000000.txt", "000001.txt"]
    res = json.loads((out / "eval.json").read_text())
    assert res["protocol"] == "devkit"  # --data passes the protocol through
    assert "Car" in json.dumps(res) and (out / "table.txt").is_file()
    # the ground truth evaluated as results scores 100 (the same evaluator, sanity of the wiring)
    labels = root / "training/label_2"
    as_results = tmp_path / "gt_as_results"
    as_results.mkdir()
    for f in labels.iterdir():
        (as_results / f.name).write_text("".join(l.rstrip() + " 1.0\n" for l in f.read_text().splitlines() if l.strip()))
    r = cli("eval", "--results", as_results, "--labels", labels, "--out", tmp_path / "e2", "--protocol", "devkit")
    assert r.returncode == 0, r.stderr
    assert "protocol devkit" in r.stdout.splitlines()[0]
    # with so few objects the devkit's 41-point score sampling caps AP below 100 (e.g. 9.09 for one easy car),
    # so compare: ground truth scores at least as high as the untrained model everywhere, and higher overall
    perfect = list(_numbers(json.loads((tmp_path / "e2/eval.json").read_text())["ap"]))
    model = list(_numbers(res["ap"]))
    assert len(perfect) == len(model) > 0
    pairs = [(p, m) for p, m in zip(perfect, model) if p is not None and m is not None]
    assert all(p >= m - 1e-6 for p, m in pairs)
    assert sum(p for p, _ in pairs) > sum(m for _, m in pairs) + 100
    # a second run into the same --out is refused without --force
    assert_one_line_error(cli("eval", "--data", root, "--onnx-dir", onnx_dir, "--out", out), "--force")


def _numbers(tree):
    """Every number in a nested JSON structure (AP values of eval.json)."""
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) or tree is None:
        yield tree


def test_fov_crop_keeps_points_in_the_image():
    from pointpillars_trt.cli.dataset import fov_mask
    from pointpillars_trt.io.kitti import Calib, read_bin

    calib = Calib.read(KITTI / "training/calib/000134.txt")
    pts = read_bin(KITTI / "training/velodyne/000134.bin")
    extra = np.array([[-10, 0, 0, 1], [5, 30, 0, 1], [5, -30, 0, 1], [30, 0, 25, 1]], np.float32)  # behind, sides, above
    m = fov_mask(np.vstack([pts, extra]), calib, (370, 1224))
    assert m[: len(pts)].all()  # velodyne_reduced scans are already cropped to the camera's view
    assert not m[len(pts):].any()


def test_view_with_model_writes_bev(tmp_path, onnx_dir):
    png = tmp_path / "v.png"
    r = cli("view", KITTI / "training/velodyne/000134.bin", "--onnx-dir", onnx_dir, "--bev", png,
            "--labels", KITTI / "training/label_2/000134.txt", "--calib", KITTI / "training/calib/000134.txt")
    assert r.returncode == 0, r.stderr
    assert "detections" in r.stdout and png.stat().st_size > 10_000


def test_bench_on_cpu(tmp_path, onnx_dir):
    scans = tmp_path / "scans"
    scans.mkdir()
    for s in ALL_SCANS[:2]:
        (scans / s.name).write_bytes(s.read_bytes())
    r = cli("bench", scans, "--onnx-dir", onnx_dir, "--device", "cpu", "--iters", "2", "--warmup", "1",
            "--precisions", "fp32", "fp16", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "b.md").read_text()
    for stage in ("voxelize", "pfn", "scatter", "rpn", "postprocess", "total"):
        assert f"| {stage} |" in table
    assert "fp16 median ms" in table


def test_bench_compare_configurations_and_cpu_refusal(tmp_path, onnx_dir):
    """--compare lists each precision, then that precision with each option off (--strict-fp32 only for FP32);
    on the CPU, where those options do not exist, it is a one-line error before any model work."""
    import argparse

    from pointpillars_trt.cli import bench

    p = argparse.ArgumentParser()
    bench.add_parser(p.add_subparsers())
    args = p.parse_args(["bench", "x", "--precisions", "fp16", "fp32", "--compare", "compile", "tf32"])
    got = [(label, a.precision, bool(a.no_compile), bool(a.strict_fp32)) for a, label in bench.configurations(args)]
    assert got == [("fp16", "fp16", False, False), ("fp16 --no-compile", "fp16", True, False),
                   ("fp32", "fp32", False, False), ("fp32 --no-compile", "fp32", True, False),
                   ("fp32 --strict-fp32", "fp32", False, True)]
    assert not args.no_compile  # the copies are changed, never the parsed options
    r = cli("bench", tmp_path, "--onnx-dir", onnx_dir, "--device", "cpu", "--compare", "graph")
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "on the CPU" in r.stderr


def test_bench_says_how_batches_ran() -> None:
    """bench --batch's line says when two batches ran on the GPU at once (their stage times then overlap)."""
    from pointpillars_trt.cli.bench import _overlap

    assert _overlap({"device_slots": 2}) == "host and GPU overlapped, 2 batches on the GPU at once"
    assert _overlap({"device_slots": 1}) == _overlap({}) == "host and GPU overlapped"
